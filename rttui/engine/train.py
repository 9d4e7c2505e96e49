"""Training loops. Seeds fix initialization and data order; the same seed on CPU gives the same numbers."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rttui.engine.data import Split
from rttui.engine.resume import EpochCheckpoint
from rttui.engine.strategies import StrategyState
from rttui.engine.validation import pick_epoch

EpochCallback = Callable[[dict[str, Any]], None]
ProgressCallback = Callable[[int, int], None]


class NonFiniteLoss(RuntimeError):
    """Training diverged (NaN or inf loss); the run fails with this reason."""


def waited(batches: Iterable[Any], clock: list[float]) -> Iterator[Any]:
    """The items of `batches`, adding to `clock[0]` the time spent waiting for each one."""
    it = iter(batches)
    while True:
        t = time.perf_counter()
        try:
            item = next(it)
        except StopIteration:
            return
        clock[0] += time.perf_counter() - t
        yield item


def data_wait_frac(timing: dict[str, float]) -> float | None:
    """The share of training time spent waiting for data (None when nothing was timed)."""
    sec = timing.get("seconds", 0.0)
    return round(timing.get("data_seconds", 0.0) / sec, 4) if sec > 0 else None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def pick_device(name: str | None = None) -> torch.device:
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def make_optimizer(params: list[nn.Parameter] | list[dict[str, Any]], cfg: dict[str, Any]) -> torch.optim.Optimizer:
    """The configured optimizer over plain parameters or param groups (a group's own `lr` wins)."""
    name, lr, wd = cfg.get("optimizer", "adam"), float(cfg["lr"]), float(cfg.get("weight_decay", 0.0))
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=wd)
    raise ValueError(f"unknown optimizer {name!r}")


def fit(
    model: nn.Module,
    data: Split,
    cfg: dict[str, Any],
    seed: int,
    state: StrategyState | None = None,
    on_epoch: EpochCallback | None = None,
    on_progress: ProgressCallback | None = None,
    batch_transform: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    resume: EpochCheckpoint | None = None,
    timing: dict[str, float] | None = None,
    validate: Callable[[], dict[str, Any]] | None = None,
    select: str = "last",
) -> list[dict[str, Any]]:
    """Train the model's trainable parameters with cross-entropy; returns one record per epoch.

    `batch_transform(model, x, y)` may replace inputs (adversarial augmentation); it is called in the
    strategy's train mode and must leave the model in it. A transform that draws from its own torch.Generator
    exposes it as `batch_transform.generator`, so that the checkpoint carries it. `resume` restores the last
    saved epoch (weights, optimizer, data order, the transform's generator, RNGs) and saves after every epoch, so
    a resumed run equals an uninterrupted one.
    With a strategy, `state.begin_epoch(model, epoch)` runs before every epoch (schedules such as gradual
    unfreezing change the trainable set there) and the optimizer gets the strategy's param groups.
    `timing`, when given, accumulates `seconds` (epochs' wall time), `data_seconds` (of which the loop waited for
    its next batch: decoding, resizing, copying to the device) and `images`, so a caller can tell whether the
    device starves.
    `validate()`, when given, runs after every epoch (rttui.engine.validation.Probe: eval mode, forked RNG, so the
    training itself is unchanged) and its fields join the epoch's record. `select` ("last", "best_clean",
    "best_robust"; see validation.pick_epoch) names the epoch whose weights the model holds when fit returns; a
    resumed run keeps the selected epoch's weights in its checkpoint folder, so it selects as an uninterrupted one.
    """
    dev = next(model.parameters()).device
    params: list[Any] = state.param_groups(model, cfg) if state else [p for p in model.parameters() if p.requires_grad]
    history: list[dict[str, Any]] = []
    epochs = int(cfg["epochs"])
    if not params or epochs == 0:
        return history
    opt = make_optimizer(params, cfg)
    gen = torch.Generator().manual_seed(seed)
    transform_gen = getattr(batch_transform, "generator", None)
    extra = {"batch_transform": transform_gen} if isinstance(transform_gen, torch.Generator) else {}
    bs = int(cfg["batch_size"])
    n = len(data)
    steps_per_epoch = math.ceil(n / bs)
    start = 0
    clock = [0.0]  # seconds this epoch waited for its next batch
    best: dict[str, torch.Tensor] | None = None  # the selected epoch's weights so far (select != "last")
    if resume is not None:
        start, history = resume.restore(model, opt, gen, extra)
        if select != "last" and history:
            chosen = pick_epoch(history, select)
            best = _weights(model) if chosen == start else resume.kept_weights(chosen)
    for epoch in range(start + 1, epochs + 1):
        t0 = time.perf_counter()
        (state.begin_epoch(model, epoch) if state else model.train())
        tot_loss, correct, seen = 0.0, 0, 0
        bn_trains = any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training for m in model.modules())
        batches = waited(data.batches(bs, shuffle=True, generator=gen, device=dev), clock)
        for s, (xb, yb) in enumerate(batches):
            # Batch norm cannot train on one image (torch raises): an epoch's single last image sits out.
            if len(yb) > 1 or not bn_trains:
                if batch_transform is not None:
                    xb = batch_transform(model, xb, yb)
                logits = model(xb)
                loss = F.cross_entropy(logits, yb)
                if not torch.isfinite(loss):
                    raise NonFiniteLoss(f"loss became {loss.item()} at epoch {epoch}, step {s + 1}")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                tot_loss += loss.item() * len(yb)
                correct += int((logits.argmax(1) == yb).sum())
                seen += len(yb)
            if on_progress:
                on_progress((epoch - 1) * steps_per_epoch + s + 1, epochs * steps_per_epoch)
        if timing is not None:
            timing["seconds"] = timing.get("seconds", 0.0) + time.perf_counter() - t0
            timing["data_seconds"] = timing.get("data_seconds", 0.0) + clock[0]
            timing["images"] = timing.get("images", 0.0) + seen
        clock[0] = 0.0
        rec = {
            "epoch": epoch,
            "loss": tot_loss / max(seen, 1),
            "train_acc": correct / max(seen, 1),
            "seconds": time.perf_counter() - t0,
        }
        if validate is not None:
            rec.update(validate())
        history.append(rec)
        chosen = pick_epoch(history, select) if select != "last" else None
        if chosen == epoch:
            best = _weights(model)
        if resume is not None:  # durable before anyone is told the epoch is done
            resume.save(model, opt, gen, epoch, history, extra, keep=chosen)
        if on_epoch:
            on_epoch(rec)
    opt.zero_grad(set_to_none=True)  # no stale gradients left on the weights
    if select != "last" and history and pick_epoch(history, select) != history[-1]["epoch"]:
        if best is None:
            raise RuntimeError(f"the weights of the selected epoch ({select}) were not kept")
        model.load_state_dict(best)
    model.eval()
    return history


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the model's state (on the CPU), to restore the selected epoch at the end."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
