"""`rttui convert-checkpoint`: a MadryLab robustness checkpoint (made here in its key layout, random weights) to
safetensors, loaded back as a study's `checkpoint` into the timm model of the same architecture, logits equal;
and the refusals (a pickle holding a class, an existing output, a missing input)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import timm
import torch

from rttui.engine import models
from tests.entry import run_cli

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def madrylab_checkpoint(path: Path, arch: str = "resnet18", num_classes: int = 10) -> torch.nn.Module:
    """What `robustness` saves: {'model': {module.model.*, module.attacker.model.*, module.normalizer.*}, 'epoch',
    'optimizer', 'schedule'}, the network's weights twice (model and attacker) plus the normalizer's buffers."""
    net = timm.create_model(arch, num_classes=num_classes).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):  # random statistics: eval mode is then not the identity
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
    sd = net.state_dict()
    state = {
        **{f"module.model.{k}": v for k, v in sd.items()},
        **{f"module.attacker.model.{k}": v.clone() for k, v in sd.items()},
        "module.normalizer.new_mean": torch.tensor(IMAGENET_MEAN).view(3, 1, 1),
        "module.normalizer.new_std": torch.tensor(IMAGENET_STD).view(3, 1, 1),
        "module.attacker.normalize.new_mean": torch.tensor(IMAGENET_MEAN).view(3, 1, 1),
        "module.attacker.normalize.new_std": torch.tensor(IMAGENET_STD).view(3, 1, 1),
    }
    torch.save({"model": state, "epoch": 90, "optimizer": {"state": {}, "param_groups": []}, "schedule": None}, path)
    return net


def test_convert_checkpoint_madrylab_loads_as_a_timm_checkpoint_with_equal_logits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    src, dst = tmp_path / "imagenet_linf_4.pt", tmp_path / "resnet18_linf4.safetensors"
    net = madrylab_checkpoint(src)
    code, out, err = run_cli(["convert-checkpoint", str(src), str(dst)], monkeypatch, capsys)
    assert code == 0, err
    sha = hashlib.sha256(dst.read_bytes()).hexdigest()
    assert f"{len(net.state_dict())} tensors" in out and sha in out
    cfg = {"name": "resnet18", "checkpoint": str(dst), "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    loaded = models.create_model(cfg, 10, 32).eval()
    assert loaded.weights_info["sha256"] == sha
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = net((x - mean) / std)  # the robustness model: its normalizer, then the network
        assert torch.equal(loaded(x), expected)
        # a study's checkpoint also reads the robustness .pt itself (weights-only), to the same function
        direct = models.create_model({**cfg, "checkpoint": str(src)}, 10, 32).eval()
        assert torch.equal(direct(x), expected)
    assert expected.std() > 0


class Payload:
    """A class of this test: a pickle holding it must never be unpickled."""


def test_convert_checkpoint_refuses_a_pickle_holding_a_class(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    src, dst = tmp_path / "evil.pt", tmp_path / "out.safetensors"
    torch.save({"model": {"module.model.fc.weight": torch.zeros(2, 2)}, "args": Payload()}, src)
    code, _, err = run_cli(["convert-checkpoint", str(src), str(dst)], monkeypatch, capsys)
    assert code == 2
    assert "not a weights-only checkpoint" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not dst.exists() and not dst.with_name(dst.name + ".tmp").exists()


def test_convert_checkpoint_refuses_an_existing_output_unless_forced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    src, dst = tmp_path / "m.pt", tmp_path / "out.safetensors"
    madrylab_checkpoint(src)
    dst.write_bytes(b"keep me")
    code, _, err = run_cli(["convert-checkpoint", str(src), str(dst)], monkeypatch, capsys)
    assert code == 2 and "already exists" in err and "--force" in err and len(err.strip().splitlines()) == 1
    assert dst.read_bytes() == b"keep me"
    code, out, err = run_cli(
        ["convert-checkpoint", str(src), str(dst), "--force", "--format", "json"], monkeypatch, capsys
    )
    assert code == 0, err
    assert '"tensors"' in out and dst.read_bytes() != b"keep me"


def test_convert_checkpoint_missing_input_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    code, _, err = run_cli(
        ["convert-checkpoint", str(tmp_path / "nope.pt"), str(tmp_path / "o.safetensors")], monkeypatch, capsys
    )
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.safetensors").exists()
