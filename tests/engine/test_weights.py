"""Local checkpoints: safetensors or weights-only PyTorch files, with their hash; misfits are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from rttui.engine.models import create_model, load_weights, sha256_file
from rttui.errors import CheckpointError


def _donor(num_classes: int = 7) -> torch.nn.Module:
    torch.manual_seed(123)
    return timm.create_model("test_resnet", num_classes=num_classes)


def _same_backbone(model: torch.nn.Module, donor: torch.nn.Module) -> bool:
    own = model.model.state_dict() if hasattr(model, "model") else model.state_dict()
    return all(torch.equal(own[k], v) for k, v in donor.state_dict().items() if not k.startswith("fc."))


def test_safetensors_checkpoint_loads_with_its_hash_and_skips_a_misfit_head(tmp_path: Path) -> None:
    donor = _donor(7)
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in donor.state_dict().items()}, str(path))
    model = create_model({"name": "test_resnet", "checkpoint": str(path)}, num_classes=3, image_size=16)
    assert _same_backbone(model, donor)
    info = model.weights_info
    assert info["sha256"] == sha256_file(path) and info["format"] == "safetensors"
    assert info["skipped_head"] == ["fc.bias", "fc.weight"]  # 7-class head does not fit 3 classes
    # Normalization comes from the model's pretrained cfg unless the study gives it.
    assert model.mean.flatten().tolist() == pytest.approx(list(timm.get_pretrained_cfg("test_resnet").mean))
    m2 = create_model(
        {"name": "test_resnet", "checkpoint": str(path), "mean": [0.1, 0.2, 0.3], "std": [1, 1, 1]}, 0, 16
    )
    assert m2.mean.flatten().tolist() == pytest.approx([0.1, 0.2, 0.3])


def test_torch_file_is_loaded_weights_only_including_robustness_layout(tmp_path: Path) -> None:
    donor = _donor(5)
    plain = tmp_path / "plain.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in donor.state_dict().items()}, "epoch": 3}, plain)
    model = create_model({"name": "test_resnet", "checkpoint": str(plain)}, num_classes=5, image_size=16)
    assert _same_backbone(model, donor) and model.weights_info["skipped_head"] == []
    assert torch.equal(model.model.fc.weight, donor.fc.weight)
    # MadryLab robustness layout: model.*, attacker.model.*, normalizer.*
    sd = donor.state_dict()
    robust = {f"module.model.{k}": v for k, v in sd.items()}
    robust |= {f"module.attacker.model.{k}": v + 1 for k, v in sd.items()}
    robust |= {"module.normalizer.new_mean": torch.zeros(3, 1, 1)}
    rpath = tmp_path / "robust.pt"
    torch.save({"model": robust, "epoch": 90}, rpath)
    model = create_model({"name": "test_resnet", "checkpoint": str(rpath)}, num_classes=0, image_size=16)
    assert _same_backbone(model, donor)
    # A pickle that needs arbitrary code is refused (weights_only), not executed.
    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": sd, "obj": Path("x")}, evil)
    with pytest.raises(CheckpointError, match="cannot be read as weights"):
        create_model({"name": "test_resnet", "checkpoint": str(evil)}, 3, 16)


def test_checkpoint_of_another_model_is_one_line_error_and_model_untouched(tmp_path: Path) -> None:
    other = timm.create_model("test_vit", num_classes=3)
    path = tmp_path / "vit.safetensors"
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(path))
    with pytest.raises(CheckpointError) as ei:
        create_model({"name": "test_resnet", "checkpoint": str(path)}, 3, 16)
    msg = str(ei.value)
    assert "\n" not in msg and "does not fit model 'test_resnet'" in msg and str(path) in msg
    # Same architecture, wrong width: a shape mismatch names the tensor; nothing is loaded.
    sd = _donor(3).state_dict()
    sd["conv1.0.weight"] = torch.zeros(1, 1, 1, 1)
    bad = tmp_path / "bad.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(bad))
    model = create_model({"name": "test_resnet"}, 3, 16)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"conv1\.0\.weight is \(1, 1, 1, 1\) in the file"):
        load_weights(model, bad)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(CheckpointError, match="does not exist"):
        create_model({"name": "test_resnet", "checkpoint": str(tmp_path / "nope.pt")}, 3, 16)


def pretrained_refusal(monkeypatch: pytest.MonkeyPatch, cache: Path, offline: bool) -> str:
    """The one-line error of loading test_resnet's hub weights with huggingface_hub's offline mode as given and
    its cache at `cache` (where they are not)."""
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", offline)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(cache))
    with pytest.raises(CheckpointError) as ei:
        create_model({"name": "test_resnet"}, 3, 16, pretrained=True)
    return str(ei.value)


def test_pretrained_offline_without_cache_says_how_to_use_a_local_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    msg = pretrained_refusal(monkeypatch, tmp_path / "empty-cache", offline=True)
    assert "\n" not in msg and "[models.test_resnet] checkpoint = " in msg and "'test_resnet'" in msg


@pytest.fixture
def hub_unreachable(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """No route to the hub: every TCP connect fails at once (as with no DNS); returns the addresses asked."""
    import socket

    from rttui.engine import models

    asked: list[tuple[str, int]] = []

    def refuse(address, *args, **kwargs):
        asked.append(address)
        raise OSError("Name or service not known")

    monkeypatch.setattr(socket, "create_connection", refuse)
    for var in models.PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    models._unreachable_host.cache_clear()
    yield asked
    models._unreachable_host.cache_clear()


def test_pretrained_with_the_hub_unreachable_reads_the_cache_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hub_unreachable: list
) -> None:
    """Offline without HF_HUB_OFFLINE, huggingface_hub would retry each file for about 50 s; rttui asks the
    hub's host once, then reads the cache only: weights in the cache load, weights not there are one line that
    names the unreachable host, and offline mode is put back as it was."""
    import huggingface_hub.constants as hub
    import timm

    msg = pretrained_refusal(monkeypatch, tmp_path / "cache", offline=False)
    assert "\n" not in msg and "huggingface.co could not be reached" in msg and "not in the Hugging Face cache" in msg
    assert hub.HF_HUB_OFFLINE is False
    assert hub_unreachable == [("huggingface.co", 443)]

    # The same weights put in the cache, in huggingface_hub's layout, load without the network.
    donor = timm.create_model("test_resnet", pretrained=False)
    repo = tmp_path / "cache" / "models--timm--test_resnet.r160_in1k"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    save_file(
        {k: v.contiguous() for k, v in donor.state_dict().items()},
        str(repo / "snapshots" / commit / "model.safetensors"),
    )
    model = create_model({"name": "test_resnet"}, 1000, 160, pretrained=True)
    got = model.model.state_dict()
    assert all(torch.equal(got[k], v) for k, v in donor.state_dict().items())
    assert model.weights_info["kind"] == "timm" and model.weights_info["file"].endswith("model.safetensors")
    assert hub.HF_HUB_OFFLINE is False and len(hub_unreachable) == 1  # asked once per process


def test_pretrained_behind_a_proxy_leaves_reachability_to_the_proxy(
    monkeypatch: pytest.MonkeyPatch, hub_unreachable: list
) -> None:
    """With a proxy set, a direct connect says nothing about the hub: rttui does not probe, and leaves
    huggingface_hub to ask the proxy (offline mode untouched). Without one, the probe decides."""
    import huggingface_hub.constants as hub

    from rttui.engine.models import _cache_only_when_hub_unreachable

    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    with _cache_only_when_hub_unreachable(True) as host:
        assert host == "" and hub.is_offline_mode() is False
    assert hub_unreachable == []
    monkeypatch.delenv("HTTPS_PROXY")
    with _cache_only_when_hub_unreachable(True) as host:
        assert host == "huggingface.co" and hub.is_offline_mode() is True
    assert hub.is_offline_mode() is False and hub_unreachable == [("huggingface.co", 443)]
    with _cache_only_when_hub_unreachable(False) as host:  # no hub weights asked for: nothing probed
        assert host == ""
    assert len(hub_unreachable) == 1
