"""NIH ChestX-ray8 / ChestX-ray14: `Data_Entry_2017.csv` plus its PNG folders, as a single-label task.

Accuracy needs one label per image, so the task keeps the images with exactly one of the 14 findings
(optionally also "No Finding" as a class). The split is by patient: no patient has images on both sides.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import numpy as np

from rttui.engine.data import Task, register
from rttui.engine.datasets.common import ImageFiles, dataset_root, make_split, pick_classes, subsample
from rttui.errors import DataError

CSV_NAME = "Data_Entry_2017.csv"
REQUIRED = ("Image Index", "Finding Labels", "Patient ID")
FINDINGS = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)
NO_FINDING = "No Finding"
# Paper sizes, used as caps when the study gives none.
TRAIN_CAP, TEST_CAP = 8000, 2000


def read_entries(path: Path) -> list[tuple[str, str, str]]:
    """(image, finding labels, patient) rows of the label file; a wrong header is a one-line error."""
    layout = f"a CSV with columns {', '.join(REQUIRED)} (NIH's {CSV_NAME})"
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise DataError(
                    f"chestxray8: {path} has no column {missing[0]!r} (header: {', '.join(header[:4]) or 'empty'}...); "
                    f"expected {layout}"
                )
            cols = [header.index(c) for c in REQUIRED]
            return [tuple(row[c].strip() for c in cols) for row in reader if len(row) >= len(header)]  # type: ignore[misc]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"chestxray8: {path} cannot be read ({type(exc).__name__}); expected {layout}") from None


def index_images(root: Path) -> dict[str, Path]:
    """File name -> path of every PNG under root (NIH ships images/ or images_001/images/ ... folders)."""
    out: dict[str, Path] = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.lower().endswith(".png"):
                out.setdefault(f, Path(dirpath) / f)
    return out


def patient_split(patients: np.ndarray, labels: np.ndarray, test_cap: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices with no patient on both sides: patients join the test side in seeded order
    until it holds `test_cap` images (at most half of them), the rest form the train side."""
    uniq = np.unique(patients)
    order = np.random.default_rng(seed).permutation(len(uniq))
    pos = {p: i for i, p in enumerate(uniq[order])}
    rank = np.array([pos[p] for p in patients])
    counts = np.bincount(rank, minlength=len(uniq))
    target = min(test_cap, len(patients) // 2)
    n_test_patients = int(np.searchsorted(np.cumsum(counts), target) + 1) if target else 0
    n_test_patients = min(n_test_patients, max(len(uniq) - 1, 0))
    is_test = rank < n_test_patients
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


@register("chestxray8")
def load_chestxray8(cfg: dict[str, Any], image_size: int) -> Task:
    """Single-finding NIH ChestX-ray images, grayscale to 3 channels, patient-wise split, paper caps."""
    root = dataset_root(cfg, "chestxray8")
    layout = f"{root}/{CSV_NAME} and its PNGs under {root}/images*/"
    if not root.is_dir():
        raise DataError(f"chestxray8: folder {root} does not exist; expected {layout} (set root = ...)")
    csv_path = root / CSV_NAME
    if not csv_path.is_file():
        raise DataError(f"chestxray8: {csv_path} is missing; expected {layout}")
    names = list(FINDINGS) + ([NO_FINDING] if cfg.get("no_finding") else [])
    rows = []
    for image, findings, patient in read_entries(csv_path):
        labels = findings.split("|")
        if len(labels) == 1 and labels[0] in names:
            rows.append((image, names.index(labels[0]), patient))
    if not rows:
        raise DataError(f"chestxray8: {csv_path} has no image with exactly one finding; expected {layout}")
    seed = int(cfg.get("split_seed", 0))
    keep = pick_classes(names, cfg.get("classes"), seed, "chestxray8")
    lut = {c: i for i, c in enumerate(keep)}
    rows = [r for r in rows if r[1] in lut]
    images = [r[0] for r in rows]
    y = np.array([lut[r[1]] for r in rows], dtype=np.int64)
    patients = np.array([r[2] for r in rows])
    test_cap = int(cfg.get("test_size") or TEST_CAP)
    tr, te = patient_split(patients, y, test_cap, seed)
    tr = tr[subsample(y[tr], cfg.get("train_size") or TRAIN_CAP, cfg.get("train_per_class"), seed)]
    te = te[subsample(y[te], test_cap, cfg.get("test_per_class"), seed)]
    found = index_images(root)
    need = [images[i] for i in np.r_[tr, te]]
    absent = [n for n in need if n not in found]
    if absent:
        raise DataError(
            f"chestxray8: {len(absent)} of {len(need)} images listed in {CSV_NAME} are not under {root}, "
            f"e.g. {absent[0]}; unpack the images_*.tar.gz archives there"
        )
    train = ImageFiles([found[images[i]] for i in tr], y[tr], image_size)
    test = ImageFiles([found[images[i]] for i in te], y[te], image_size)
    return Task(
        "chestxray8",
        [names[c] for c in keep],
        make_split(train, y[tr], image_size),
        make_split(test, y[te], image_size, materialize=True),
    )
