"""CIFAR-10/100 (their python-pickle batches on disk) and any other torchvision dataset by name.

CIFAR batches are read here with a restricted unpickler (numpy arrays and lists only, never arbitrary code);
torchvision is used to download them when the study allows it.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from rttui.engine.data import Task, register
from rttui.engine.datasets.common import (
    ArrayImages,
    Mapped,
    dataset_root,
    first_line,
    make_split,
    pick_classes,
    subsample,
    to_images,
)
from rttui.errors import DataError

CIFAR = {
    # name: (folder, train files, test files, meta file, label key, names key, torchvision class)
    "cifar10": (
        "cifar-10-batches-py",
        [f"data_batch_{i}" for i in range(1, 6)],
        ["test_batch"],
        "batches.meta",
        "labels",
        "label_names",
        "CIFAR10",
    ),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "meta", "fine_labels", "fine_label_names", "CIFAR100"),
}

_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _ArraysOnly(pickle.Unpickler):
    """Unpickles CIFAR batches: dicts, lists, bytes and numpy arrays; anything else is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")


def _read_batch(path: Path, layout: str) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"{path} is missing; expected {layout} (or set download = true)")
    try:
        with open(path, "rb") as f:
            d = _ArraysOnly(f, encoding="latin1").load()  # the Python 2 pickles, read as torchvision does
    except Exception as exc:
        raise DataError(f"{path} is not a CIFAR python batch ({first_line(exc)}); re-extract the archive") from None
    if not isinstance(d, dict):
        raise DataError(f"{path} is not a CIFAR python batch (not a dict); re-extract the archive")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in d.items()}


def _cifar(name: str, cfg: dict[str, Any], image_size: int) -> Task:
    folder, train_files, test_files, meta_file, label_key, names_key, tv_name = CIFAR[name]
    root = dataset_root(cfg, name)
    base = root / folder
    layout = f"{base}/{{{','.join([*train_files, *test_files, meta_file])}}} (torchvision's python version)"
    if not base.is_dir():
        if cfg.get("download"):
            _download(tv_name, root, name)
        else:
            raise DataError(
                f"{name}: folder {base} does not exist; put the extracted {folder}/ under {root} "
                f"(root = ...), or set download = true"
            )
    meta = _read_batch(base / meta_file, layout)
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta.get(names_key, [])]
    if not names:
        raise DataError(f"{base / meta_file} has no {names_key!r}; re-extract the {folder} archive")

    def read(files: list[str]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for fn in files:
            d = _read_batch(base / fn, layout)
            if "data" not in d or label_key not in d:
                raise DataError(f"{base / fn} lacks 'data' or {label_key!r}; re-extract the {folder} archive")
            data = np.asarray(d["data"], dtype=np.uint8)
            if data.ndim != 2 or data.shape[1] != 3072 or len(d[label_key]) != len(data):
                raise DataError(f"{base / fn}: data is {data.shape}, expected (N, 3072) uint8; re-extract it")
            xs.append(data.reshape(-1, 3, 32, 32))
            ys.append(np.asarray(d[label_key], dtype=np.int64))
        return np.concatenate(xs), np.concatenate(ys)

    xtr, ytr = read(train_files)
    xte, yte = read(test_files)
    return _task_from_arrays(name, names, cfg, image_size, (xtr, ytr), (xte, yte))


def _task_from_arrays(
    name: str,
    names: list[str],
    cfg: dict[str, Any],
    image_size: int,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
) -> Task:
    seed = int(cfg.get("split_seed", 0))
    keep = pick_classes(names, cfg.get("classes"), seed, name)
    lut = {c: i for i, c in enumerate(keep)}
    splits = []
    for (x, y), size, per_class in (
        (train, cfg.get("train_size"), cfg.get("train_per_class")),
        (test, cfg.get("test_size"), cfg.get("test_per_class")),
    ):
        idx = np.flatnonzero(np.isin(y, keep))
        idx = idx[subsample(y[idx], size, per_class, seed)]
        labels = np.array([lut[int(v)] for v in y[idx]], dtype=np.int64)
        imgs = x[idx]
        splits.append((imgs, labels))
    (xtr, ytr), (xte, yte) = splits
    import torch

    from rttui.engine.data import Split

    test_split = Split(to_images(xte, image_size), torch.as_tensor(yte))
    train_split = make_split(ArrayImages(xtr, ytr, image_size), ytr, image_size)
    return Task(name, [names[c] for c in keep], train_split, test_split)


def _download(tv_name: str, root: Path, name: str) -> None:
    import torchvision

    try:
        root.mkdir(parents=True, exist_ok=True)
        getattr(torchvision.datasets, tv_name)(str(root), train=True, download=True)
    except Exception as exc:
        raise DataError(
            f"{name}: download to {root} failed ({type(exc).__name__}: {first_line(exc)}); "
            f"without internet, copy the extracted archive under {root} and set download = false"
        ) from None


@register("cifar10")
def load_cifar10(cfg: dict[str, Any], image_size: int) -> Task:
    """CIFAR-10: 50,000 train / 10,000 test 32x32 images in 10 classes."""
    return _cifar("cifar10", cfg, image_size)


@register("cifar100")
def load_cifar100(cfg: dict[str, Any], image_size: int) -> Task:
    """CIFAR-100 (fine labels): 50,000 train / 10,000 test 32x32 images in 100 classes."""
    return _cifar("cifar100", cfg, image_size)


def _targets(ds: Any) -> np.ndarray:
    for attr in ("targets", "labels", "_labels", "y"):
        t = getattr(ds, attr, None)
        if t is not None and len(t) == len(ds):
            return np.asarray(t, dtype=np.int64).reshape(len(ds))
    return np.asarray([int(ds[i][1]) for i in range(len(ds))], dtype=np.int64)


def _tv_split(cls: Any, root: Path, train: bool, download: bool) -> Any:
    """torchvision datasets take either `train=` or `split=`; try both spellings."""
    attempts: list[dict[str, Any]] = [{"train": train}, {"split": "train" if train else "test"}]
    if not train:
        attempts.append({"split": "val"})
    last: Exception | None = None
    for kw in attempts:
        try:
            return cls(str(root), download=download, **kw) if download else cls(str(root), **kw)
        except TypeError as exc:
            last = exc
        except ValueError as exc:  # split name not accepted
            last = exc
    raise DataError(
        f"torchvision dataset {cls.__name__} has no train/test split rttui understands "
        f"({first_line(last or Exception())}); "
        'put it in an ImageFolder tree and use dataset = "imagefolder"'
    )


def load_torchvision(name: str, cfg: dict[str, Any], image_size: int) -> Task:
    """Any torchvision dataset with a train/test split: `torchvision:<Name>` (e.g. torchvision:SVHN)."""
    import torch
    import torchvision

    from rttui.engine.data import Split

    tv_name = name.split(":", 1)[1]
    cls = getattr(torchvision.datasets, tv_name, None)
    if cls is None or not isinstance(cls, type):
        raise DataError(f"{name}: torchvision has no dataset {tv_name!r}; see torchvision.datasets for the names")
    root = dataset_root(cfg, tv_name)
    try:
        tr = _tv_split(cls, root, True, bool(cfg.get("download")))
        te = _tv_split(cls, root, False, bool(cfg.get("download")))
    except DataError:
        raise
    except Exception as exc:
        raise DataError(
            f"{name}: cannot load from {root} ({type(exc).__name__}: {first_line(exc)}); put its files under "
            "root as torchvision expects them, or set download = true on a machine with internet"
        ) from None
    ytr, yte = _targets(tr), _targets(te)
    n_cls = int(max(ytr.max(initial=0), yte.max(initial=0))) + 1
    names = [str(c) for c in getattr(tr, "classes", [])] or [str(i) for i in range(n_cls)]
    seed = int(cfg.get("split_seed", 0))
    keep = pick_classes(names, cfg.get("classes"), seed, name)
    lut = np.full(max(len(names), n_cls), -1, dtype=np.int64)
    lut[keep] = np.arange(len(keep))
    parts = []
    for ds, y, size, per_class in (
        (tr, ytr, cfg.get("train_size"), cfg.get("train_per_class")),
        (te, yte, cfg.get("test_size"), cfg.get("test_per_class")),
    ):
        idx = np.flatnonzero(np.isin(y, keep))
        idx = idx[subsample(y[idx], size, per_class, seed)]
        parts.append(Mapped(ds, idx, lut[y[idx]], image_size))
    train_split = make_split(parts[0], parts[0].labels, image_size)
    test_split = make_split(parts[1], parts[1].labels, image_size, materialize=True)
    test_split = Split(test_split.x, torch.as_tensor(parts[1].labels))
    return Task(name, [names[c] for c in keep], train_split, test_split)
