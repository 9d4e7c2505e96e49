"""Dataset registry. Every loader returns images as float tensors in [0, 1] (N, 3, H, W) and labels 0..k-1.

Splits are fixed by `split_seed` (not the run seed), so every seed and every configuration is tested on the
same images, which paired and per-sample tests need.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from rttui.errors import DataError

if TYPE_CHECKING:
    from torch.utils.data import DataLoader, Dataset


class Split:
    """Images and labels of one side of a task.

    Either in memory (float images (N, 3, H, W) in [0, 1], or the uint8 pixels a training split of image files
    is held as: a quarter of the bytes, decoded once; small tasks such as digits, and every test split, which is
    capped) or lazy (`dataset`: a torch Dataset yielding (image, label) decoded on the fly, for training sets too
    large for memory, e.g. ImageNet-100 at 224x224 is ~7.5 GB as uint8, ~30 GB as floats). Labels are always in
    memory. `batches()` is the one way training iterates either kind; `x` and `head()` always give floats.
    """

    def __init__(
        self,
        x: torch.Tensor | None = None,
        y: torch.Tensor | None = None,
        dataset: Dataset | None = None,
        workers: int | None = None,
        ids: np.ndarray | None = None,
    ) -> None:
        if y is None:
            raise ValueError("Split needs its labels y")
        if x is None and dataset is None:
            raise ValueError("Split needs images: x (in memory) or dataset (lazy)")
        self._x = x
        self.y = y
        self.dataset = dataset
        self.workers = workers
        # Where each image sits in the dataset the loader read (None: not recorded), so a test can tell by index
        # that validation images come from the training side and never from the test split.
        self.ids = ids

    @property
    def lazy(self) -> bool:
        return self._x is None

    @property
    def x(self) -> torch.Tensor:
        """The images as one float tensor; a lazy split is decoded once on first use (only small splits should),
        a uint8-held one is converted on every call (iterate `batches` or take `head` instead)."""
        if self._x is None:
            self.load()
        return as_float(self._x)  # type: ignore[arg-type]

    def load(self, keep_uint8: bool = False) -> None:
        """Decode every image into memory now: as floats, or (`keep_uint8`) as the decoder's uint8 pixels."""
        parts = [xb for xb, _ in self._loader(256, None, torch.device("cpu"))]
        if not keep_uint8:
            parts = [as_float(xb) for xb in parts]
        self._x = torch.cat(parts) if parts else torch.zeros(0, 3, 1, 1)

    @x.setter
    def x(self, value: torch.Tensor) -> None:
        self._x = value

    def __len__(self) -> int:
        return len(self.y)

    def head(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first `n` images and labels; a lazy split decodes only those (`x` would decode all of them:
        ImageNet-100's training split at 224 pixels is ~30 GB as floats)."""
        k = min(n, len(self))
        if not self.lazy or k == 0:
            return as_float(self._x[:k]) if self._x is not None else self.x[:k], self.y[:k]
        return as_float(torch.stack([self.dataset[i][0] for i in range(k)])), self.y[:k]  # type: ignore[index]

    def subset(self, idx: np.ndarray) -> Split:
        """The images at positions `idx` (in that order), kept the way this split keeps them (lazy stays lazy)."""
        from torch.utils.data import Subset

        ids = self.ids[idx] if self.ids is not None else None
        t = torch.as_tensor(idx, dtype=torch.long)
        # The dataset rides along (lazy splits read from it; in-memory ones keep it for their file names).
        ds = Subset(self.dataset, idx.tolist()) if self.dataset is not None else None
        x = None if self.lazy else self._x[t]  # type: ignore[index]
        return Split(x, self.y[t], dataset=ds, workers=self.workers, ids=ids)

    def _loader(self, batch_size: int, order: torch.Tensor | None, device: torch.device) -> DataLoader:
        from torch.utils.data import DataLoader

        workers = default_workers() if self.workers is None else self.workers
        return DataLoader(
            self.dataset,  # type: ignore[arg-type]
            batch_size=batch_size,
            sampler=order.tolist() if order is not None else None,
            num_workers=workers,
            pin_memory=device.type == "cuda",
            prefetch_factor=PREFETCH if workers else None,
            persistent_workers=False,  # one loader per epoch (its seeded order); workers start in well under a step
        )

    def batches(
        self,
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(images, labels) batches on `device`; with `shuffle`, one `randperm` of `generator` per call.

        Both kinds draw the order the same way, so a seeded epoch visits the same samples in the same order
        whether the split is in memory or lazy.
        """
        dev = torch.device(device)
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else None
        if not self.lazy:
            # One copy per call (per epoch), freed when training ends; a no-op on CPU. uint8 pixels become floats
            # batch by batch, on the device.
            x_all, y_all = self._x.to(dev), self.y.to(dev)  # type: ignore[union-attr]
            idx_all = order.to(dev) if order is not None else None
            for s in range(0, n, batch_size):
                if idx_all is None:
                    yield as_float(x_all[s : s + batch_size]), y_all[s : s + batch_size]
                else:
                    idx = idx_all[s : s + batch_size]
                    yield as_float(x_all[idx]), y_all[idx]
            return
        try:
            for xb, yb in self._loader(batch_size, order, dev):
                yield as_float(xb.to(dev, non_blocking=True)), yb.to(dev, non_blocking=True)
        except DataError as exc:  # from a worker: torch prepends the worker's traceback; keep the message
            raise DataError(str(exc).strip().splitlines()[-1].split("DataError: ", 1)[-1]) from None


# Batches each DataLoader worker keeps ready: decoding time varies per image (JPEG sizes), so a deeper queue keeps
# the device fed through slow ones; uint8 batches keep it cheap (64 images at 224 pixels: 9.6 MB).
PREFETCH = 4


def as_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images (as decoders and workers hand them over) -> float in [0, 1]; float images as they are."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x


def default_workers() -> int:
    """DataLoader workers for lazy splits: $RTTUI_DATA_WORKERS, else up to 8 but one core left free."""
    env = os.environ.get("RTTUI_DATA_WORKERS")
    if env is not None and env.strip().isdigit():
        return int(env)
    return max(0, min(8, (os.cpu_count() or 1) - 1))


@dataclass
class Task:
    """A classification task: train/test splits plus the class names (index = label)."""

    name: str
    classes: list[str]
    train: Split
    test: Split
    # Carved from the training split when the target sets `val_size` (rttui.engine.validation); never the test set.
    val: Split | None = None

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
    n_cls = len(np.unique(y))
    for key, size in (("train_size", train_size), ("test_size", test_size)):
        if size is not None and size < n_cls:
            raise DataError(
                f"{key} = {size} is smaller than the {n_cls} classes (a stratified split needs one image of each); "
                f"set {key} >= {n_cls}"
            )
    test_size = min(test_size, len(y) // 2)
    k = len(np.unique(y))
    # Stratified where every class fits on both sides; a cap below the class count (a smoke run's few images)
    # draws a plain seeded subset, which scikit-learn's stratified split refuses.
    strat = y if min(test_size, len(y) - test_size) >= k else None
    tr, te = train_test_split(idx, test_size=test_size, random_state=seed, stratify=strat)
    if train_size is not None and train_size < len(tr):
        strat = y[tr] if min(train_size, len(tr) - train_size) >= k else None
        tr, _ = train_test_split(tr, train_size=train_size, random_state=seed, stratify=strat)
    return np.sort(tr), np.sort(te)


def select_classes(
    y: np.ndarray, classes: list[Any] | int | None, names: list[str], seed: int = 0
) -> tuple[np.ndarray, list[str]]:
    """Indices of the samples in `classes` and the kept class names; `classes` may hold indices or names,
    or be an int N: N classes drawn with `seed`."""
    if classes is None:
        return np.arange(len(y)), list(names)
    if isinstance(classes, int) and not isinstance(classes, bool):
        if not 2 <= classes <= len(names):
            raise DataError(f"classes = {classes} but the dataset has {len(names)} classes; use 2..{len(names)}")
        classes = sorted(np.random.default_rng(seed).choice(len(names), size=classes, replace=False).tolist())
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
    keep, kept = select_classes(d.target, cfg.get("classes"), names, int(cfg.get("split_seed", 0)))
    y = relabel(d.target[keep], kept, names)
    tr, te = _stratified_split(y, int(cfg.get("test_size", 300)), cfg.get("train_size"), int(cfg.get("split_seed", 0)))
    x = _to_images(images[keep], image_size)
    yt = torch.as_tensor(y)
    return Task("digits", kept, Split(x[tr], yt[tr], ids=keep[tr]), Split(x[te], yt[te], ids=keep[te]))


def load_task(cfg: dict[str, Any], image_size: int) -> Task:
    """Load a dataset by its registry name (`cfg['dataset']`)."""
    name = cfg.get("dataset", "digits")
    if name != "digits":
        import rttui.engine.datasets  # noqa: F401  (registers the on-disk loaders)
    if name.startswith("torchvision:"):
        from rttui.engine.datasets.tv import load_torchvision

        task = load_torchvision(name, cfg, image_size)
    else:
        loader = REGISTRY.get(name)
        if loader is None:
            raise DataError(
                f"unknown dataset {name!r}; choose one of {', '.join(sorted(REGISTRY))} or torchvision:<Name>"
            )
        task = loader(cfg, image_size)
    if cfg.get("val_size") is not None:  # only a target section has it: the test split is never touched
        from rttui.engine.validation import carve

        task.train, task.val = carve(task.train, cfg["val_size"], int(cfg.get("val_seed", 0)))
    return task


def check_task(task: Task) -> None:
    """Before a run: a lazy training split's files must all be readable images (test splits are decoded)."""
    ds = task.train.dataset
    # A validation split makes the training side a Subset of the loader's dataset: verify the whole of it.
    verify = getattr(ds, "verify", None) or getattr(getattr(ds, "dataset", None), "verify", None)
    if task.train.lazy and verify is not None:
        verify()
