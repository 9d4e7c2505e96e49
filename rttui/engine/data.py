"""Dataset registry. Every loader returns images as float tensors in [0, 1] (N, 3, H, W) and labels 0..k-1.

Splits are fixed by `split_seed` (not the run seed), so every seed and every configuration is tested on the
same images, which paired and per-sample tests need.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rttui.errors import DataError


@dataclass
class Split:
    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Task:
    """A classification task: train/test splits plus the class names (index = label)."""

    name: str
    classes: list[str]
    train: Split
    test: Split

    @property
    def num_classes(self) -> int:
        return len(self.classes)


Loader = Callable[[dict[str, Any], int], Task]
REGISTRY: dict[str, Loader] = {}


def register(name: str) -> Callable[[Loader], Loader]:
    def deco(fn: Loader) -> Loader:
        REGISTRY[name] = fn
        return fn

    return deco


def _to_images(arr: np.ndarray, image_size: int) -> torch.Tensor:
    """(N, H, W) or (N, H, W, C) uint8/float in [0, 1] -> (N, 3, S, S) float32 in [0, 1]."""
    t = torch.as_tensor(arr, dtype=torch.float32)
    if t.ndim == 3:
        t = t.unsqueeze(1)
    elif t.ndim == 4 and t.shape[-1] in (1, 3):
        t = t.permute(0, 3, 1, 2)
    if t.shape[1] == 1:
        t = t.expand(-1, 3, -1, -1)
    if t.shape[-1] != image_size or t.shape[-2] != image_size:
        t = F.interpolate(t, size=(image_size, image_size), mode="bilinear", align_corners=False)
    return t.clamp_(0, 1).contiguous()


def _stratified_split(
    y: np.ndarray, test_size: int, train_size: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    test_size = min(test_size, len(y) // 2)
    tr, te = train_test_split(idx, test_size=test_size, random_state=seed, stratify=y)
    if train_size is not None and train_size < len(tr):
        tr, _ = train_test_split(tr, train_size=train_size, random_state=seed, stratify=y[tr])
    return np.sort(tr), np.sort(te)


def select_classes(y: np.ndarray, classes: list[Any] | None, names: list[str]) -> tuple[np.ndarray, list[str]]:
    """Indices of the samples in `classes` and the kept class names; `classes` may hold indices or names."""
    if classes is None:
        return np.arange(len(y)), list(names)
    wanted: list[int] = []
    for c in classes:
        if isinstance(c, int) and 0 <= c < len(names):
            wanted.append(c)
        elif isinstance(c, str) and c in names:
            wanted.append(names.index(c))
        else:
            raise DataError(f"class {c!r} is not in this dataset; use indices 0..{len(names) - 1} or names")
    keep = np.flatnonzero(np.isin(y, wanted))
    return keep, [names[c] for c in wanted]


def relabel(y: np.ndarray, kept: list[str], names: list[str]) -> np.ndarray:
    lut = {names.index(n): i for i, n in enumerate(kept)}
    return np.array([lut[int(v)] for v in y], dtype=np.int64)


@register("digits")
def load_digits_task(cfg: dict[str, Any], image_size: int) -> Task:
    """scikit-learn's bundled handwritten digits (1,797 8x8 images): the offline default."""
    from sklearn.datasets import load_digits

    d = load_digits()
    names = [str(i) for i in range(10)]
    images = d.images.astype(np.float32) / 16.0
    keep, kept = select_classes(d.target, cfg.get("classes"), names)
    y = relabel(d.target[keep], kept, names)
    tr, te = _stratified_split(y, int(cfg.get("test_size", 300)), cfg.get("train_size"), int(cfg.get("split_seed", 0)))
    x = _to_images(images[keep], image_size)
    yt = torch.as_tensor(y)
    return Task("digits", kept, Split(x[tr], yt[tr]), Split(x[te], yt[te]))


def load_task(cfg: dict[str, Any], image_size: int) -> Task:
    """Load a dataset by its registry name (`cfg['dataset']`)."""
    name = cfg.get("dataset", "digits")
    loader = REGISTRY.get(name)
    if loader is None:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(sorted(REGISTRY))}")
    return loader(cfg, image_size)
