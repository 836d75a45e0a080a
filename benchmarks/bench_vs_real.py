"""EAS-Bench's trust test: the same study run on the bench and for real, side by side.

    python benchmarks/bench_vs_real.py [--real benchmarks/data/cpu_v2_study/report.json]
        [--bench benchmarks/data/bench_study/compare.json] [--out benchmarks/data/bench/vs_real.md]

Reads two ``eas-gym compare`` reports of the same design (agents, seeds, networks, recheck):
one trained for real on ``EAS-CIFAR10-CPU-v2``, one on ``EAS-Bench-CIFAR10-CPU-v2``. For
every agent and metric it puts each gap to random search side by side and asks: is the
bench's gap inside the real study's 95% CI, and do the two order the agents the same way?
Prints one JSON line and writes the markdown table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

METRICS = (
    "last_third_mean",
    "best",
    "recheck_mean",
    "last_third_size_adjusted",
    "recheck_size_adjusted",
)


def side_by_side(real: dict[str, Any], bench: dict[str, Any]) -> dict[str, Any]:
    """Per metric: each agent's gap to random in both reports, and whether they agree."""
    agents = [a for a in real["agents"] if a != "random" and a in bench["agents"]]
    out: dict[str, Any] = {}
    for metric in METRICS:
        rows = []
        for agent in agents:
            r = real["agents"][agent].get(metric, {}).get("vs_random")
            b = bench["agents"][agent].get(metric, {}).get("vs_random")
            if r is None or b is None:
                continue
            inside = r["ci_low"] <= b["diff"] <= r["ci_high"]
            rows.append(
                {
                    "agent": agent,
                    "real": 100 * r["diff"],
                    "real_ci": [100 * r["ci_low"], 100 * r["ci_high"]],
                    "real_holm_p": r.get("p_holm"),
                    "bench": 100 * b["diff"],
                    "bench_holm_p": b.get("p_holm"),
                    "inside_real_ci": inside,
                }
            )
        if not rows:
            continue
        real_order = [x["agent"] for x in sorted(rows, key=lambda x: -x["real"])]
        bench_order = [x["agent"] for x in sorted(rows, key=lambda x: -x["bench"])]
        out[metric] = {
            "rows": rows,
            "real_order": real_order,
            "bench_order": bench_order,
            "same_order": real_order == bench_order,
            "inside": sum(x["inside_real_ci"] for x in rows),
        }
    return out


def markdown(table: dict[str, Any]) -> str:
    lines = [
        "| metric | agent | real minus random [95% CI], Holm p | bench minus random, Holm p "
        "| bench inside real CI |",
        "|---|---|---|---|---|",
    ]
    for metric, block in table.items():
        for x in block["rows"]:
            lo, hi = x["real_ci"]
            lines.append(
                f"| {metric} | {x['agent']} | {x['real']:+.2f} [{lo:.2f}, {hi:.2f}], "
                f"{x['real_holm_p']:.2g} | {x['bench']:+.2f}, {x['bench_holm_p']:.2g} | "
                f"{'yes' if x['inside_real_ci'] else 'no'} |"
            )
    lines.append("")
    for metric, block in table.items():
        same = "same" if block["same_order"] else "different"
        lines.append(
            f"* {metric}: {block['inside']} of {len(block['rows'])} gaps inside the real CI; "
            f"order {same} (real: {', '.join(block['real_order'])}; bench: "
            f"{', '.join(block['bench_order'])})"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", default="benchmarks/data/cpu_v2_study/report.json")
    parser.add_argument("--bench", default="benchmarks/data/bench_study/compare.json")
    parser.add_argument("--out", default="benchmarks/data/bench/vs_real.md")
    args = parser.parse_args()
    real, bench = (json.loads(Path(p).read_text()) for p in (args.real, args.bench))
    table = side_by_side(real, bench)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(markdown(table))
    summary = {m: {k: b[k] for k in ("inside", "same_order")} for m, b in table.items()}
    print(json.dumps({"benchmark": "bench_vs_real", "metrics": summary, "table": args.out}))


if __name__ == "__main__":
    main()
