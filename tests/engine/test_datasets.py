"""On-disk datasets read from tiny files in their real formats: layout, seeded splits, one-line errors."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from rttui.engine.data import load_task
from rttui.errors import DataError
from tests.datafiles import write_chestxray, write_cifar10, write_imagefolder, write_mnist


def test_cifar10_batches_are_read_with_class_subset_and_caps(tmp_path: Path) -> None:
    root = write_cifar10(tmp_path / "c10")
    cfg = {"dataset": "cifar10", "root": str(root), "classes": ["cat", 5, "truck"], "train_size": 12, "test_size": 6}
    task = load_task(cfg, 16)
    assert task.classes == ["cat", "dog", "truck"]
    assert len(task.train) == 12 and len(task.test) == 6
    assert task.train.x.shape == (12, 3, 16, 16) and task.test.x.dtype == torch.float32
    assert float(task.train.x.min()) >= 0 and float(task.train.x.max()) <= 1
    assert sorted(torch.bincount(task.train.y).tolist()) == [4, 4, 4]  # caps keep the classes balanced
    full = load_task({"dataset": "cifar10", "root": str(root), "train_size": None, "test_size": 1000}, 32)
    assert len(full.train) == 50 and len(full.test) == 20 and len(full.classes) == 10


def test_same_split_seed_same_split_another_seed_another(tmp_path: Path) -> None:
    root = write_cifar10(tmp_path / "c10")
    base = {"dataset": "cifar10", "root": str(root), "train_size": 20, "test_size": 8}
    a, b = load_task({**base, "split_seed": 0}, 8), load_task({**base, "split_seed": 0}, 8)
    c = load_task({**base, "split_seed": 1}, 8)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.x, b.test.x)
    assert not torch.equal(a.train.x, c.train.x)
    # imagenet_subset: the drawn classes follow the seed too
    tree = write_imagefolder(tmp_path / "inet", classes=tuple(f"n{i:08d}" for i in range(6)), n_train=3, n_val=2)
    draws = {
        s: load_task({"dataset": "imagenet_subset", "root": str(tree), "classes": 3, "split_seed": s}, 8).classes
        for s in range(4)
    }
    assert (
        draws[0]
        == load_task({"dataset": "imagenet_subset", "root": str(tree), "classes": 3, "split_seed": 0}, 8).classes
    )
    assert len({tuple(v) for v in draws.values()}) > 1


def test_imagefolder_and_imagenet_subset_with_per_class_caps(tmp_path: Path) -> None:
    root = write_imagefolder(tmp_path / "tree")
    t = load_task({"dataset": "imagefolder", "root": str(root), "train_per_class": 5, "test_size": 300}, 12)
    assert t.classes == ["ant", "bee", "cat"]
    assert torch.bincount(t.train.y).tolist() == [5, 5, 5] and torch.bincount(t.test.y).tolist() == [4, 4, 4]
    s = load_task({"dataset": "imagenet_subset", "root": str(root), "classes": 2, "test_per_class": 1}, 12)
    assert len(s.classes) == 2 and len(s.test) == 2 and len(s.train) == 16
    # One flat tree (no train/val): a seeded test split is taken out of it, disjoint from train.
    flat = tmp_path / "flat"
    (root / "train").rename(flat)
    f = load_task({"dataset": "imagefolder", "root": str(flat), "test_size": 6}, 12)
    assert len(f.test) == 6 and len(f.train) == 18


def test_chestxray8_single_finding_patient_wise_grayscale(tmp_path: Path) -> None:
    root = write_chestxray(tmp_path / "nih")
    cfg = {"dataset": "chestxray8", "root": str(root), "test_size": 10, "train_size": 100}
    t = load_task(cfg, 16)
    assert t.classes[:3] == ["Atelectasis", "Cardiomegaly", "Effusion"] and len(t.classes) == 14
    x = t.test.x
    assert x.shape[1:] == (3, 16, 16) and torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])
    with open(root / "Data_Entry_2017.csv") as f:
        rows = list(csv.DictReader(f))
    patient = {r["Image Index"]: r["Patient ID"] for r in rows}
    tr = {patient[f.name] for f in t.train.dataset.files}
    te = {patient[f.name] for f in t.test.dataset.files}
    assert tr and te and not tr & te  # no patient on both sides
    multi = {r["Image Index"] for r in rows if "|" in r["Finding Labels"]}
    assert not multi & {f.name for f in t.train.dataset.files + t.test.dataset.files}
    nf = load_task({**cfg, "no_finding": True}, 16)
    assert nf.classes[-1] == "No Finding" and len(nf.train) + len(nf.test) > len(t.train) + len(t.test)
    other = load_task({**cfg, "split_seed": 5}, 16)
    assert [f.name for f in other.test.dataset.files] != [f.name for f in t.test.dataset.files]


def test_lazy_split_decodes_the_same_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_imagefolder(tmp_path / "tree")
    cfg = {"dataset": "imagefolder", "root": str(root)}
    mem = load_task(cfg, 12)
    monkeypatch.setenv("RTTUI_INMEMORY_MB", "0")
    lazy = load_task(cfg, 12)
    assert lazy.train.lazy and not mem.train.lazy and not lazy.test.lazy
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    for (xa, ya), (xb, yb) in zip(mem.train.batches(5, True, g1), lazy.train.batches(5, True, g2), strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
        assert xa.dtype == torch.float32 and float(xa.max()) <= 1.0
    # Image files are held as their uint8 pixels (decoded once, a quarter of the bytes); test splits as floats.
    assert mem.train._x.dtype == torch.uint8 and mem.test._x.dtype == torch.float32
    assert torch.equal(mem.train.x, lazy.train.x) and torch.equal(mem.train.head(3)[0], lazy.train.head(3)[0])


@pytest.mark.parametrize(
    ("dataset", "breakage", "match"),
    [
        ("cifar10", "missing", "does not exist; put the extracted cifar-10-batches-py/"),
        ("cifar10", "garbage", "is not a CIFAR python batch"),
        ("imagefolder", "missing", r"does not exist; expected .*train,val"),
        ("imagefolder", "undecodable", r"cannot be decoded .*replace or delete"),
        ("chestxray8", "header", "has no column 'Finding Labels'"),
        ("chestxray8", "undecodable", "cannot be decoded"),
        ("chestxray8", "absent", "are not under"),
    ],
)
def test_bad_input_is_one_line_data_error(tmp_path: Path, dataset: str, breakage: str, match: str) -> None:
    root = tmp_path / "d"
    if breakage != "missing":
        {"cifar10": write_cifar10, "imagefolder": write_imagefolder, "chestxray8": write_chestxray}[dataset](root)
    if breakage == "garbage":
        (root / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"\x80\x04not a pickle")
    elif breakage == "undecodable":
        victim = sorted(root.rglob("*.png"))[0]
        victim.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    elif breakage == "header":
        p = root / "Data_Entry_2017.csv"
        p.write_text(p.read_text().replace("Finding Labels", "Labels", 1))
    elif breakage == "absent":
        for f in list(root.rglob("*.png"))[:5]:
            f.unlink()
    with pytest.raises(DataError, match=match) as ei:
        load_task({"dataset": dataset, "root": str(root), "test_size": 1000, "train_size": None}, 8)
    assert "\n" not in str(ei.value)


def test_torchvision_by_name_and_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="torchvision has no dataset 'NoSuchSet'"):
        load_task({"dataset": "torchvision:NoSuchSet"}, 8)
    with pytest.raises(DataError, match="cannot load from") as ei:
        load_task({"dataset": "torchvision:SVHN", "root": str(tmp_path / "none")}, 8)
    assert "\n" not in str(ei.value)
    # MNIST's idx files, as torchvision reads them: the generic path (train=, PIL images, targets) runs.
    write_mnist(tmp_path / "mn")
    t = load_task({"dataset": "torchvision:MNIST", "root": str(tmp_path / "mn"), "train_size": 6, "test_size": 4}, 8)
    assert len(t.train) == 6 and len(t.test) == 4 and t.train.x.shape == (6, 3, 8, 8)
    assert t.classes[0].startswith("0") and np.isin(t.train.y.numpy(), np.arange(len(t.classes))).all()


def test_lazy_split_with_a_bad_image_fails_in_the_check_and_in_workers_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rttui.engine.data import Split, check_task
    from rttui.engine.datasets.common import ImageFiles

    root = write_imagefolder(tmp_path / "tree")
    victim = sorted((root / "train").rglob("*.png"))[2]
    victim.write_bytes(b"GIF89a" + b"\x00" * 10)
    monkeypatch.setenv("RTTUI_INMEMORY_MB", "0")
    task = load_task({"dataset": "imagefolder", "root": str(root)}, 8)  # lazy: nothing decoded yet
    with pytest.raises(DataError, match=f"image {victim} cannot be decoded"):
        check_task(task)
    files = sorted((root / "train").rglob("*.png"))
    split = Split(
        y=torch.zeros(len(files), dtype=torch.long), dataset=ImageFiles(files, np.zeros(len(files)), 8), workers=1
    )
    with pytest.raises(DataError) as ei:
        list(split.batches(4))
    assert str(ei.value).startswith(f"image {victim} cannot be decoded") and "\n" not in str(ei.value)
