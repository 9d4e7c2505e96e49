"""Per-epoch checkpoints: training interrupted after an epoch and resumed equals an uninterrupted run, bit for bit."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rttui.engine import data, models, techniques, train
from rttui.engine.resume import EpochCheckpoint

CFG = {"epochs": 3, "lr": 2e-3, "batch_size": 16, "optimizer": "adam"}


def _setup() -> tuple[torch.nn.Module, data.Split]:
    train.seed_everything(0)
    task = data.load_task({"dataset": "digits", "classes": [0, 1, 2], "train_size": 64, "test_size": 20}, 16)
    model = models.create_model({"name": "test_resnet", "kwargs": {"drop_rate": 0.2}}, task.num_classes, 16)
    return model, task.train


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a loaded 2-core machine, two OpenMP threads can be 100x slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class Crash(Exception):
    pass


def test_resumed_training_equals_uninterrupted(tmp_path: Path) -> None:
    model, split = _setup()
    hist_ref = train.fit(model, split, CFG, seed=0)
    ref = {k: v.clone() for k, v in model.state_dict().items()}

    # Interrupted after epoch 2 (its checkpoint is durable before the epoch callback runs) ...
    model, split = _setup()
    ck = EpochCheckpoint(tmp_path / "resume", "fp")

    def crash(rec: dict) -> None:
        if rec["epoch"] == 2:
            raise Crash

    with pytest.raises(Crash):
        train.fit(model, split, CFG, seed=0, on_epoch=crash, resume=ck)
    # ... and resumed in a fresh model with other RNG states: the checkpoint restores everything that matters.
    model, split = _setup()
    torch.manual_seed(1234)
    starts: list[int] = []
    ck = EpochCheckpoint(tmp_path / "resume", "fp", on_start=lambda s, h: starts.append(s))
    hist = train.fit(model, split, CFG, seed=0, resume=ck)
    assert starts == [2]
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    assert [h["loss"] for h in hist] == [h["loss"] for h in hist_ref]
    for k, v in model.state_dict().items():
        assert torch.equal(v, ref[k]), k
    assert len(list((tmp_path / "resume").glob("model-*.safetensors"))) == 1  # older epochs cleaned up


def _start_after_one_epoch(tmp_path: Path, fingerprint: str, batch_transform=None) -> list[int]:
    """Train one epoch with a checkpoint fingerprinted "batch16", then fit again from it with `fingerprint`
    and `batch_transform`; returns the epochs the second fit announced it starts from."""
    model, split = _setup()
    train.fit(model, split, {**CFG, "epochs": 1}, seed=0, resume=EpochCheckpoint(tmp_path, "batch16"))
    starts: list[int] = []
    model, split = _setup()
    train.fit(
        model,
        split,
        {**CFG, "epochs": 1},
        seed=0,
        resume=EpochCheckpoint(tmp_path, fingerprint, lambda s, h: starts.append(s)),
        batch_transform=batch_transform,
    )
    return starts


def test_checkpoint_of_another_setup_is_not_resumed(tmp_path: Path) -> None:
    assert _start_after_one_epoch(tmp_path, "batch8") == [0]


def test_torn_weights_are_not_trusted(tmp_path: Path) -> None:
    model, split = _setup()
    train.fit(model, split, {**CFG, "epochs": 1}, seed=0, resume=EpochCheckpoint(tmp_path, "fp"))
    w = next(tmp_path.glob("model-*.safetensors"))
    w.write_bytes(w.read_bytes()[:-10] + b"0123456789")
    starts: list[int] = []
    model, split = _setup()
    train.fit(
        model,
        split,
        {**CFG, "epochs": 1},
        seed=0,
        resume=EpochCheckpoint(tmp_path, "fp", lambda s, h: starts.append(s)),
    )
    assert starts == [0]


@pytest.mark.parametrize(
    "adv",
    [{"attack": "fgsm", "eps": 0.1, "fraction": 0.5}, {"attack": "pgd", "eps": 0.1, "steps": 2, "fraction": 1.0}],
    ids=["augmentation-fgsm-half", "pretraining-pgd-all"],
)
def test_resumed_adversarial_training_equals_uninterrupted(tmp_path: Path, adv: dict) -> None:
    """The generator behind the adversarial examples (which samples, which random starts) is in the checkpoint."""
    cfg = {**CFG, "epochs": 2}
    model, split = _setup()
    hist_ref = train.fit(model, split, cfg, seed=0, batch_transform=techniques.adversarial_transform(adv, 0))
    ref = {k: v.clone() for k, v in model.state_dict().items()}

    def crash(rec: dict) -> None:
        if rec["epoch"] == 1:
            raise Crash

    # Interrupted after epoch 1 ...
    model, split = _setup()
    first = techniques.adversarial_transform(adv, 0)
    with pytest.raises(Crash):
        train.fit(
            model, split, cfg, seed=0, on_epoch=crash, resume=EpochCheckpoint(tmp_path, "fp"), batch_transform=first
        )
    # ... and resumed as a restarted process would: a fresh model, other RNG states, a fresh transform at its seed.
    model, split = _setup()
    torch.manual_seed(1234)
    starts: list[int] = []
    hist = train.fit(
        model,
        split,
        cfg,
        seed=0,
        resume=EpochCheckpoint(tmp_path, "fp", lambda s, h: starts.append(s)),
        batch_transform=techniques.adversarial_transform(adv, 0),
    )
    assert starts == [1]
    for k, v in model.state_dict().items():
        assert torch.equal(v, ref[k]), k
    assert [h["loss"] for h in hist] == [h["loss"] for h in hist_ref]


def test_checkpoint_without_the_transforms_generator_is_not_resumed(tmp_path: Path) -> None:
    """A state saved without the transform's generator (an older checkpoint) would not continue identically."""
    adv = techniques.adversarial_transform({"attack": "fgsm", "eps": 0.1, "fraction": 0.5}, 0)
    assert _start_after_one_epoch(tmp_path, "batch16", adv) == [0]
