"""Validation while a model trains (issue #31): the validation split, the per-epoch probe, checkpoint selection.

Tiny on purpose: test_resnet on digits at 16x16, a few dozen training images, 2-3 epochs, one torch thread.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from rttui.engine import data, models, sanity, train
from rttui.engine.resume import EpochCheckpoint
from rttui.engine.validation import Probe, carve, pick_epoch
from rttui.errors import DataError

TARGET = {"dataset": "digits", "classes": [5, 6, 7, 8, 9], "train_size": 120, "test_size": 40, "split_seed": 0}
CFG = {"epochs": 3, "lr": 3e-3, "batch_size": 16, "optimizer": "adam"}
PROBE = {"attack": "pgd", "eps": [0.03], "norm": "linf", "steps": 3, "rel_step_size": 2.5 / 3, "images": 12, "seed": 0}


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _setup(val_size: float = 25) -> tuple[torch.nn.Module, data.Task]:
    train.seed_everything(0)
    task = data.load_task({**TARGET, "val_size": val_size}, 16)
    return models.create_model({"name": "test_resnet"}, task.num_classes, 16), task


def test_validation_split_never_touches_test_images() -> None:
    """By dataset index: validation images come from the training side only, and training loses exactly them."""
    plain = data.load_task(TARGET, 16)
    task = data.load_task({**TARGET, "val_size": 25, "val_seed": 3}, 16)
    assert task.val is not None and task.val.ids is not None and task.test.ids is not None
    val, tr, test = set(task.val.ids.tolist()), set(task.train.ids.tolist()), set(task.test.ids.tolist())
    assert len(val) == len(task.val) == 25
    assert not val & test
    assert val | tr == set(plain.train.ids.tolist()) and not val & tr
    assert test == set(plain.test.ids.tolist())  # the test split is exactly what it was without validation
    assert torch.equal(task.test.x, plain.test.x)
    # The probe attacks only validation images (the first of the validation draw).
    model = models.create_model({"name": "test_resnet"}, task.num_classes, 16)
    probe = Probe(model, task.val, PROBE)
    assert torch.equal(probe.x, task.val.x[: len(probe.y)])
    assert len(probe.y) == PROBE["images"]


def test_validation_split_is_seeded_and_keeps_every_class() -> None:
    a = data.load_task({**TARGET, "val_size": 0.2}, 16)
    b = data.load_task({**TARGET, "val_size": 0.2}, 16)
    c = data.load_task({**TARGET, "val_size": 0.2, "val_seed": 1}, 16)
    assert a.val is not None and b.val is not None and c.val is not None
    assert np.array_equal(a.val.ids, b.val.ids)
    assert not np.array_equal(np.sort(a.val.ids), np.sort(c.val.ids))
    assert len(a.val) == round(0.2 * 120)
    for split in (a.train, a.val):
        assert set(split.y.tolist()) == set(range(5))


@pytest.mark.parametrize("val_size", [120, 500, 3, 0.01], ids=["all", "more", "below-classes", "tiny-fraction"])
def test_validation_split_refuses_sizes_that_leave_a_side_empty(val_size: float) -> None:
    split = data.load_task(TARGET, 16).train
    with pytest.raises(DataError, match=r"^target\.val_size = .*; use ") as exc:
        carve(split, val_size, 0)
    assert "\n" not in str(exc.value)


def test_validation_leaves_training_unchanged_and_runs_in_eval_mode() -> None:
    """The probe runs on the eval-mode model under a forked RNG: training with it equals training without it."""
    model, task = _setup()
    ref_hist = train.fit(model, task.train, CFG, seed=0)
    ref = {k: v.clone() for k, v in model.state_dict().items()}

    model, task = _setup()
    modes: list[bool] = []
    probe = Probe(model, task.val, PROBE)

    def probe_and_watch() -> dict[str, Any]:
        hook = model.register_forward_hook(lambda m, i, o: modes.append(m.training))
        try:
            return probe()
        finally:
            hook.remove()

    hist = train.fit(model, task.train, CFG, seed=0, validate=probe_and_watch)
    assert modes and not any(modes)  # every forward of the probe: eval mode
    assert [h["loss"] for h in hist] == [h["loss"] for h in ref_hist]
    for k, v in model.state_dict().items():
        assert torch.equal(v, ref[k]), k
    assert all(p.grad is None for p in model.parameters())
    for rec in hist:
        assert 0 <= rec["val_clean_acc"] <= 1
        assert rec["val_n"] == len(task.val)
        p = json.loads(rec["probe"])
        assert 0 <= rec["val_adv_acc"] == p["adv_acc"][0] <= p["clean_acc"] <= 1  # on the same probe images
        assert p["n"] == PROBE["images"] and p["eps"] == [0.03] and p["attack"] == "pgd" and p["steps"] == 3


def test_validation_probe_stays_inside_the_eps_ball() -> None:
    """The probe's adversarial images are within eps (L-inf) of the clean ones and inside [0, 1]."""
    model, task = _setup()
    model.eval()
    probe = Probe(model, task.val, PROBE)
    seen: list[torch.Tensor] = []
    hook = model.register_forward_hook(lambda m, i, o: seen.append(i[0].detach().clone()))
    try:
        probe()
    finally:
        hook.remove()
    attacked = [x for x in seen if len(x) <= len(probe.y)]
    assert attacked
    for x in attacked:
        assert x.min() >= 0 and x.max() <= 1
        dist = (x[:, None] - probe.x[None]).abs().flatten(2).amax(2).min(1).values  # nearest probe image
        assert float(dist.max()) <= 0.03 + 1e-6


class Scripted:
    """A stand-in validation whose robust accuracies follow a script (epoch i gets script[i - 1])."""

    def __init__(self, script: list[float], start: int = 0) -> None:
        self.script, self.calls = script, start

    def __call__(self) -> dict[str, Any]:
        self.calls += 1
        adv = self.script[self.calls - 1]
        return {"val_clean_acc": 0.9, "val_adv_acc": adv, "val_n": 10, "val_seconds": 0.0, "probe": "{}"}


@pytest.mark.parametrize("select", ["best_robust", "best_clean", "last"])
def test_select_keeps_the_chosen_epochs_weights(select: str) -> None:
    model, task = _setup()
    snaps: dict[int, dict[str, torch.Tensor]] = {}

    def snap(rec: dict[str, Any]) -> None:
        snaps[rec["epoch"]] = {k: v.clone() for k, v in model.state_dict().items()}

    probe = Probe(model, task.val, PROBE)
    hist = train.fit(model, task.train, CFG, seed=0, on_epoch=snap, validate=probe, select=select)
    chosen = pick_epoch(hist, select)
    for k, v in model.state_dict().items():
        assert torch.equal(v, snaps[chosen][k]), k
    assert not model.training


def test_select_best_robust_picks_the_highest_stored_robust_accuracy() -> None:
    model, task = _setup()
    snaps: dict[int, dict[str, torch.Tensor]] = {}

    def snap(rec: dict[str, Any]) -> None:
        snaps[rec["epoch"]] = {k: v.clone() for k, v in model.state_dict().items()}

    hist = train.fit(
        model, task.train, CFG, seed=0, on_epoch=snap, validate=Scripted([0.2, 0.5, 0.3]), select="best_robust"
    )
    best = max(hist, key=lambda r: r["val_adv_acc"])["epoch"]
    assert pick_epoch(hist, "best_robust") == best != hist[-1]["epoch"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, snaps[best][k]), k


def test_select_ties_go_to_the_earlier_epoch_and_clean_breaks_robust_ties() -> None:
    h = [
        {"epoch": 1, "val_clean_acc": 0.8, "val_adv_acc": 0.4},
        {"epoch": 2, "val_clean_acc": 0.9, "val_adv_acc": 0.4},
        {"epoch": 3, "val_clean_acc": 0.9, "val_adv_acc": 0.1},
    ]
    assert pick_epoch(h, "best_robust") == 2
    assert pick_epoch(h, "best_clean") == 2
    assert pick_epoch(h, "last") == 3
    with pytest.raises(ValueError):
        pick_epoch([{"epoch": 1, "loss": 0.1}], "best_clean")


class Crash(Exception):
    pass


def _crash_at(epoch: int) -> Any:
    def cb(rec: dict[str, Any]) -> None:
        if rec["epoch"] == epoch:
            raise Crash

    return cb


def test_validation_resume_mid_training_gives_the_same_epoch_records(tmp_path: Path) -> None:
    """Interrupted after epoch 2 of 3 and resumed: the same per-epoch records (validation included) and weights."""
    model, task = _setup()
    ref = train.fit(model, task.train, CFG, seed=0, validate=Probe(model, task.val, PROBE), select="best_robust")
    ref_w = {k: v.clone() for k, v in model.state_dict().items()}

    model, task = _setup()
    ck = EpochCheckpoint(tmp_path, "fp")
    with pytest.raises(Crash):
        train.fit(
            model,
            task.train,
            CFG,
            0,
            on_epoch=_crash_at(2),
            resume=ck,
            validate=Probe(model, task.val, PROBE),
            select="best_robust",
        )
    model, task = _setup()
    torch.manual_seed(99)
    restored: list[list[dict[str, Any]]] = []
    ck = EpochCheckpoint(tmp_path, "fp", on_start=lambda s, h: restored.append(list(h)))
    hist = train.fit(model, task.train, CFG, 0, resume=ck, validate=Probe(model, task.val, PROBE), select="best_robust")
    drop = ("seconds", "val_seconds")
    strip = lambda hs: [{k: v for k, v in h.items() if k not in drop} for h in hs]  # noqa: E731
    assert [r["epoch"] for r in restored[0]] == [1, 2]
    assert strip(restored[0]) == strip(ref[:2])  # the restored records carry their validation fields
    assert strip(hist) == strip(ref)
    for k, v in model.state_dict().items():
        assert torch.equal(v, ref_w[k]), k


def test_select_resumed_run_keeps_an_earlier_selected_epoch(tmp_path: Path) -> None:
    """The selected epoch (1) is earlier than the one training resumes from (2): its weights come from disk."""
    model, task = _setup()
    snaps: dict[int, dict[str, torch.Tensor]] = {}

    def snap(rec: dict[str, Any]) -> None:
        snaps[rec["epoch"]] = {k: v.clone() for k, v in model.state_dict().items()}

    train.fit(model, task.train, CFG, 0, on_epoch=snap, validate=Scripted([0.6, 0.2, 0.4]), select="best_robust")

    model, task = _setup()
    with pytest.raises(Crash):
        train.fit(
            model,
            task.train,
            CFG,
            0,
            on_epoch=_crash_at(2),
            resume=EpochCheckpoint(tmp_path, "fp"),
            validate=Scripted([0.6, 0.2, 0.4]),
            select="best_robust",
        )
    assert sorted(p.name for p in tmp_path.glob("model-*.safetensors")) == [
        "model-1.safetensors",
        "model-2.safetensors",
    ]
    model, task = _setup()
    hist = train.fit(
        model,
        task.train,
        CFG,
        0,
        resume=EpochCheckpoint(tmp_path, "fp"),
        validate=Scripted([0.6, 0.2, 0.4], start=2),
        select="best_robust",
    )
    assert pick_epoch(hist, "best_robust") == 1
    for k, v in model.state_dict().items():
        assert torch.equal(v, snaps[1][k]), k


def test_validation_robust_overfitting_check() -> None:
    def h(advs: list[float], cleans: list[float]) -> list[dict[str, Any]]:
        probe = json.dumps({"n": 200})
        return [
            {"epoch": i + 1, "val_adv_acc": a, "val_clean_acc": c, "probe": probe}
            for i, (a, c) in enumerate(zip(advs, cleans, strict=True))
        ]

    warn = sanity.check_robust_overfitting(h([0.3, 0.5, 0.35], [0.7, 0.8, 0.9]))
    assert warn is not None and warn["level"] == "warning" and "epoch 2" in warn["message"]
    # Robust accuracy fell, but clean fell too: not the robust-overfitting pattern.
    assert sanity.check_robust_overfitting(h([0.3, 0.5, 0.35], [0.7, 0.9, 0.8]))["level"] == "ok"  # type: ignore[index]
    # Within the tolerance.
    assert sanity.check_robust_overfitting(h([0.3, 0.5, 0.49], [0.7, 0.8, 0.9]))["level"] == "ok"  # type: ignore[index]
    assert sanity.check_robust_overfitting([{"epoch": 1, "loss": 1.0}, {"epoch": 2, "loss": 0.5}]) is None


def test_validation_probe_pgd_counts_an_image_fooled_at_any_iterate() -> None:
    """The probe's early-stopping PGD says "fooled" exactly where some iterate of plain PGD (same start, same steps)
    misclassifies: never weaker than the last iterate, and it spends no steps on images already fooled."""
    from rttui.engine.attacks.pgd import per_sample_start, pgd
    from rttui.engine.validation import pgd_fooled

    model, task = _setup()
    train.fit(model, task.train, {**CFG, "epochs": 2}, seed=0)
    model.eval()
    x, y = task.val.head(25)
    eps, steps, alpha = 0.03, 3, 0.025
    start = per_sample_start(x, list(range(len(y))), eps, "linf", 0)
    fooled = pgd_fooled(model, x, y, eps, steps, alpha, "linf", start)
    any_iterate = torch.zeros(len(y), dtype=torch.bool)
    for k in range(steps + 1):
        xk = pgd(model, x, y, eps, k, alpha, x_init=start)
        with torch.no_grad():
            any_iterate |= model(xk).argmax(1) != y
    assert int((fooled != any_iterate).sum()) <= 1  # batch composition may move a float by an ulp
    xl = pgd(model, x, y, eps, steps, alpha, x_init=start)
    with torch.no_grad():
        last = model(xl).argmax(1) != y
    assert int((last & ~fooled).sum()) <= 1


def test_validation_split_of_a_lazy_image_folder_stays_lazy_and_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Image files decoded on the fly: both sides of the carved split stay lazy, the probe reads them, and the
    preflight still verifies every training file (a broken one is refused)."""
    from tests.datafiles import write_imagefolder

    monkeypatch.setenv("RTTUI_INMEMORY_MB", "0")  # nothing fits in memory: the training split is lazy

    root = write_imagefolder(tmp_path / "tree")
    task = data.load_task({"dataset": "imagefolder", "root": str(root), "val_size": 6, "test_size": 300}, 12)
    assert task.val is not None and task.train.lazy and task.val.lazy
    assert len(task.train) + len(task.val) == 24 and len(task.test) == 12
    assert set(task.val.y.tolist()) == {0, 1, 2} == set(task.train.y.tolist())
    model = models.create_model({"name": "test_resnet"}, 3, 12)
    rec = Probe(model, task.val, {**PROBE, "images": 4})()
    assert rec["val_n"] == 6 and json.loads(rec["probe"])["n"] == 4
    data.check_task(task)
    (root / "train" / "ant" / "ant_0.png").write_bytes(b"not an image")
    broken = data.load_task({"dataset": "imagefolder", "root": str(root), "val_size": 6, "test_size": 300}, 12)
    with pytest.raises(DataError):
        data.check_task(broken)
