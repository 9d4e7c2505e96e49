"""Tiny datasets written in their real on-disk formats (CIFAR python batches, ImageFolder PNGs, NIH CSV)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image


def _pattern(label: int, rng: np.random.Generator, size: int, channels: int = 3) -> np.ndarray:
    """A class-dependent blob plus noise, so a tiny model can learn something."""
    img = rng.integers(0, 60, size=(size, size, channels), dtype=np.uint8)
    q = size // 4
    r, c = divmod(label % 4, 2)
    img[r * 2 * q : r * 2 * q + q * 2, c * 2 * q : c * 2 * q + q * 2] += 150
    return img


def write_cifar10(root: Path, per_batch: int = 10, n_test: int = 20, seed: int = 0) -> Path:
    """root/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta} as torchvision's python version."""
    rng = np.random.default_rng(seed)
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": names, "num_cases_per_batch": per_batch, "num_vis": 3072}, f, protocol=2)

    def batch(n: int, label: str) -> dict:
        labels = [i % 10 for i in range(n)]
        data = np.stack([_pattern(y, rng, 32).transpose(2, 0, 1).reshape(-1) for y in labels])
        return {"batch_label": label, "labels": labels, "data": data, "filenames": ["x.png"] * n}

    for i in range(1, 6):
        with open(base / f"data_batch_{i}", "wb") as f:
            pickle.dump(batch(per_batch, f"training batch {i} of 5"), f, protocol=2)
    with open(base / "test_batch", "wb") as f:
        pickle.dump(batch(n_test, "testing batch 1 of 1"), f, protocol=2)
    return root


def write_imagefolder(
    root: Path, classes: tuple[str, ...] = ("ant", "bee", "cat"), n_train: int = 8, n_val: int = 4
) -> Path:
    """root/train/<class>/*.png and root/val/<class>/*.png."""
    rng = np.random.default_rng(1)
    for split, n in (("train", n_train), ("val", n_val)):
        for k, c in enumerate(classes):
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(_pattern(k, rng, 20)).save(d / f"{c}_{i}.png")
    return root


CHEST_HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],"
)


def write_chestxray(root: Path, patients: int = 16, per_patient: int = 3) -> Path:
    """root/Data_Entry_2017.csv and grayscale PNGs under root/images_001/images/ (NIH layout)."""
    rng = np.random.default_rng(2)
    img_dir = root / "images_001" / "images"
    img_dir.mkdir(parents=True)
    findings = ["Effusion", "Atelectasis", "Cardiomegaly", "No Finding", "Effusion|Mass"]
    lines = [CHEST_HEADER]
    for p in range(1, patients + 1):
        for k in range(per_patient):
            label = findings[(p + k) % len(findings)]
            name = f"{p:08d}_{k:03d}.png"
            lines.append(f"{name},{label},{k},{p},{40 + p},M,PA,2500,2048,0.143,0.143,")
            Image.fromarray(_pattern(findings.index(label), rng, 24, 1)[:, :, 0], mode="L").save(img_dir / name)
    (root / "Data_Entry_2017.csv").write_text("\n".join(lines) + "\n")
    return root


def write_mnist(root: Path, n_train: int = 20, n_test: int = 10) -> Path:
    """root/MNIST/raw/*-idx?-ubyte, the big-endian idx format torchvision's MNIST reads."""
    import struct

    rng = np.random.default_rng(3)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n, dtype=np.uint8) % 10
        imgs = np.stack([_pattern(int(y), rng, 28, 1)[:, :, 0] for y in labels])
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, 28, 28) + imgs.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels.tobytes())
    return root
