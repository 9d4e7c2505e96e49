"""One-epoch studies on CIFAR-10 batches, an ImageFolder tree and ChestX-ray8 files written by the test;
bad data or a misfit checkpoint fails before the database is touched."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from rttui import api
from rttui.engine.models import sha256_file
from rttui.errors import CheckpointError, DataError
from tests.datafiles import write_chestxray, write_cifar10, write_imagefolder

STUDY = """
[study]
name = "real-data"
seeds = [0]

[source]
epochs = 0        # weights only: no source data needed
{source_extra}

[train]
epochs = 1
lr = 1e-3
batch_size = 8

[eval]
epsilons = [0.03]

[attacks.fgsm]

{blocks}
"""

BLOCK = """
[[grid]]
models = ["test_resnet"]
strategies = ["full"]
[grid.target]
dataset = "{dataset}"
root = "{root}"
image_size = 16
test_size = {test_size}
{extra}
"""


def _study(tmp_path: Path, blocks: list[tuple[str, Path, int, str]], source_extra: str = "") -> Path:
    text = STUDY.format(
        source_extra=source_extra,
        blocks="".join(BLOCK.format(dataset=d, root=r, test_size=n, extra=e) for d, r, n, e in blocks),
    )
    p = tmp_path / "study.toml"
    p.write_text(text)
    return p


@pytest.fixture
def data_roots(tmp_path: Path) -> dict[str, Path]:
    return {
        "cifar10": write_cifar10(tmp_path / "cifar"),
        "imagefolder": write_imagefolder(tmp_path / "tree"),
        "chestxray8": write_chestxray(tmp_path / "nih"),
    }


def _snapshot(db: Path) -> list[str]:
    """Every row of every table (the runner lock is taken and released around the checks)."""
    con = sqlite3.connect(db)
    try:
        return list(con.iterdump())
    finally:
        con.close()


def test_one_epoch_study_on_each_real_format_and_checkpoint_hash_stored(
    tmp_path: Path, data_roots: dict[str, Path]
) -> None:
    torch.manual_seed(0)
    donor = timm.create_model("test_resnet", num_classes=1000)
    ckpt = tmp_path / "robust-source.safetensors"
    save_file({k: v.contiguous() for k, v in donor.state_dict().items()}, str(ckpt))
    study = _study(
        tmp_path,
        [
            ("cifar10", data_roots["cifar10"], 10, "classes = [0, 1, 2, 3]\ntrain_size = 24"),
            ("imagefolder", data_roots["imagefolder"], 12, ""),
            ("chestxray8", data_roots["chestxray8"], 8, ""),
        ],
        source_extra=f'checkpoint = "{ckpt}"',
    )
    db = tmp_path / "r.db"
    res = api.run_study(api.load_study(study), db)  # checks the data and weights first
    assert (res["done"], res["failed"], res["runs"]) == (3, 0, 3)
    recs = api.export_records(db)
    assert {r["dataset"] for r in recs} == {"cifar10", "imagefolder", "chestxray8"}
    by = {r["dataset"]: r for r in recs}
    # cifar10: the 20 test images hold 2 of each class, so classes 0-3 leave 8 (under the cap of 10)
    assert by["cifar10"]["n"] == 8 and by["imagefolder"]["n"] == 12 and by["chestxray8"]["n"] == 8
    con = sqlite3.connect(db)
    (info, n_cls), *_ = con.execute("select info, num_classes from sources").fetchall()
    weights = json.loads(info)["weights"]
    assert weights["sha256"] == sha256_file(ckpt) and weights["kind"] == "checkpoint" and n_cls == 0
    # The source's stem weights are the checkpoint's: the runs started from it.
    (path,) = con.execute("select checkpoint from sources").fetchone()
    from safetensors.torch import load_file

    src = load_file(str(db.parent / f"{db.stem}.artifacts" / path))  # stored relative to <db stem>.artifacts
    assert torch.equal(src["model.conv1.0.weight"], donor.state_dict()["conv1.0.weight"])


@pytest.mark.parametrize("breakage", ["missing_folder", "csv_header", "undecodable", "checkpoint", "robust_checkpoint"])
def test_bad_input_fails_before_the_database_changes(
    tmp_path: Path,
    data_roots: dict[str, Path],
    tiny_run_db: Path,
    breakage: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db = tiny_run_db  # a database with finished runs in it (shared, so it must stay as it is)
    before = _snapshot(db)
    nih = data_roots["chestxray8"]
    source_extra = ""
    if breakage == "missing_folder":
        nih = tmp_path / "nowhere"
    elif breakage == "csv_header":
        p = nih / "Data_Entry_2017.csv"
        p.write_text(p.read_text().replace("Patient ID", "Patient", 1))
    elif breakage == "undecodable":
        victim = sorted(nih.rglob("*.png"))[3]
        victim.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    else:
        vit = timm.create_model("test_vit", num_classes=10)
        ck = tmp_path / "vit.safetensors"
        save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(ck))
        source_extra = f'checkpoint = "{ck}"'
    study = _study(tmp_path, [("chestxray8", nih, 8, "")], "" if breakage == "robust_checkpoint" else source_extra)
    if breakage == "robust_checkpoint":  # the misfit file is the adversarial-pretraining source instead
        text = study.read_text().replace(
            'strategies = ["full"]', 'strategies = ["full"]\ntechniques = ["adv_pretraining"]'
        )
        study.write_text(f'{text}\n[techniques.adv_pretraining]\ncheckpoint = "{ck}"\n')
    err = CheckpointError if "checkpoint" in breakage else DataError
    with pytest.raises(err) as ei:
        api.run_study(api.load_study(study), db)
    assert "\n" not in str(ei.value)
    assert _snapshot(db) == before  # no new rows, nothing rewritten
    # The CLI: `rttui validate --check-data` says the same in one line on stderr and exits 2.
    from rttui.cli import main

    monkeypatch.setattr("sys.argv", ["rttui", "validate", str(study), "--check-data"])
    with pytest.raises(SystemExit) as ex:
        main()
    out = capsys.readouterr()
    assert ex.value.code == 2 and out.err.count("\n") == 1 and out.err.startswith("rttui: error: ")
    assert _snapshot(db) == before
