"""Adversarial pretraining: the source trained on adversarial examples is measurably more robust."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rttui.engine import data, models
from rttui.engine.attacks import pgd
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


def test_adv_pretraining_user_checkpoint_is_used_as_the_source(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    cfg = _source(None)
    cfg["train"]["epochs"] = 0
    ref = models.create_model(cfg["model"], 5, 16)
    # A plain timm state dict (no wrapper prefix), as a robust checkpoint from elsewhere would be.
    path = tmp_path / "robust.safetensors"
    save_file({k: v.contiguous() for k, v in ref.model.state_dict().items()}, str(path))
    done = _train({**cfg, "adversarial": {"checkpoint": str(path), "eps": 0.03}}, tmp_path / "a")
    loaded = models.create_model(cfg["model"], 5, 16)
    models.load_checkpoint(loaded, Path(done.checkpoint), done.sha256)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), ref.state_dict().values(), strict=True))
    assert done.info["checkpoint_sha256"] == models.sha256_file(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        _train({**cfg, "adversarial": {"checkpoint": str(tmp_path / "nope.safetensors")}}, tmp_path / "b")
