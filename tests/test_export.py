"""save_model / load_model: a found network round-trips exactly, and damaged folders say so."""

import json

import pytest
import torch

from eas_gym import DENSE_SMALL_START, SMALL_START, build_model, load_model, parse_net, save_model
from eas_gym.export import load_arch, load_state


def _trained_like(arch):
    """A network with non-default weights and BN statistics (not what a fresh build gives)."""
    net = build_model(arch, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        net.train()(torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(2)))
    return net.eval()


@pytest.mark.parametrize("arch", [SMALL_START, DENSE_SMALL_START], ids=["plain", "densenet"])
def test_round_trip_is_exact(tmp_path, arch):
    net = _trained_like(arch)
    folder = save_model(tmp_path / "best", arch, net.state_dict(), meta={"accuracy": 0.5})
    loaded = load_model(folder)
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
    assert not loaded.training  # eval mode, ready to predict
    record = json.loads((folder / "arch.json").read_text())
    assert record["net"] == arch.to_string() and record["accuracy"] == 0.5
    assert record["params"] == arch.num_params()
    assert load_arch(folder / "arch.json") == arch  # the file or its folder


def test_a_device_is_resolved_and_its_errors_are_its_own(tmp_path, monkeypatch):
    """``device="auto"`` as everywhere else; a device failure is not called a misfit."""
    from eas_gym.splits import resolve_device

    net = _trained_like(SMALL_START)
    folder = save_model(tmp_path / "best", SMALL_START, net.state_dict())
    assert next(load_model(folder, device="auto").parameters()).device.type == (
        resolve_device("auto").type
    )
    assert next(load_model(folder, device="meta").parameters()).is_meta

    def no_driver(self, *args, **kwargs):
        raise RuntimeError("Found no NVIDIA driver on your system")

    monkeypatch.setattr(torch.nn.Module, "to", no_driver)
    with pytest.raises(RuntimeError, match="no NVIDIA driver"):
        load_model(folder, device="cuda")


def test_other_class_counts_and_channels_survive(tmp_path):
    arch = parse_net("C8-3 MP C8-3 GAP FC16", num_classes=100, in_channels=1)
    save_model(tmp_path, arch, build_model(arch).state_dict())
    loaded = load_arch(tmp_path)
    assert (loaded.num_classes, loaded.in_channels) == (100, 1)


def test_no_weights(tmp_path):
    arch = SMALL_START
    save_model(tmp_path, arch, build_model(arch).state_dict())
    save_model(tmp_path, arch, None)  # saving again without weights drops the old file
    assert not (tmp_path / "weights.pt").exists() and load_state(tmp_path) is None
    with pytest.raises(ValueError, match="without weights"):
        load_model(tmp_path)
    assert load_model(tmp_path, untrained=True) is not None


def test_altered_weights_are_refused(tmp_path):
    arch = SMALL_START
    save_model(tmp_path, arch, build_model(arch).state_dict())
    other = build_model(arch, generator=torch.Generator().manual_seed(9)).state_dict()
    torch.save(other, tmp_path / "weights.pt")
    with pytest.raises(ValueError, match="checksum"):
        load_model(tmp_path)
    (tmp_path / "weights.pt").unlink()
    with pytest.raises(ValueError, match="lost its weights.pt"):
        load_model(tmp_path)


def test_weights_of_another_architecture_do_not_fit(tmp_path):
    import json

    wide = parse_net("C16-3 MP C8-3 MP C8-3 MP C8-3 GAP FC16")
    with pytest.raises(ValueError, match="`state` does not fit"):  # refused before writing
        save_model(tmp_path / "refused", SMALL_START, build_model(wide).state_dict())
    assert not (tmp_path / "refused").exists()
    save_model(tmp_path, wide, build_model(wide).state_dict())
    record = json.loads((tmp_path / "arch.json").read_text())
    record["net"] = SMALL_START.to_string()  # a folder edited by hand: its weights are wide
    (tmp_path / "arch.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="do not fit"):
        load_model(tmp_path)


def test_save_refuses_a_net_string_and_meta_that_is_not_json(tmp_path):
    with pytest.raises(TypeError, match="parse_net reads a net string"):
        save_model(tmp_path / "a", "C4-3 GAP FC8", None)
    with pytest.raises(ValueError, match="`state` is empty"):
        save_model(tmp_path / "c", SMALL_START, {})
    with pytest.raises(ValueError, match="`meta` must be JSON"):
        save_model(tmp_path / "b", SMALL_START, None, {"when": object()})
    assert not any((tmp_path / name).exists() for name in "abc")


@pytest.mark.parametrize(
    "text", ["not json", "[1, 2]", '{"net": 3}', '{"net": "C8-3 XX"}'], ids=str
)
def test_bad_arch_json_names_the_file(tmp_path, text):
    (tmp_path / "arch.json").write_text(text)
    with pytest.raises(ValueError, match="arch.json"):
        load_arch(tmp_path)


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="save_model"):
        load_model(tmp_path / "nowhere")
