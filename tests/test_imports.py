"""The import graph of ``eas_gym`` and ``agents`` has no circles.

The graph is read from the source with ``ast``: every ``import`` and ``from ... import``,
at module level or inside a function (a lazy import still ties the two modules together),
with ``from package import submodule`` resolved to the submodule. A module found by name at
run time (gymnasium's ``entry_point="eas_gym.env:EASEnv"``, which ``eas_gym.settings`` reads, and
``eas_gym.store.open_store``'s store-service client) is not an import: that is how a lower module
reaches a higher one without depending on it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("eas_gym", "agents")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
    }


def _imported(node: ast.Import | ast.ImportFrom, module: str, path: Path, known: set[str]):
    """The modules an import statement loads, as named in `known` (deepest known prefix).

    ``from package import a, b`` loads the submodules ``package.a`` and ``package.b`` where they
    exist, and ``package`` itself only for names that are not submodules. A parent package is
    never an edge by itself: Python runs ``eas_gym/__init__.py`` before any ``eas_gym.x``.
    """
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:  # relative: from the module's package, up `level - 1` more
            package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
            base = ".".join(package[: len(package) - (node.level - 1)])
            target = f"{base}.{node.module}" if node.module else base
        else:
            target = node.module or ""
        subs = [f"{target}.{alias.name}" for alias in node.names]
        names = [s for s in subs if s in known]
        if len(names) < len(subs):
            names.append(target)
    found = []
    for name in names:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name:
            found.append(name)
    return found


def import_graph() -> nx.DiGraph:
    """Module -> module it imports, within :data:`PACKAGES`."""
    modules = _modules()
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):  # walks function bodies too: lazy imports count
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for target in _imported(node, module, path, set(modules)):
                if target != module:
                    graph.add_edge(module, target)
    return graph


def test_the_graph_sees_lazy_and_submodule_imports():
    graph = import_graph()
    assert graph.has_edge("agents.summary", "eas_gym.family")  # module level
    assert graph.has_edge("agents.runner", "agents.sb3_runner")  # inside a function
    assert graph.has_edge("eas_gym.store", "eas_gym.net")  # `from eas_gym.net import StateDict`


def test_no_import_circles():
    cycles = sorted(nx.simple_cycles(import_graph()))
    listing = "\n".join("  " + " -> ".join([*c, c[0]]) for c in cycles)
    assert cycles == [], f"{len(cycles)} import circles:\n{listing}"


def test_no_library_module_imports_agents():
    """``eas_gym`` is the library, ``agents`` its user: no arrow runs upwards, not even a lazy one.

    The ``eas-gym`` command line, which needs both, lives in ``agents/cli.py``.
    """
    graph = import_graph()
    leaks = sorted(
        (a, b) for a, b in graph.edges if a.startswith("eas_gym") and b.startswith("agents")
    )
    assert leaks == [], f"library modules importing the application: {leaks}"
    assert "eas_gym.cli" not in graph and graph.has_edge("agents.cli", "agents.runner")


def test_the_console_script_points_at_agents_cli():
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"eas-gym": "agents.cli:main"}


def test_importing_eas_gym_registers_the_ids_without_torch():
    import subprocess
    import sys

    code = (
        "import sys, gymnasium, eas_gym; "
        "assert 'EAS-CIFAR10-v0' in gymnasium.registry; "
        "assert 'torch' not in sys.modules, 'torch was imported'; "
        "eas_gym.build_net; assert 'torch' in sys.modules"  # then loaded on first use
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_help_and_list_do_not_import_torch():
    import subprocess
    import sys

    for argv in (["--help"], ["search", "--help"], ["list"]):
        code = (
            "import sys; from agents.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch was imported'"
        )
        done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
        assert done.returncode == 0, (argv, done.stderr[-2000:])
