"""The contract, fuzzed (issue #28): whatever a study file or a command line holds, rttui either accepts it (exit
0, and the study plans) or refuses it in exactly one line on stderr with exit 2, and the database is byte for
byte what it was.

Hypothesis mutates the tiny study (values replaced by other types, huge or non-finite numbers, unicode, nested
lists and tables; keys deleted; unknown keys added; values wrapped; text inserted into the file) and the
options of the reading commands, and runs each through the real entry point (`tests.entry.run_cli`, in-process)
against one finished database made once for the module. Nothing here trains: study files go through `validate`,
`plan` and `run --dry-run`. A fixed, derandomized example count keeps it inside CI's budget (about a minute on
a 2-core machine). Every failing example it found is in `tests/test_bad_input.py`'s table.
"""

from __future__ import annotations

import signal
import sqlite3
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from rttui.study import make_plan, parse_study
from tests.entry import run_cli
from tests.studies import tiny_study

BASE: dict[str, Any] = tomllib.loads(tiny_study())
SETTINGS = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _leaves(obj: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path of the study (tables and values alike, list items of [[grid]] included)."""
    out = [path] if path else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _leaves(v, (*path, k))
    elif isinstance(obj, list) and all(isinstance(v, dict) for v in obj):
        for i, v in enumerate(obj):
            out += _leaves(v, (*path, i))
    return out


PATHS = _leaves(BASE)
WORDS = [
    "",
    "full",
    "pgd",
    "fgsm",
    "ta:PGD",
    "test_resnet",
    "test_vit",
    "linf",
    "l2",
    "all",
    "auto",
    "digits",
    "half",
    "../../etc/passwd",
    "nope",
    "tiny",
    "cuda",
    "slurm",
    "1e309",
    "-0",
]
KEY = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=8)
SCALAR = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=-3, max_value=40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-2, max_value=2),
    st.booleans(),
    st.text(max_size=12),
    st.sampled_from(WORDS),
)
VALUE = st.recursive(
    SCALAR,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEY, inner, max_size=3)),
    max_leaves=6,
)


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        doc = doc[p]
    return doc


TABLES = [()] + [p for p in PATHS if isinstance(_get(BASE, p), dict)]
MUTATION = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(PATHS), VALUE),
    st.tuples(st.just("del"), st.sampled_from(PATHS), st.none()),
    st.tuples(st.just("add"), st.sampled_from(TABLES), st.tuples(KEY, VALUE)),
    st.tuples(st.just("wrap"), st.sampled_from(PATHS), st.booleans()),
)


def _mutate(doc: dict[str, Any], m: tuple[str, tuple[Any, ...], Any]) -> None:
    kind, path, arg = m
    try:
        parent = _get(doc, path[:-1]) if kind != "add" else _get(doc, path)
    except (KeyError, IndexError, TypeError):
        return  # an earlier mutation removed or replaced it
    if kind == "add":
        if isinstance(parent, dict):
            parent[arg[0]] = arg[1]
        return
    key = path[-1]
    try:
        if kind == "set":
            parent[key] = arg
        elif kind == "del":
            del parent[key]
        else:
            parent[key] = [parent[key]] if arg else {"x": parent[key]}
    except (KeyError, IndexError, TypeError):
        return


def _study_text(mutations: list[Any], insert: tuple[int, str] | None) -> str:
    doc = tomllib.loads(tiny_study())
    for m in mutations:
        _mutate(doc, m)
    text = tomlkit.dumps(doc)
    if insert is not None:
        at, what = insert
        at %= len(text) + 1
        text = text[:at] + what + text[at:]
    return text


@pytest.fixture(scope="module")
def finished(tiny_run_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny study's finished database, copied once into one file for this module."""
    d = tmp_path_factory.mktemp("fuzz_db")
    con, dst = sqlite3.connect(tiny_run_db), sqlite3.connect(d / "q.db")
    con.backup(dst)
    con.close()
    dst.close()
    return d / "q.db"


def _state(db: Path) -> tuple[bytes, set[str], int]:
    """The database's bytes, the names in its folder, and the size of its WAL (readers may leave an empty one)."""
    wal = db.with_name(db.name + "-wal")
    return db.read_bytes(), {p.name for p in db.parent.iterdir()}, wal.stat().st_size if wal.exists() else 0


def _check(
    argv: list[str],
    db: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    study: Path | None = None,
) -> int:
    """Run `rttui ARGV`; assert the contract; return the exit code. A study file with several problems gets one
    line per problem, each naming the file (validation lists them all at once, by design: `_Problems`); any
    other refusal is exactly one line."""
    before = _state(db)
    term = signal.getsignal(signal.SIGTERM)  # `rttui run` maps SIGTERM to Ctrl-C in its process
    try:
        code, _, err = run_cli(argv, monkeypatch, capsys)
    finally:
        signal.signal(signal.SIGTERM, term)
    lines = err.splitlines()
    assert code in (0, 2), (argv, code, err)
    assert "Traceback" not in err, (argv, err)
    if code == 2:
        assert lines and all(ln.startswith("rttui: error: ") for ln in lines), (argv, err)
        assert len(lines) == 1 or (
            study is not None and all(ln.startswith(f"rttui: error: {study}: ") for ln in lines)
        ), (
            argv,
            err,
        )
    after = _state(db)
    assert after[0] == before[0], argv  # byte for byte
    assert after[1] <= before[1] | {db.name + "-wal", db.name + "-shm"} and after[2] == 0, (argv, after[1:])
    return code


@SETTINGS
@given(
    mutations=st.lists(MUTATION, min_size=1, max_size=3),
    insert=st.none() | st.tuples(st.integers(min_value=0), st.text(max_size=6)),
    command=st.sampled_from(["validate", "plan", "dry-run"]),
    run_options=st.lists(
        st.tuples(
            st.sampled_from(["--executor", "--slurm", "--workers", "--retries", "--device", "--devices"]),
            st.one_of(
                st.sampled_from(
                    [
                        "local",
                        "slurm",
                        "ray",
                        "cpu",
                        "cuda:7",
                        "2",
                        "-1",
                        "0",
                        "partition=gpu",
                        "time=soon",
                        "gpus_per_task=two",
                        "sbatch.qos=high",
                        "cluster=local",
                        "x=1",
                        "=",
                    ]
                ),
                st.text(max_size=8),
            ),
        ),
        max_size=2,
    ),
)
def test_mutated_study_files_are_accepted_with_a_plan_or_refused_in_one_line(
    mutations: list[Any],
    insert: tuple[int, str] | None,
    command: str,
    run_options: list[tuple[str, str]],
    finished: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    try:
        text = _study_text(mutations, insert)
    except (ValueError, TypeError, tomlkit.exceptions.TOMLKitError):
        event("not writable as TOML")
        return  # a value TOML cannot hold (tomlkit refuses it): not a file anyone can write
    f = tmp_path_factory.mktemp("fuzz") / "study.toml"
    f.write_text(text, encoding="utf-8", errors="surrogatepass")
    argv = {
        "validate": ["validate", str(f)],
        "plan": ["plan", str(f), "--db", str(finished)],
        "dry-run": ["run", str(f), "--db", str(finished), "--dry-run", "-q", *(x for o in run_options for x in o)],
    }[command]
    code = _check(argv, finished, monkeypatch, capsys, study=f)
    event(f"{command}: exit {code}")
    if code == 0:
        assert make_plan(parse_study(text)).runs is not None  # accepted: the study really plans


READERS = ["status", "export", "compare", "checks", "confusions", "ttest", "transfer", "depth"]
OPTIONS = [
    "--attack",
    "--eps",
    "--where",
    "--format",
    "--study",
    "--top",
    "--rows",
    "--cols",
    "--metrics",
    "--axis",
    "--a",
    "--b",
    "--metric",
    "--test",
    "--run",
    "--bogus",
    "--db",
]
OPT_VALUE = st.one_of(
    st.sampled_from(
        [
            "pgd",
            "fgsm",
            "all",
            "0.03",
            "0.1",
            "nan",
            "-1",
            "1e400",
            "model=test_resnet",
            "model",
            "json",
            "csv",
            "md",
            "latex",
            "table",
            "xml",
            "tiny",
            "nope",
            "strategy",
            "full",
            "",
            "=",
            "layer_freezing",
            "adv_acc",
            "wilcoxon",
            "5",
            "0",
        ]
    ),
    st.text(max_size=10),
    st.integers(min_value=-(2**66), max_value=2**66).map(str),
)


@SETTINGS
@given(
    command=st.sampled_from(READERS),
    options=st.lists(st.tuples(st.sampled_from(OPTIONS), OPT_VALUE), max_size=4),
    extra=st.lists(st.text(max_size=6), max_size=1),
)
def test_fuzzed_options_of_reading_commands_answer_or_refuse_in_one_line(
    command: str,
    options: list[tuple[str, str]],
    extra: list[str],
    finished: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    work = tmp_path_factory.mktemp("fuzz_cwd")
    monkeypatch.chdir(work)  # a command that wrote a file by mistake would write it here
    db = str(finished)
    argv = [command, "--db", db]
    for opt, value in options:
        argv += [opt, db if opt == "--db" else value]
    event(f"exit {_check([*argv, *extra], finished, monkeypatch, capsys)}")
    assert list(work.iterdir()) == [], argv


def test_the_fuzzed_database_is_a_finished_study(finished: Path) -> None:
    """The contract is tested against results, not an empty file: the copy holds the tiny study, done."""
    con = sqlite3.connect(f"file:{finished}?mode=ro", uri=True)
    try:
        states = {r[0] for r in con.execute("select state from runs")}
    finally:
        con.close()
    assert states == {"done"}
