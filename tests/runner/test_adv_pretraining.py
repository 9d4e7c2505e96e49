"""Adversarial pretraining: the source trained on adversarial examples is measurably more robust."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rttui.engine import data, models
from rttui.engine.attacks.pgd import pgd
from rttui.errors import CheckpointError
from rttui.runner import events as ev
from rttui.runner.tasks import train_source
from rttui.study.plan import SourcePlan


def _source(adv: dict | None, seed: int = 0) -> dict:
    return {
        "data": {"dataset": "digits", "classes": [0, 1, 2, 3, 4], "train_size": 250, "test_size": 100, "split_seed": 0},
        "pretrained": False,
        "train": {"epochs": 5, "lr": 3e-3, "batch_size": 32, "optimizer": "adam", "weight_decay": 0.0},
        "model": {"name": "test_resnet", "kwargs": {}},
        "image_size": 16,
        "adversarial": adv,
        "seed": seed,
    }


def _train(cfg: dict, artifacts: Path) -> ev.UnitTrained:
    out: list[ev.Event] = []
    train_source(SourcePlan("adv" if cfg["adversarial"] else "std", cfg), artifacts, out.append)
    return next(e for e in out if isinstance(e, ev.UnitTrained))


def _pgd10_acc(done: ev.UnitTrained, cfg: dict, eps: float = 0.03) -> float:
    task = data.load_task(cfg["data"], cfg["image_size"])
    m = models.create_model(cfg["model"], done.num_classes, cfg["image_size"])
    models.load_checkpoint(m, Path(done.checkpoint), done.sha256)
    m.eval()
    xa = pgd(m, task.test.x, task.test.y, eps, steps=10, step_size=0.25 * eps, gen=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return float((m(xa).argmax(1) == task.test.y).float().mean())


def test_adv_pretraining_makes_the_source_more_robust(tmp_path: Path) -> None:
    adv = {"attack": "fgsm", "eps": 0.05, "random_start": True}
    std_cfg, adv_cfg = _source(None), _source(adv)
    std, rob = _train(std_cfg, tmp_path), _train(adv_cfg, tmp_path)
    acc_std, acc_rob = _pgd10_acc(std, std_cfg), _pgd10_acc(rob, adv_cfg)
    assert rob.clean_acc > 0.8 and std.clean_acc > 0.8
    assert acc_rob >= acc_std + 0.10, (acc_std, acc_rob)
    assert "robust_acc" in rob.info and "robust_acc" not in std.info


def test_adv_pretraining_user_checkpoint_is_used_as_the_source_without_source_data(tmp_path: Path) -> None:
    """A robust checkpoint stands in for adversarial pretraining: loaded by models.load_weights (safetensors, or
    a MadryLab robustness .pt read with weights_only), its head skipped, its SHA-256 stored; no source data read."""
    from safetensors.torch import save_file

    cfg = _source(None)
    cfg["data"] = {"dataset": "cifar10", "root": str(tmp_path / "no-such-folder")}  # must never be read
    cfg["train"]["epochs"] = 3  # ignored: the checkpoint is the source, as it is
    ref = models.create_model(cfg["model"], 7, 16)  # a 7-class head: not the target's, skipped on load
    plain = {k: v.contiguous() for k, v in ref.model.state_dict().items()}
    st = tmp_path / "robust.safetensors"
    save_file(plain, str(st))
    pt = tmp_path / "robust.pt"  # the robustness layout: {"model": {"module.model.*", "module.attacker.model.*"}}
    torch.save(
        {"model": {**{f"module.model.{k}": v for k, v in plain.items()}, "module.attacker.model.x": plain["fc.bias"]}},
        pt,
    )
    for i, path in enumerate((st, pt)):
        done = _train({**cfg, "adversarial": {"checkpoint": str(path), "eps": 0.03}}, tmp_path / f"a{i}")
        assert done.num_classes == 0 and done.clean_acc is None and "robust_acc" not in done.info
        loaded = models.create_model(cfg["model"], 0, 16)
        models.load_checkpoint(loaded, Path(done.checkpoint), done.sha256)
        body = {k: v for k, v in ref.state_dict().items() if not k.startswith("model.fc.")}
        assert body.keys() == loaded.state_dict().keys()
        assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in body.items())
        w = done.info["weights"]
        assert w["sha256"] == models.sha256_file(path) and w["skipped_head"] == ["fc.bias", "fc.weight"]
    with pytest.raises(CheckpointError, match="does not exist"):
        _train({**cfg, "adversarial": {"checkpoint": str(tmp_path / "nope.safetensors")}}, tmp_path / "b")
    other = models.create_model({"name": "test_vit", "kwargs": {}}, 5, 16)
    save_file({k: v.contiguous() for k, v in other.model.state_dict().items()}, str(tmp_path / "vit.safetensors"))
    with pytest.raises(CheckpointError, match="does not fit model"):
        _train({**cfg, "adversarial": {"checkpoint": str(tmp_path / "vit.safetensors")}}, tmp_path / "c")
