"""Every bad input rttui knows of, through the real entry point (`rttui.cli.main`, as the `rttui` command runs
it): exit 2, exactly one line on stderr that names the problem and the fix, and the store as it was (every row
of every table, and every file beside the database).

Issue #20's list (study values out of range or accepted by mistake, nested TOML, a decompression-bomb image,
output paths that cannot be written, options that name no device) plus the bad inputs of the older tests
(tests/cli/test_cli.py, tests/cli/test_results_cli.py, tests/cli/test_transfer_cli.py, tests/cli/test_layers_cli.py,
tests/runner/test_real_data_studies.py, tests/store/test_stored_values.py), so one table says what rttui refuses.
Nothing here trains: each input is refused before any work starts; the database is the session's tiny study.
"""

from __future__ import annotations

import shutil
import signal
import sqlite3
import struct
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from rttui.cli import main
from rttui.study import parse_study
from tests.studies import tiny_study

DEEP = 3000  # nesting levels: deeper than Python's recursion limit lets tomllib go


@dataclass(frozen=True)
class Case:
    """One bad input: `argv(tmp, db)` writes what it needs under tmp and returns the command's arguments."""

    id: str
    argv: Callable[[Path, Path], list[str]]
    needle: str  # a piece of the one line: what is wrong, or the fix


def _study(tmp: Path, **sections: object) -> str:
    f = tmp / "study.toml"
    f.write_text(tiny_study(**sections))
    return str(f)


def _run(**sections: object) -> Callable[[Path, Path], list[str]]:
    """`rttui run` of the tiny study changed by `sections`: the runner's own path, refused before any work."""
    return lambda tmp, db: ["run", _study(tmp, **sections), "--db", str(db), "-q"]


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims `width` x `height` pixels (no pixel data): PIL's bomb check reads only the header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _image_folder(tmp: Path, extra: dict[str, bytes] | None = None) -> Path:
    """root/<class>/*.png, two classes of eight tiny images, plus `extra` files (relative path -> bytes)."""
    from PIL import Image

    root = tmp / "images"
    for c, shade in (("cat", 40), ("dog", 200)):
        (root / c).mkdir(parents=True)
        for i in range(8):
            Image.new("L", (8, 8), shade + i).save(root / c / f"{i}.png")
    for rel, data in (extra or {}).items():
        (root / rel).write_bytes(data)
    return root


def _images_run(extra: dict[str, bytes] | None = None, root: str | None = None) -> Callable[[Path, Path], list[str]]:
    def argv(tmp: Path, db: Path) -> list[str]:
        folder = root if root is not None else str(_image_folder(tmp, extra))
        target = {"dataset": "imagefolder", "root": folder, "classes": None, "train_size": None, "test_size": 4}
        return ["run", _study(tmp, target=target), "--db", str(db), "-q"]

    return argv


def _deep_toml(tmp: Path, db: Path) -> list[str]:
    f = tmp / "deep.toml"
    f.write_text(tiny_study() + "\nx = " + "[" * DEEP + "]" * DEEP + "\n")
    return ["run", str(f), "--db", str(db), "-q"]


def _edit_db(sql: str, *args: str) -> Callable[[Path, Path], list[str]]:
    """A database value rttui did not write (a hand edit, damage), then a command that reads it."""

    def argv(tmp: Path, db: Path) -> list[str]:
        con = sqlite3.connect(db)
        with con:
            con.execute(sql)
        con.close()
        return [*args, "--db", str(db)]

    return argv


def _existing(kind: str, *args: str, flag: str = "--output") -> Callable[[Path, Path], list[str]]:
    """An output option naming a folder (kind 'dir'), an existing file ('file') or a path in a missing folder."""

    def argv(tmp: Path, db: Path) -> list[str]:
        target = tmp / "target"
        if kind == "dir":
            target.mkdir()
        elif kind == "file":
            target.write_text("mine\n")
        else:
            target = tmp / "no" / "such" / "folder" / "out.csv"
        return [*args, "--db", str(db), flag, str(target)]

    return argv


def _grid(*strategies: object) -> dict[str, object]:
    return {"grid": [{"models": ["test_resnet"], "strategies": list(strategies)}]}


def _study_file_cmd(*args: str, **sections: object) -> Callable[[Path, Path], list[str]]:
    return lambda tmp, db: [*args, _study(tmp, **sections)]


CASES = [
    # -- issue #20: bad input that ended in a traceback --------------------------------------------------------
    Case("seed beyond SQLite", _run(study={"seeds": [2**64]}), "study.seeds: expected a list of integers in 0.."),
    Case("seed beyond numpy", _run(study={"seeds": [2**40]}), "study.seeds: expected a list of integers in 0.."),
    Case("split_seed beyond SQLite", _run(target={"split_seed": 2**63 + 5}), "target.split_seed: 9223372036854775813"),
    Case("split_seed beyond numpy", _run(target={"split_seed": 2**40}), "use a value <= 4294967295"),
    Case("train_size below classes", _run(target={"train_size": 3}), "train_size: 3 is smaller than the 5 classes"),
    Case("test_size below classes", _run(target={"test_size": 4}), "set test_size >= 5"),
    Case(
        "train_size below the classes of the data",
        _run(target={"classes": None, "train_size": 5}),  # all ten digits: known once loaded, by the data check
        "train_size = 5 is smaller than the 10 classes",
    ),
    Case("deeply nested TOML", _deep_toml, "nested too deeply to read"),
    Case("decompression-bomb PNG", _images_run({"cat/huge.png": _png_header(30_000, 30_000)}), "cat/huge.png has more"),
    Case(
        "decompression-bomb warning PNG",
        _images_run({"dog/big.png": _png_header(10_000, 10_000)}),
        "decompression-bomb limit",
    ),
    Case("export -o into a missing folder", _existing("missing", "export"), "does not exist; create it first"),
    Case("export -o onto a folder", _existing("dir", "export"), "is a folder; give the path of a file"),
    Case("compare -o onto a folder", _existing("dir", "compare", "-f", "csv"), "is a folder"),
    Case("ttest -o into a missing folder", _existing("missing", "ttest", "-f", "csv"), "does not exist"),
    Case("transfer -o onto a folder", _existing("dir", "transfer", "-f", "csv"), "is a folder"),
    Case("plot --out onto a file", _existing("file", "plot", flag="--out"), "is an existing file, not a folder"),
    Case(
        "report --out onto a file",
        lambda tmp, db: ["report", "tiny", *_existing("file", flag="--out")(tmp, db)],
        "is an existing file, not a folder",
    ),
    Case("depth --plot onto a folder", _existing("dir", "depth", flag="--plot"), "is a folder"),
    Case(
        "schema version not a number",
        _edit_db("update meta set value = 'abc' where key = 'schema_version'", "status"),
        "database schema version 'abc' is not a number",
    ),
    Case(
        "stored run config not JSON",
        _edit_db("update runs set config = '{\"model\": ' where strategy = 'full'", "export"),
        "is not valid JSON",
    ),
    # -- issue #20: bad input that was accepted -----------------------------------------------------------------
    Case("rel_step_size nan", _run(attacks={"pgd": {"rel_step_size": float("nan")}}), "nan is not a finite number"),
    Case("lr nan", _run(train={"lr": float("nan")}), "train.lr: nan is not a finite number"),
    Case("lr inf", _run(train={"lr": float("inf")}), "train.lr: inf is not a finite number"),
    Case("freeze most", _run(**_grid({"name": "layer_freezing", "freeze": "most"})), "unknown value 'most'"),
    Case("freeze 1000", _run(**_grid({"name": "layer_freezing", "freeze": 1000})), "has 5 depth groups; use 0..5"),
    Case("freeze_depths 1000", _run(grid=[{"models": ["test_resnet"], "freeze_depths": [0, 1000]}]), "1000 groups"),
    Case(
        "model kwargs the model does not take",
        _run(models={"test_resnet": {"kwargs": {"bogus_arg": 3}}}),
        "unexpected keyword argument 'bogus_arg'",
    ),
    Case("--device bogus", lambda tmp, db: [*_run()(tmp, db), "--device", "bogus"], "--device 'bogus' is not a"),
    Case("--retries -1", lambda tmp, db: [*_run()(tmp, db), "--retries", "-1"], "--retries -1 must be 0 or more"),
    Case("--devices with a bogus one", lambda tmp, db: [*_run()(tmp, db), "--devices", "cpu,bogus"], "'bogus'"),
    Case("--workers 0", lambda tmp, db: [*_run()(tmp, db), "--workers", "0"], "--workers 0 must be at least 1"),
    Case(
        "layers --device bogus",
        lambda tmp, db: ["layers", "--db", str(db), "--run", "x", "--device", "bogus"],
        "--device 'bogus' is not a torch device",
    ),
    Case("epochs 1e9", _run(train={"epochs": 1_000_000_000}), "set allow_large = true under [study]"),
    # -- issue #28: accepted, then failed (or measured nothing) at run time ------------------------------------
    Case("ta:PGD steps 0", _run(attacks={"ta:PGD": {"steps": 0}}), "[ta:PGD].steps: 0 is below 1"),
    Case("ta:EOTPGD eot_iter 0", _run(attacks={"ta:EOTPGD": {"eot_iter": 0}}), "[ta:EOTPGD].eot_iter: 0 is below 1"),
    Case("ta:PGD rel_alpha 0", _run(attacks={"ta:PGD": {"rel_alpha": 0}}), "[ta:PGD].rel_alpha: 0 must be above 0"),
    Case("ta:CW c 0", _run(attacks={"ta:CW": {"c": 0}}), "[ta:CW].c: 0 must be above 0"),
    Case(
        "ViT patch_size above the image",
        _run(
            models={"test_vit": {"kwargs": {"patch_size": 64}}}, grid=[{"models": ["test_vit"], "strategies": ["full"]}]
        ),
        "should be divisible by patch size (64)",
    ),
    Case(
        "ViT patch_size 0",
        _run(
            models={"test_vit": {"kwargs": {"patch_size": 0}}}, grid=[{"models": ["test_vit"], "strategies": ["full"]}]
        ),
        "model 'test_vit' cannot be built with its kwargs (ZeroDivisionError",
    ),
    Case(
        "image_size 9 with ViT patch 8",
        _run(
            target={"image_size": 9},
            models={"test_vit": {"kwargs": {"patch_size": 8}}},
            grid=[{"models": ["test_vit"], "strategies": ["full"]}],
        ),
        "cannot take the study's 9x9 images with its kwargs",
    ),
    Case("source epochs 1e9", _run(source={"epochs": 1_000_000_000}), "source.epochs: 1000000000 is above"),
    # -- issue #20: timm's loader options past rttui's checkpoint checks -----------------------------------------
    Case(
        "kwargs checkpoint_path",
        _run(models={"test_resnet": {"kwargs": {"checkpoint_path": "/tmp/w.pth"}}}),
        'set checkpoint = "/path/to/weights.safetensors" under [models.NAME]',
    ),
    Case(
        "kwargs pretrained_cfg_overlay file",
        _run(models={"test_resnet": {"kwargs": {"pretrained_cfg_overlay": {"file": "/tmp/w.pth"}}}}),
        "kwargs.pretrained_cfg_overlay: is timm's loader option",
    ),
    # -- issue #28: found by tests/test_fuzz_contract.py (click's four-line usage block before) ----------------
    Case("an extra argument", lambda tmp, db: ["status", "--db", str(db), ""], "status: Got unexpected extra argument"),
    Case("an unknown option", lambda tmp, db: ["export", "--db", str(db), "--bogus", "1"], "No such option: --bogus"),
    Case(
        "--top not a number",
        lambda tmp, db: ["confusions", "--db", str(db), "--top", "abc"],
        "Invalid value for '--top'",
    ),
    Case("an unknown command", lambda tmp, db: ["statsu", "--db", str(db)], "No such command 'statsu'"),
    Case("run without its study", lambda tmp, db: ["run", "--db", str(db)], "see `rttui run --help`"),
    # -- the older tests' bad inputs ------------------------------------------------------------------------------
    Case("epsilon 8", _study_file_cmd("validate", eval={"epsilons": [0.03, 8]}), "epsilon 8 is outside [0, 1]"),
    Case("unknown model", _run(grid=[{"models": ["resnet_5o"], "strategies": ["full"]}]), "unknown timm model"),
    Case("no such database", lambda tmp, db: ["status", "--db", str(tmp / "none.db")], "no such database"),
    Case("--format xml", lambda tmp, db: ["export", "--db", str(db), "--format", "xml"], "--format 'xml' is not"),
    Case("compare an eps not evaluated", lambda tmp, db: ["compare", "--db", str(db), "--eps", "0.05"], "0.05"),
    Case("--where without =", lambda tmp, db: ["compare", "--db", str(db), "--where", "model"], "AXIS=VALUE"),
    Case("transfer without transfer attacks", lambda tmp, db: ["transfer", "--db", str(db)], "no transfer attack"),
    Case("layers of an unknown run", lambda tmp, db: ["layers", "--db", str(db), "--run", "nope"], "not in"),
    Case("dataset folder missing", _images_run(root="/nonexistent/images"), "/nonexistent/images"),
    Case("undecodable image", _images_run({"cat/bad.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 40}), "cat/bad.png"),
    Case(
        "checkpoint missing",
        _run(models={"test_resnet": {"checkpoint": "/nonexistent/w.safetensors"}}),
        "/nonexistent/w.safetensors",
    ),
    # -- issue #28: messages that misled --------------------------------------------------------------------------
    Case("--db a folder (read)", lambda tmp, db: ["status", "--db", str(tmp)], "is a folder, not a database; name a"),
    Case("--db a folder (run)", lambda tmp, db: [*_run()(tmp, db)[:2], "--db", str(tmp), "-q"], "/rttui.db"),
    Case(
        "checkpoint a folder",
        lambda tmp, db: _run(models={"test_resnet": {"checkpoint": str(tmp)}})(tmp, db),
        "is a folder; give the path of a .safetensors or .pth file in it",
    ),
]


def _store_state(db: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """Every row of every table, and every other file beside the database (checkpoints) with its size."""
    if not db.exists():
        return [], []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = list(con.iterdump())
    finally:
        con.close()
    files = sorted(
        (str(p.relative_to(db.parent)), p.stat().st_size)
        for p in db.parent.rglob("*")
        if p.is_file() and not p.name.startswith(db.name)  # the file itself may grow: the runner lock came and went
    )
    return rows, files


@pytest.fixture(scope="module")
def base_db(tiny_run_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny study's database, checkpointed into one file, copied once for this module."""
    d = tmp_path_factory.mktemp("bad_input_db")
    con = sqlite3.connect(tiny_run_db)
    dst = sqlite3.connect(d / "tiny.db")
    con.backup(dst)
    con.close()
    dst.close()
    return d / "tiny.db"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_exit_2_and_the_store_unchanged(
    case: Case,
    base_db: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    db = store / "rttui.db"
    shutil.copy(base_db, db)
    work = tmp_path / "work"
    work.mkdir()
    argv = case.argv(work, db)
    before = _store_state(db)
    monkeypatch.setattr(sys, "argv", ["rttui", *argv])
    monkeypatch.chdir(work)
    term = signal.getsignal(signal.SIGTERM)  # `rttui run` maps SIGTERM to Ctrl-C in its process
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        signal.signal(signal.SIGTERM, term)
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert code == 2, (argv, err)
    assert len(lines) == 1 and lines[0].startswith("rttui: error: "), err
    assert case.needle in lines[0], lines[0]
    assert _store_state(db) == before


def test_typo_bounds_are_overridable_and_loader_free_kwargs_pass() -> None:
    """What the bounds above refuse stays possible on purpose: `allow_large` lifts the typo bounds, and kwargs
    the model takes pass (while the hard limits hold either way)."""
    big = tiny_study(study={"allow_large": True}, train={"epochs": 20_000})
    assert parse_study(big).blocks[0].train["epochs"] == 20_000
    with pytest.raises(Exception, match="use a value <= 4294967295"):
        parse_study(tiny_study(study={"allow_large": True}, target={"split_seed": 2**40}))
    ok = parse_study(tiny_study(models={"test_resnet": {"kwargs": {"drop_rate": 0.1}}}))
    from rttui.study import check_models

    check_models(ok)  # builds test_resnet(drop_rate=0.1) on the meta device: accepted
