"""Tiny datasets written in their real on-disk formats (CIFAR python batches, ImageFolder PNGs and JPEGs, NIH CSV),
and real-size checkpoints in the layouts robust models are published in.

`python -m tests.datafiles paper DIR` writes everything `studies/paper-table1.toml` and `paper-table2.toml` read
under DIR (use it as $RTTUI_DATA), so `rttui run studies/paper-table1.toml --smoke --random-weights` can check
those studies' whole path on a machine without the datasets or an internet connection.
"""

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


def write_imagenet(root: Path, classes: int = 100, n_train: int = 2, n_val: int = 1, size: int = 40) -> Path:
    """root/train/<wnid>/<wnid>_<i>.JPEG and root/val/<wnid>/ILSVRC2012_val_<k>.JPEG (val sorted into class
    folders, as the paper study expects), JPEG-encoded like ILSVRC-2012."""
    rng = np.random.default_rng(4)
    k = 0
    for c in range(classes):
        wnid = f"n{1440764 + 17 * c:08d}"
        for split, n in (("train", n_train), ("val", n_val)):
            d = root / split / wnid
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                k += 1
                name = f"{wnid}_{i}.JPEG" if split == "train" else f"ILSVRC2012_val_{k:08d}.JPEG"
                Image.fromarray(_pattern(c, rng, size)).save(d / name, quality=90)
    return root


def write_jpeg_folder(root: Path, classes: int = 4, per_class: int = 32, size: tuple[int, int] = (500, 375)) -> Path:
    """root/train/<class>/*.jpg and root/val/<class>/*.jpg at ImageNet's typical size (500x375), for measuring
    decoding and resizing throughput on real-format files."""
    rng = np.random.default_rng(5)
    w, h = size
    for split, n in (("train", per_class), ("val", max(1, per_class // 4))):
        for c in range(classes):
            d = root / split / f"class{c}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
                img[: h // 2, : w // 2] = (40 * c) % 255  # some structure, so JPEG sizes are realistic
                Image.fromarray(img).save(d / f"{c}_{i}.jpg", quality=90)
    return root


def write_madry_resnet50(path: Path) -> Path:
    """A ResNet-50 checkpoint as MadryLab `robustness` publishes one (imagenet_linf_4.pt): {'model': state dict
    with module.model.*, module.attacker.model.* and module.normalizer.*, 'epoch'}, real size, random weights."""
    import timm
    import torch

    sd = timm.create_model("resnet50", num_classes=1000).state_dict()
    state = {f"module.model.{k}": v for k, v in sd.items()}
    state |= {f"module.attacker.model.{k}": v for k, v in sd.items()}
    state |= {
        "module.normalizer.new_mean": torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1),
        "module.normalizer.new_std": torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1),
        "module.attacker.normalize.new_mean": torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1),
        "module.attacker.normalize.new_std": torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state, "epoch": 90}, path)
    return path


def write_timm_safetensors(path: Path, model: str = "vit_base_patch16_224", **kwargs: object) -> Path:
    """A timm-layout safetensors checkpoint of `model` (real size, random weights), as RobustBench-style robust
    timm models are shared."""
    import timm
    from safetensors.torch import save_file

    sd = timm.create_model(model, num_classes=1000, **kwargs).state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    return path


def write_paper_data(root: Path) -> Path:
    """Everything studies/paper-table1.toml and paper-table2.toml read, under root (their $RTTUI_DATA), in the
    real formats: CIFAR-10 batches, an ImageNet tree of 100 classes of JPEGs, ChestX-ray8's CSV and PNGs, and the
    two robust checkpoints of paper-table2 (real architectures and sizes, random weights)."""
    write_cifar10(root / "cifar10")
    write_imagenet(root / "imagenet")
    write_chestxray(root / "chestxray8")
    write_madry_resnet50(root / "robust" / "resnet50_imagenet_linf_4.pt")
    write_timm_safetensors(root / "robust" / "vit_b16_imagenet_linf_4.safetensors")
    return root


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 3 or sys.argv[1] != "paper":
        sys.exit("usage: python -m tests.datafiles paper DIR   (writes the paper studies' data under DIR)")
    print(write_paper_data(Path(sys.argv[2])))
