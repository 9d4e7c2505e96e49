"""ImageFolder trees (`root/<class>/<image>`): any tree (`imagefolder`) and an ImageNet class subset.

Files are only listed here; images are decoded when a split is built (test) or on the fly (large train).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rttui.engine.data import Task, register
from rttui.engine.datasets.common import (
    IMAGE_EXTS,
    ImageFiles,
    dataset_root,
    make_split,
    pick_classes,
    subsample,
)
from rttui.errors import DataError

TRAIN_DIRS = ("train",)
TEST_DIRS = ("val", "test")


def list_tree(folder: Path) -> dict[str, list[Path]]:
    """{class name: sorted image files} of one ImageFolder tree (class = first-level subfolder)."""
    out: dict[str, list[Path]] = {}
    for d in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(f for f in d.rglob("*") if f.suffix.lower() in IMAGE_EXTS and f.is_file())
        if files:
            out[d.name] = files
    return out


def _flatten(tree: dict[str, list[Path]], names: list[str]) -> tuple[list[Path], np.ndarray]:
    files, labels = [], []
    for i, n in enumerate(names):
        files += tree.get(n, [])
        labels += [i] * len(tree.get(n, []))
    return files, np.asarray(labels, dtype=np.int64)


def _split_files(
    files: list[Path], labels: np.ndarray, size: int | None, per_class: int | None, seed: int
) -> tuple[list[Path], np.ndarray]:
    idx = subsample(labels, size, per_class, seed)
    return [files[i] for i in idx], labels[idx]


def _task(
    name: str,
    names: list[str],
    train: tuple[list[Path], np.ndarray],
    test: tuple[list[Path], np.ndarray],
    image_size: int,
) -> Task:
    (ftr, ytr), (fte, yte) = train, test
    return Task(
        name,
        names,
        make_split(ImageFiles(ftr, ytr, image_size), ytr, image_size),
        make_split(ImageFiles(fte, yte, image_size), yte, image_size, materialize=True),
    )


def _trees(root: Path, name: str, layout: str, require_split: bool) -> tuple[dict, dict | None]:
    if not root.is_dir():
        raise DataError(f"{name}: folder {root} does not exist; expected {layout} (set root = ...)")
    sub = {p.name: p for p in root.iterdir() if p.is_dir()}
    tr = next((sub[d] for d in TRAIN_DIRS if d in sub), None)
    te = next((sub[d] for d in TEST_DIRS if d in sub), None)
    if tr is not None and te is not None:
        train_tree, test_tree = list_tree(tr), list_tree(te)
        if not train_tree:
            raise DataError(f"{name}: {tr} holds no class folders with images; expected {layout}")
        return train_tree, test_tree
    if require_split:
        missing = "train/" if tr is None else "val/"
        raise DataError(f"{name}: {root} has no {missing} folder; expected {layout}")
    tree = list_tree(root)
    if len(tree) < 2:
        raise DataError(f"{name}: {root} holds {len(tree)} class folder(s) with images; expected {layout}")
    return tree, None


@register("imagefolder")
def load_imagefolder(cfg: dict[str, Any], image_size: int) -> Task:
    """Any ImageFolder tree: root/train/<class>/* and root/val|test/<class>/*, or root/<class>/* split here."""
    root = dataset_root(cfg, "imagefolder")
    layout = f"{root}/{{train,val}}/<class>/<image>.png|jpg or {root}/<class>/<image>"
    seed = int(cfg.get("split_seed", 0))
    train_tree, test_tree = _trees(root, "imagefolder", layout, require_split=False)
    names = sorted(train_tree)
    keep = [names[i] for i in pick_classes(names, cfg.get("classes"), seed, "imagefolder")]
    files, labels = _flatten(train_tree, keep)
    if test_tree is None:
        # One tree: a seeded, class-balanced test split first, the rest is the training pool.
        test_size = min(int(cfg.get("test_size") or 300), len(labels) // 2)
        te_idx = subsample(labels, test_size, cfg.get("test_per_class"), seed)
        rest = np.setdiff1d(np.arange(len(labels)), te_idx)
        test = ([files[i] for i in te_idx], labels[te_idx])
        pool = ([files[i] for i in rest], labels[rest])
    else:
        missing = [c for c in keep if c not in test_tree]
        if missing:
            raise DataError(f"imagefolder: class {missing[0]!r} has no folder under the test tree; expected {layout}")
        test = _split_files(*_flatten(test_tree, keep), cfg.get("test_size"), cfg.get("test_per_class"), seed)
        pool = (files, labels)
    train = _split_files(*pool, cfg.get("train_size"), cfg.get("train_per_class"), seed)
    return _task("imagefolder", keep, train, test, image_size)


@register("imagenet_subset")
def load_imagenet_subset(cfg: dict[str, Any], image_size: int) -> Task:
    """N ImageNet classes drawn with split_seed from root/train (paper: 100 classes, 500 train / 50 val each)."""
    root = dataset_root(cfg, "imagenet")
    layout = f"{root}/train/<wnid>/*.JPEG and {root}/val/<wnid>/*.JPEG (val sorted into class folders)"
    seed = int(cfg.get("split_seed", 0))
    train_tree, test_tree = _trees(root, "imagenet_subset", layout, require_split=True)
    assert test_tree is not None
    names = sorted(train_tree)
    classes = cfg.get("classes")
    if classes is None and len(names) > 100:
        classes = 100  # the paper's ImageNet-100
    keep = [names[i] for i in pick_classes(names, classes, seed, "imagenet_subset")]
    missing = [c for c in keep if c not in test_tree]
    if missing:
        raise DataError(f"imagenet_subset: class {missing[0]!r} has no folder under {root}/val; expected {layout}")
    train = _split_files(*_flatten(train_tree, keep), cfg.get("train_size"), cfg.get("train_per_class"), seed)
    test = _split_files(*_flatten(test_tree, keep), cfg.get("test_size"), cfg.get("test_per_class"), seed)
    return _task("imagenet_subset", keep, train, test, image_size)
