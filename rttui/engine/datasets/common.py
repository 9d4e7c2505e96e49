"""What every on-disk loader shares: where files live, seeded subsetting, image decoding, split building.

Never decides a split with the run seed: only `split_seed`, so every run of a study sees the same images.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from rttui.engine.data import Split, default_workers
from rttui.errors import DataError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


def data_home() -> Path:
    """$RTTUI_DATA, else ./data: the folder under which each dataset has its own default root."""
    return Path(os.environ.get("RTTUI_DATA") or "data")


def dataset_root(cfg: dict[str, Any], default_name: str) -> Path:
    """The study's `root`, else <data home>/<dataset name>."""
    root = cfg.get("root")
    return Path(root).expanduser() if root else data_home() / default_name


def subsample(y: np.ndarray, size: int | None, per_class: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded subset: at most `per_class` of each class, then at most `size` in all.

    The total cap takes classes in turn (balanced while a class has images left), so a cap keeps every class.
    The same seed gives the same subset; another seed another one.
    """
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(y))
    if len(idx) == 0:
        return idx
    ys = y[idx]
    # rank of each sample within its class, in the permuted order
    order = np.argsort(ys, kind="stable")
    rank = np.empty(len(idx), dtype=np.int64)
    sorted_y = ys[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_y)) + 1]
    counts = np.diff(np.r_[starts, len(sorted_y)])
    rank[order] = np.arange(len(idx)) - np.repeat(starts, counts)
    keep = np.ones(len(idx), dtype=bool) if per_class is None else rank < per_class
    idx, rank = idx[keep], rank[keep]
    if size is not None and size < len(idx):
        idx = idx[np.argsort(rank, kind="stable")[:size]]
    return np.sort(idx)


def pick_classes(names: list[str], classes: Any, seed: int, where: str) -> list[int]:
    """Class indices to keep: all (None), `classes` names or indices, or an int N drawn with `seed`."""
    if classes is None:
        return list(range(len(names)))
    if isinstance(classes, int) and not isinstance(classes, bool):
        if not 2 <= classes <= len(names):
            raise DataError(
                f"{where}: classes = {classes} but the dataset has {len(names)} classes; use 2..{len(names)}"
            )
        rng = np.random.default_rng(seed)
        return sorted(rng.choice(len(names), size=classes, replace=False).tolist())
    out = []
    for c in classes:
        if isinstance(c, int) and not isinstance(c, bool) and 0 <= c < len(names):
            out.append(c)
        elif isinstance(c, str) and c in names:
            out.append(names.index(c))
        else:
            raise DataError(f"{where}: class {c!r} is not in this dataset; use indices 0..{len(names) - 1} or names")
    return out


def to_images(arr: np.ndarray | torch.Tensor, image_size: int) -> torch.Tensor:
    """uint8 (N, H, W[, C]) or (N, C, H, W) -> float (N, 3, S, S) in [0, 1] (gray repeated to 3 channels)."""
    t = torch.as_tensor(arr)
    integer = not t.is_floating_point()
    if t.ndim == 3:
        t = t.unsqueeze(1)
    elif t.shape[-1] in (1, 3, 4) and t.shape[1] not in (1, 3, 4):
        t = t.permute(0, 3, 1, 2)
    t = t[:, :3].float()
    if integer:
        t = t / 255.0
    if t.shape[1] == 1:
        t = t.expand(-1, 3, -1, -1)
    if t.shape[-2:] != (image_size, image_size):
        t = F.interpolate(t, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
    return t.clamp_(0, 1).contiguous()


def decode_image(path: Path, image_size: int) -> torch.Tensor:
    """One image file -> float (3, S, S) in [0, 1]; grayscale and palette images become 3 equal channels."""
    return decode_image_u8(path, image_size).float().div_(255.0)


def decode_image_u8(path: Path, image_size: int) -> torch.Tensor:
    """One image file -> uint8 (3, S, S): what DataLoader workers send (a quarter of the float bytes to copy and
    pin); `Split` turns it into [0, 1] floats on the device, which gives the same floats `decode_image` does."""
    from PIL import Image, UnidentifiedImageError

    try:
        with _no_bombs(path), Image.open(path) as im:
            im = im.convert("RGB").resize((image_size, image_size), Image.Resampling.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"image {path} is missing; restore it or remove it from the dataset folder") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"image {path} cannot be decoded ({type(exc).__name__}); replace or delete the file") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


@contextmanager
def _no_bombs(path: Path) -> Iterator[None]:
    """PIL's decompression-bomb guard (an image of more pixels than `Image.MAX_IMAGE_PIXELS`: a warning, twice
    that: an error) as one DataError naming the file: no dataset rttui reads needs images that large."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DataError(
            f"image {path} has more than {Image.MAX_IMAGE_PIXELS:,} pixels (PIL's decompression-bomb limit); "
            "shrink it or remove it from the dataset folder"
        ) from None


def check_image_header(path: Path) -> None:
    """Cheap check that a file is an image PIL can read (header only), for lazy splits before a run."""
    from PIL import Image, UnidentifiedImageError

    try:
        with _no_bombs(path), Image.open(path) as im:
            im.verify()
    except FileNotFoundError:
        raise DataError(f"image {path} is missing; restore it or remove it from the dataset folder") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"image {path} cannot be decoded ({type(exc).__name__}); replace or delete the file") from None


class ImageFiles(Dataset):
    """Image files decoded on the fly: (image uint8 (3, S, S), label); `Split` makes [0, 1] floats of them."""

    dtype = torch.uint8  # what an image is handed over as (a split of them is held in memory as uint8)

    def __init__(self, files: Sequence[Path], labels: np.ndarray, image_size: int) -> None:
        self.files = list(files)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return decode_image_u8(self.files[i], self.image_size), int(self.labels[i])

    def verify(self) -> None:
        for f in self.files:
            check_image_header(f)


class ArrayImages(Dataset):
    """Images held compactly (uint8 array), converted and resized per item: large resize of small data."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, image_size: int) -> None:
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return to_images(self.images[i : i + 1], self.image_size)[0], int(self.labels[i])


class Mapped(Dataset):
    """Any (PIL image or tensor, label) dataset at chosen indices, as (3, S, S) floats and new labels."""

    def __init__(self, base: Any, indices: np.ndarray, labels: np.ndarray, image_size: int) -> None:
        self.base, self.indices, self.labels, self.image_size = base, indices, labels, image_size

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = self.base[int(self.indices[i])][0]
        if not isinstance(img, torch.Tensor):
            img = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1)
        x = to_images(img.unsqueeze(0), self.image_size)[0]
        return x, int(self.labels[i])


def in_memory_budget() -> int:
    """Bytes a training split may take in memory before it is loaded lazily ($RTTUI_INMEMORY_MB, default 2048):
    as uint8 pixels for image files (decoded once; ChestX-ray8's 8,000 training images at 224 take 1.2 GB), as
    float tensors for the rest."""
    mb = os.environ.get("RTTUI_INMEMORY_MB", "2048")
    return int(mb) * (1 << 20) if mb.strip().isdigit() else 2048 << 20


def make_split(dataset: Dataset, labels: np.ndarray, image_size: int, materialize: bool | None = None) -> Split:
    """A Split over `dataset`: decoded into memory when it fits the budget (or `materialize`, as floats: a test
    split), else lazy. A training split of image files is held as uint8 (a quarter of the float bytes)."""
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    n = len(y)
    keep_uint8 = materialize is None and getattr(dataset, "dtype", None) == torch.uint8
    if materialize is None:
        materialize = n * 3 * image_size * image_size * (1 if keep_uint8 else 4) <= in_memory_budget()
    workers = 0 if n < 512 else default_workers()
    split = Split(y=y, dataset=dataset, workers=workers)
    if materialize:
        split.load(keep_uint8)  # in memory from here on; the dataset stays for its file names
    return split


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__
