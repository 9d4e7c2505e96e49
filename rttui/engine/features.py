"""Feature extraction on cached features: the frozen backbone runs once per dataset, the head trains on its output.

With the `feature_extraction` strategy the backbone is frozen in eval mode, so it computes the same features for
an image in every epoch; recomputing them is pure waste. The cached path trains the head with the very same loop
(`train.fit`: same optimizer, data order, batches and loss) on those features, so it gives the same head as the
plain path up to float rounding. It is taken only where that holds, checked on the model itself:

- only the classifier (`get_classifier()`) trains, and nothing transforms the inputs (no adversarial
  augmentation: `batch_transform` is None);
- every module still in train mode outside the classifier behaves the same in eval mode (dropout / drop-path
  with probability 0, pooling, activations, containers);
- on a few training images, classifier(features) reproduces the model's logits.

Everywhere else the plain loop runs. `fit_auto` returns which path ran, so results can record it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from rttui.engine import train
from rttui.engine.data import Split
from rttui.engine.strategies import StrategyState, inner

CACHED = "cached_features"
PLAIN = "plain"

# Parameter-free modules whose output does not depend on train/eval mode.
_MODE_FREE = (
    nn.Identity,
    nn.Flatten,
    nn.ReLU,
    nn.GELU,
    nn.SiLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardswish,
    nn.ReLU6,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.AvgPool2d,
    nn.MaxPool2d,
)


def _mode_free(m: nn.Module) -> bool:
    if isinstance(m, _MODE_FREE):
        return True
    if isinstance(m, nn.Dropout | nn.Dropout2d | nn.Dropout1d):
        return m.p == 0
    name = type(m).__name__
    if name == "DropPath":
        return float(getattr(m, "drop_prob", 1.0)) == 0.0
    # timm's pooling wrappers (SelectAdaptivePool2d, ...) hold no state and ignore the mode.
    return name.endswith("Pool2d") or name in {"SelectAdaptivePool2d", "ClassifierHead", "NormMlpClassifierHead"}


def backbone_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The input of the classifier: timm's forward_features then forward_head(pre_logits=True), normalized inputs."""
    net = inner(model)
    if hasattr(model, "mean") and net is not model:
        x = (x - model.mean) / model.std
    return net.forward_head(net.forward_features(x), pre_logits=True)


def why_not_cached(model: nn.Module, state: StrategyState | None, batch_transform: Any = None) -> str | None:
    """None when training on cached features gives the plain path's answer; else the reason it would not."""
    if state is None or state.name != "feature_extraction":
        return "only the feature_extraction strategy has a fixed backbone"
    if batch_transform is not None:
        return "inputs are transformed during training (adversarial augmentation)"
    net = inner(model)
    if not all(hasattr(net, a) for a in ("forward_features", "forward_head", "get_classifier")):
        return "the model does not expose timm's forward_features/forward_head"
    head = net.get_classifier()
    head_ids = {id(p) for p in head.parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable or {id(p) for p in trainable} != head_ids:
        return "parameters outside the classifier train"
    if float(getattr(net, "drop_rate", 0.0) or 0.0) > 0:
        return f"the head applies dropout (drop_rate={net.drop_rate}) in train mode"
    state.train_mode(model)
    try:
        head_mods = set(head.modules())
        for m in net.modules():
            if m.training and m not in head_mods and not list(m.children()) and not _mode_free(m):
                return f"{type(m).__name__} behaves differently in train mode"
    finally:
        model.eval()
    return None


@torch.no_grad()
@torch.no_grad()
def extract(model: nn.Module, data: Split | torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Backbone features for every image in order (eval mode), on the model's device.

    A lazy split streams through `Split.batches` (DataLoader workers): decoding a large training set into one
    tensor would not fit in memory, while its features do.
    """
    model.eval()
    dev = next(model.parameters()).device
    if isinstance(data, Split):
        return torch.cat([backbone_features(model, xb) for xb, _ in data.batches(batch_size, device=dev)])
    return torch.cat(
        [backbone_features(model, data[i : i + batch_size].to(dev)) for i in range(0, len(data), batch_size)]
    )


def fit_auto(
    model: nn.Module,
    data: Split,
    cfg: dict[str, Any],
    seed: int,
    state: StrategyState | None = None,
    on_epoch: train.EpochCallback | None = None,
    on_progress: train.ProgressCallback | None = None,
    batch_transform: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    resume: Any = None,
    timing: dict[str, float] | None = None,
    validate: Callable[[], dict[str, Any]] | None = None,
    select: str = "last",
) -> tuple[list[dict[str, Any]], str]:
    """`train.fit`, on cached backbone features wherever that gives the same answer; returns (history, path).

    `resume` (per-epoch checkpoints) serves the plain path only: head-only training is cheap to redo.
    """
    reason = why_not_cached(model, state, batch_transform)
    if reason is None and int(cfg["epochs"]) > 0:
        feats = extract(model, data)
        head = inner(model).get_classifier()
        probe = next(data.batches(min(8, len(data)), device=feats.device))[0]
        # The logits the plain loop would see (train-mode configuration), RNG untouched for the training itself.
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            state.train_mode(model)
            # On CUDA, cuDNN picks different (TF32) conv algorithms for different batch sizes, so the plain path
            # itself only agrees with itself to ~1e-3; on CPU the two must agree to float rounding.
            tol = 1e-3 if feats.device.type == "cuda" else 1e-5
            same = torch.allclose(head(feats[: len(probe)]), model(probe), rtol=10 * tol, atol=tol)
        model.eval()
        if same:
            if resume is not None and getattr(resume, "on_start", None) is not None:
                resume.on_start(0, [])  # a fresh start, announced as the plain path would
            # `validate` probes the whole model, whose head is the module trained here.
            history = train.fit(
                head,
                Split(feats, data.y),
                cfg,
                seed,
                None,
                on_epoch,
                on_progress,
                timing=timing,
                validate=validate,
                select=select,
            )
            model.eval()
            return history, CACHED
    history = train.fit(
        model,
        data,
        cfg,
        seed,
        state,
        on_epoch,
        on_progress,
        batch_transform,
        resume=resume,
        timing=timing,
        validate=validate,
        select=select,
    )
    return history, PLAIN
