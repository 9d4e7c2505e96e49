"""`rttui run --smoke`: every block's path at tiny scale in a database of its own, broken blocks named one per line,
the real database never created; and what every unit records about its memory and data wait."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import timm
from safetensors.torch import save_file
from typer.testing import CliRunner

from rttui import api
from rttui.cli.app import app
from rttui.errors import RttuiError, StoreError
from tests.datafiles import write_cifar10, write_imagefolder

STUDY = """
[study]
name = "smoke-me"
seeds = [0, 1]

[source]
epochs = 0

[train]
epochs = 3
batch_size = 4

[eval]
epsilons = [0.01, 0.03, 0.05]
batch_size = 4

[attacks.fgsm]
[attacks.pgd]
steps = 10

[[grid]]
name = "good-cifar"
models = ["test_resnet"]
strategies = ["full", "layer_freezing"]
[grid.target]
dataset = "cifar10"
root = "{cifar}"
image_size = 16
classes = [0, 1, 2, 3]

[[grid]]
name = "misfit-checkpoint"
models = ["test_resnet"]
strategies = ["full"]
[grid.source]
checkpoint = "{vit}"
[grid.target]
dataset = "imagefolder"
root = "{tree}"
image_size = 16

[[grid]]
name = "three-classes-autoattack"
models = ["test_resnet"]
strategies = ["full"]
attacks = ["fgsm", "autoattack"]
[grid.target]
dataset = "imagefolder"
root = "{tree}"
image_size = 16

[[grid]]
name = "wrong-path"
models = ["test_resnet"]
strategies = ["full"]
[grid.target]
dataset = "cifar10"
root = "{nowhere}"
image_size = 16
"""


@pytest.fixture
def broken_study(tmp_path: Path) -> Path:
    """Four blocks: one good, one whose source checkpoint is another architecture's, one whose AutoAttack cannot
    run on its 3 classes (a crash only an evaluation shows), one whose data folder does not exist."""
    vit = tmp_path / "vit.safetensors"
    save_file({k: v.contiguous() for k, v in timm.create_model("test_vit").state_dict().items()}, str(vit))
    text = STUDY.format(
        cifar=write_cifar10(tmp_path / "cifar"),
        tree=write_imagefolder(tmp_path / "tree"),
        vit=vit,
        nowhere=tmp_path / "nowhere",
    )
    p = tmp_path / "study.toml"
    p.write_text(text)
    return p


def test_smoke_names_every_broken_block_and_never_touches_the_real_database(broken_study: Path, tmp_path: Path) -> None:
    db = tmp_path / "real.db"
    res = api.run_smoke(api.load_study(broken_study), db)
    assert not res["passed"] and not db.exists()  # the real database is not even created
    assert res["smoke_db"] == str(tmp_path / "real.smoke.db")
    fails = res["failures"]
    assert len(fails) == 3, fails
    assert any(f.startswith("block misfit-checkpoint: inputs: checkpoint") for f in fails), fails
    assert any(f.startswith("block wrong-path: inputs: cifar10: folder") for f in fails), fails
    aa = [f for f in fails if f.startswith("block three-classes-autoattack: test_resnet/full/none attack autoattack")]
    assert len(aa) == 1 and "4 classes" in aa[0], fails
    assert all("\n" not in f for f in fails)
    assert res["lines"][-len(fails) :] == fails and res["lines"][-len(fails) - 1].startswith("smoke FAILED: 3")
    assert any(line.startswith("block good-cifar: ok: 1 source(s), 2 run(s), 4 evaluation(s)") for line in res["lines"])
    # The good block ran at smoke scale: one seed, one epoch, two eps, PGD steps cut, every image attacked.
    con = sqlite3.connect(res["smoke_db"])
    runs = con.execute("select config, state from runs").fetchall()
    cfgs = [json.loads(c) for c, _ in runs]
    assert {c["seed"] for c in cfgs} == {0} and {c["train"]["epochs"] for c in cfgs} == {1}
    rows = con.execute("select attack, eps, steps, n, n_clean_correct, path from metrics").fetchall()
    assert {r[1] for r in rows} == {0.01, 0.05}
    assert {r[2] for r in rows if r[0] == "pgd"} == {2}
    # One test batch (2 images on CPU: CIFAR-10 and an ImageFolder draw classes in turn, so a smoke split need not
    # hold every class), every image attacked away from its predicted label; the three-class block's FGSM ran
    # before its AutoAttack failed.
    bad = [r for r in rows if not (r[3] == r[4] == 2 and "predicted_labels" in r[5])]
    assert rows and not bad, bad
    (epochs,) = con.execute("select count(*) from epochs").fetchone()
    assert epochs == 3  # one epoch for each of the three runs that trained
    con.close()


def test_smoke_cli_exit_codes_summary_and_export(broken_study: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    db = tmp_path / "x.db"
    r = runner.invoke(app, ["run", str(broken_study), "--db", str(db), "--smoke", "-q"])
    assert r.exit_code == 1, r.output
    assert r.stdout.strip().splitlines()[-1].startswith("block "), r.stdout
    assert not db.exists()
    # Nothing of the smoke run is a result: export says where the smoke results are and that they are not results.
    r = runner.invoke(app, ["export", "--db", str(db), "--format", "json"])
    assert isinstance(r.exception, StoreError) and r.stdout == ""  # `rttui` prints it as one line, exit 2
    assert "smoke results only" in str(r.exception) and "x.smoke.db" in str(r.exception)
    assert "\n" not in str(r.exception)
    # A passing smoke run (only the good block) ends with "smoke passed: N units"; a second run replaces it.
    good = tmp_path / "good.toml"
    good.write_text(broken_study.read_text().split('[[grid]]\nname = "misfit-checkpoint"')[0])
    for _ in range(2):
        r = runner.invoke(app, ["run", str(good), "--db", str(db), "--smoke", "-q"])
        assert r.exit_code == 0, r.output
        last = r.stdout.strip().splitlines()[-1]
        assert last.startswith("smoke passed: 7 units (1 sources, 2 runs, 4 evaluations)"), last
    con = sqlite3.connect(tmp_path / "x.smoke.db")
    assert con.execute("select count(*) from runs").fetchone() == (2,)  # replaced, not accumulated
    con.close()
    r = runner.invoke(app, ["run", str(good), "--db", str(db), "--random-weights"])
    assert isinstance(r.exception, RttuiError) and "--random-weights only goes with --smoke" in str(r.exception)
    assert not db.exists()


def test_every_unit_records_peak_gpu_memory_and_data_wait(tiny_run_db: Path) -> None:
    """Peak GPU memory per unit in its one record, the `peak_gpu_mem` column (NULL off CUDA: nothing to measure;
    tests/runner/test_gpus.py fakes a GPU), and the share of training spent waiting for data in its info."""
    con = sqlite3.connect(tiny_run_db)
    for table in ("sources", "runs"):
        rows = [(json.loads(i), peak) for (i, peak) in con.execute(f"select info, peak_gpu_mem from {table}")]
        assert rows
        for info, peak in rows:
            assert peak is None and "peak_gpu_mem_mb" not in info  # one record, not two
            assert "data_wait_frac" in info and 0 <= info["data_wait_frac"] < 1
    con.close()


@pytest.mark.slow
def test_paper_studies_inputs_check_at_real_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables I and II at smoke scale pass the real run's input checks on generated real-format data and real-size
    checkpoints (ResNet-50 in MadryLab's layout, ViT-B/16 in timm's); a swapped checkpoint is named."""
    from rttui.errors import CheckpointError
    from rttui.runner.preflight import check_inputs
    from rttui.study import load_study, make_plan, parse_study
    from rttui.study.smoke import SmokeScale, block_study, smoke_study
    from tests.datafiles import write_paper_data

    monkeypatch.setenv("RTTUI_DATA", str(write_paper_data(tmp_path / "data")))
    studies = Path(__file__).resolve().parents[2] / "studies"
    scale = SmokeScale(batch_cap=2, random_weights=True)
    for name in ("paper-table1", "paper-table2"):
        smoke = smoke_study(load_study(studies / f"{name}.toml"), scale)
        for b in smoke.blocks:
            check_inputs(make_plan(block_study(smoke, b.index)))  # raises on a wrong path, class or checkpoint
    text = (studies / "paper-table2.toml").read_text()
    swapped = text.replace("resnet50_imagenet_linf_4.pt", "vit_b16_imagenet_linf_4.safetensors")
    smoke = smoke_study(parse_study(swapped), scale)
    with pytest.raises(CheckpointError, match="does not fit model 'resnet50'"):
        check_inputs(make_plan(block_study(smoke, 0)))


@pytest.mark.parametrize("how", ["read-only mount", "injected EROFS"])
def test_smoke_next_to_a_database_on_a_read_only_mount_is_one_line(
    how: str,
    tiny_study_file: Path,
    tiny_run_db: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue #28: `rttui run STUDY --smoke --db RO/q.db` on a read-only mount ended in `OSError: [Errno 30]
    Read-only file system: '.../q.smoke.db'` from api/smoke.py (removing an earlier smoke database). Now: one
    line naming the smoke database and the fix, exit 2, nothing written. Where mounting is refused, the injected
    variant raises the same OSError where the mount did."""
    import errno
    import os
    import shutil

    from tests.entry import run_cli
    from tests.mounts import read_only_view

    src = tmp_path / "archive"
    src.mkdir()
    shutil.copy(tiny_run_db, src / "q.db")  # a results archive
    before = (src / "q.db").read_bytes()
    if how == "read-only mount":
        ctx = read_only_view(src, tmp_path / "ro")
    else:
        import contextlib

        real_unlink = Path.unlink

        def unlink(self: Path, missing_ok: bool = False) -> None:
            if self.parent == src:
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
            real_unlink(self, missing_ok=missing_ok)

        monkeypatch.setattr(Path, "unlink", unlink)
        ctx = contextlib.nullcontext(src)
    with ctx as ro:
        code, _, err = run_cli(["run", str(tiny_study_file), "--smoke", "--db", str(ro / "q.db")], monkeypatch, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert "q.smoke.db: the smoke database is on a read-only file system" in lines[0]
    assert "pass a --db in a writable folder" in lines[0]
    assert (src / "q.db").read_bytes() == before and not (src / "q.smoke.db").exists()
