"""Layer analysis: which depth groups the target task pulls on, and which ones fine-tuning actually changed.

Per timm depth group (see `strategies.depth_groups`) on a fixed batch of target images:
- gradient flow: the L2 norm of the gradient of the mean target cross-entropy w.r.t. the group's parameters,
  taken in eval mode (batch-norm statistics do not move) with `torch.autograd.grad`, so no `.grad` is ever
  left on a parameter;
- representation stability: linear CKA (Kornblith et al., 2019) between the group's features before and after
  fine-tuning. A group's features are the output of the last module, in execution order, that owns its
  parameters (a ResNet stage, a ViT block, the patch embedding), flattened per image.

It also holds the automatic freeze-depth rule that `layer_freezing` with `freeze = "auto"` uses. Pure torch:
this module never touches the store or the runner; it returns plain numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rttui.engine.strategies import depth_groups, head_names, inner

# Default of `auto_share`: the shallow groups frozen by `freeze = "auto"` together carry at most this share
# of the squared gradient norm (docs/how-to/choosing-what-to-freeze.md, "Automatic freeze depth").
AUTO_SHARE = 0.1


# ---- linear CKA ---------------------------------------------------------------------------------------------
def gram(features: torch.Tensor) -> torch.Tensor:
    """The linear-kernel Gram matrix K = X X^T of (n, ...) features, flattened per sample, in float64."""
    x = features.detach().reshape(features.shape[0], -1).to(torch.float64)
    return x @ x.T


def _center(k: torch.Tensor) -> torch.Tensor:
    """H K H with H = I - 11^T/n (double centering), i.e. the Gram matrix of column-centered features."""
    return k - k.mean(0, keepdim=True) - k.mean(1, keepdim=True) + k.mean()


def cka_from_grams(k: torch.Tensor, l_: torch.Tensor) -> float:
    """Linear CKA from two Gram matrices: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with centered Grams.

    nan when either representation is constant over the batch (its centered Gram is zero).
    """
    kc, lc = _center(k.to(torch.float64)), _center(l_.to(torch.float64))
    num = (kc * lc).sum()
    den = torch.linalg.matrix_norm(kc) * torch.linalg.matrix_norm(lc)
    if den <= 0:
        return math.nan
    return float(num / den)


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA between two representations of the same n samples ((n, ...) each; widths may differ)."""
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"CKA needs the same samples on both sides, got {x.shape[0]} and {y.shape[0]}")
    return cka_from_grams(gram(x), gram(y))


# ---- depth groups and their features ------------------------------------------------------------------------
def group_name(names: Sequence[str]) -> str:
    """A readable name for a group: the longest common module path ("layer1", "blocks.3"), else its parts."""
    parts = [n.split(".") for n in names]
    common: list[str] = []
    for level in zip(*(p[:-1] for p in parts), strict=False):
        if len(set(level)) != 1:
            break
        common.append(level[0])
    if common and all(len(p) > len(common) for p in parts):
        return ".".join(common)
    firsts = list(dict.fromkeys(p[0] for p in parts))
    return "+".join(firsts)


def _owner_modules(net: nn.Module, group: Sequence[str]) -> list[str]:
    """Maximal submodules whose parameters all belong to the group (their outputs are the group's features)."""
    members = set(group)
    inside: dict[str, bool] = {}
    for mname, mod in net.named_modules():
        names = [f"{mname}.{p}" if mname else p for p, _ in mod.named_parameters()]
        inside[mname] = bool(names) and all(n in members for n in names)
    out = []
    for mname in inside:
        if not mname or not inside[mname]:
            continue
        parent = mname.rsplit(".", 1)[0] if "." in mname else ""
        if not inside.get(parent, False):
            out.append(mname)
    return out


def _first_tensor(out: Any) -> torch.Tensor | None:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, list | tuple):
        for o in out:
            t = _first_tensor(o)
            if t is not None:
                return t
    if isinstance(out, dict):
        for o in out.values():
            t = _first_tensor(o)
            if t is not None:
                return t
    return None


def group_grams(
    model: nn.Module, groups: Sequence[Sequence[str]], x: torch.Tensor
) -> tuple[list[torch.Tensor | None], list[str]]:
    """One forward pass of x (eval mode, no grad); per group the Gram matrix of its features and the module used.

    A group with no owning module (only loose parameters such as a ViT's cls token) gets None.
    """
    net = inner(model)
    owners = [_owner_modules(net, g) for g in groups]
    mods = dict(net.named_modules())
    fired: dict[str, tuple[int, torch.Tensor]] = {}
    counter = [0]
    handles = []

    def hook_for(name: str) -> Any:
        def hook(_m: nn.Module, _inp: Any, out: Any) -> None:
            t = _first_tensor(out)
            if t is not None:
                counter[0] += 1
                fired[name] = (counter[0], gram(t).cpu())

        return hook

    for name in {n for o in owners for n in o}:
        handles.append(mods[name].register_forward_hook(hook_for(name)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    grams: list[torch.Tensor | None] = []
    used: list[str] = []
    for o in owners:
        seen = [(fired[n][0], n) for n in o if n in fired]
        if not seen:
            grams.append(None)
            used.append("")
            continue
        _, last = max(seen)
        grams.append(fired[last][1])
        used.append(last)
    return grams, used


# ---- gradient flow ------------------------------------------------------------------------------------------
def gradient_flow(
    model: nn.Module,
    groups: Sequence[Sequence[str]],
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int = 64,
    extra: Sequence[str] = (),
) -> tuple[list[float], float]:
    """L2 norm of d(mean cross-entropy over x)/d(params) per group, and the same for the `extra` names (the head).

    Eval mode, so batch-norm statistics and dropout do not move; `torch.autograd.grad`, so no `.grad` is left on
    any parameter; requires_grad flags and the train/eval mode are restored afterwards.
    """
    net = inner(model)
    by_name = dict(net.named_parameters())
    sets = [list(g) for g in groups] + [list(extra)]
    params = [by_name[n] for g in sets for n in g]
    flags = [p.requires_grad for p in params]
    was_training = model.training
    sums = torch.zeros(len(params), dtype=torch.float64)
    n = len(y)
    try:
        model.eval()
        for p in params:
            p.requires_grad_(True)
        acc: list[torch.Tensor | None] = [None] * len(params)
        for i in range(0, n, batch_size):
            xb, yb = x[i : i + batch_size], y[i : i + batch_size]
            loss = F.cross_entropy(model(xb), yb, reduction="sum") / n
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            for j, g in enumerate(grads):
                if g is not None:
                    acc[j] = g.detach() if acc[j] is None else acc[j] + g.detach()
        for j, g in enumerate(acc):
            if g is not None:
                sums[j] = g.to(torch.float64).pow(2).sum().cpu()
    finally:
        for p, f in zip(params, flags, strict=True):
            p.requires_grad_(f)
        model.train(was_training)
    out, k = [], 0
    for g in sets:
        out.append(float(sums[k : k + len(g)].sum().sqrt()))
        k += len(g)
    return out[:-1], out[-1]


# ---- the analysis of a run ----------------------------------------------------------------------------------
@dataclass
class Snapshot:
    """What one model (before or after fine-tuning) gives on the fixed batch."""

    grad_norms: list[float]
    head_grad_norm: float
    grams: list[torch.Tensor | None]
    modules: list[str]


def snapshot(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 64) -> Snapshot:
    """Gradient flow and per-group Gram matrices of one model on the fixed batch."""
    groups = depth_groups(model)
    norms, head = gradient_flow(model, groups, x, y, batch_size, sorted(head_names(model)))
    grams, used = group_grams(model, groups, x)
    return Snapshot(norms, head, grams, used)


def grad_shares(norms: Sequence[float], head: float) -> list[float]:
    """Each group's share of the squared gradient norm of the whole model (backbone groups plus the head).

    One SGD step lowers the loss by lr * sum ||g_i||^2 to first order, so a group's share is the part of that
    first-order decrease its parameters would bring.
    """
    total = sum(v * v for v in norms) + head * head
    return [(v * v) / total if total > 0 else 0.0 for v in norms]


def auto_freeze_depth(norms: Sequence[float], head: float, share: float = AUTO_SHARE) -> int:
    """The rule behind `freeze = "auto"`: the longest input-side prefix of groups whose cumulative share of
    the squared gradient norm (see `grad_shares`) stays at or below `share`."""
    k, cum = 0, 0.0
    for s in grad_shares(norms, head):
        cum += s
        if cum > share:
            break
        k += 1
    return k


@dataclass
class LayerAnalysis:
    """Per-group records of a run, as plain data (what the store keeps and `rttui layers` prints)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    head_grad_norm: float = 0.0

    def rows(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.records]


def analyze(
    model: nn.Module,
    before: Snapshot,
    after: Snapshot | None,
    frozen_groups: int,
    n_images: int,
    batch: str,
) -> LayerAnalysis:
    """Combine the before/after snapshots into one record per depth group."""
    groups = depth_groups(model)
    shares = grad_shares(before.grad_norms, before.head_grad_norm)
    recs = []
    for i, names in enumerate(groups):
        members = set(names)
        n_params = sum(p.numel() for n, p in inner(model).named_parameters() if n in members)
        cka = None
        if after is not None and before.grams[i] is not None and after.grams[i] is not None:
            v = cka_from_grams(before.grams[i], after.grams[i])  # type: ignore[arg-type]
            cka = None if math.isnan(v) else v
        recs.append(
            {
                "group_idx": i,
                "group": group_name(names),
                "module": before.modules[i],
                "n_params": n_params,
                "grad_norm": before.grad_norms[i],
                "grad_share": shares[i],
                "grad_norm_after": after.grad_norms[i] if after is not None else None,
                "cka": cka,
                "frozen": i < frozen_groups,
                "n_images": n_images,
                "batch": batch,
            }
        )
    return LayerAnalysis(recs, before.head_grad_norm)


ANALYSIS_IMAGES = 128  # the fixed batch's size: the first images of the target training split


def fixed_batch(x: torch.Tensor, y: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    """The analysis batch: the first n images of the target training split (fixed by split_seed, not the seed).

    Training images, never test images: `freeze = "auto"` chooses a configuration from this batch.
    """
    k = min(n, len(y))
    return x[:k], y[:k], f"target train[:{k}]"


def resolve_auto(model: nn.Module, strategy: dict[str, Any], before: Snapshot) -> tuple[dict[str, Any], dict[str, Any]]:
    """Replace `freeze = "auto"` by the depth the rule picks from the before-fine-tuning snapshot.

    Returns the strategy to apply and what to record with the run (the rule, its threshold and the depth).
    Any other strategy or freeze value passes through unchanged with nothing to record.
    """
    params = dict(strategy.get("params", {}))
    if strategy.get("name") != "layer_freezing" or params.get("freeze") != "auto":
        return strategy, {}
    share = float(params.get("auto_share", AUTO_SHARE))
    k = auto_freeze_depth(before.grad_norms, before.head_grad_norm, share)
    params["freeze"] = k
    info = {
        "freeze_auto": {
            "rule": "longest input-side prefix with cumulative gradient share <= auto_share",
            "auto_share": share,
            "depth": k,
            "n_groups": len(before.grad_norms),
        }
    }
    return {**strategy, "params": params}, info


class RunAnalysis:
    """Layer analysis riding along with a fine-tuning run: a snapshot before training, one after.

    The before snapshot is taken on exactly the model training starts from (source weights, seeded new head),
    so it also decides `freeze = "auto"`. It consumes no random numbers and leaves the model's weights,
    batch-norm statistics, requires_grad flags and train/eval mode as they were, so the run trains the same.
    """

    def __init__(
        self, model: nn.Module, strategy: dict[str, Any], x: torch.Tensor, y: torch.Tensor, n: int = ANALYSIS_IMAGES
    ):
        self.x, self.y, self.batch = fixed_batch(x, y, n)
        dev = next(model.parameters()).device
        self.x, self.y = self.x.to(dev), self.y.to(dev)
        self.before = snapshot(model, self.x, self.y)
        self.strategy, self.info = resolve_auto(model, strategy, self.before)

    def finish(self, model: nn.Module, frozen_groups: int) -> LayerAnalysis:
        after = snapshot(model, self.x, self.y)
        return analyze(model, self.before, after, frozen_groups, len(self.y), self.batch)
