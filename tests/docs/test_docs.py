"""The documentation site: it builds strictly, its references list what the code has, and its examples run.

Examples: every ```console block in `docs/` holds `$ rttui ...` command lines, each followed by excerpts of
what it prints. Each command runs here, in a folder that holds `q.db` (a finished miniature of
`studies/quickstart.toml`, made once per test run), `studies/` (the repo's studies, with `quickstart.toml`
that miniature) and, made when a page first names them, `fd.db`, `ro.db` and `tt.db` (the freeze-depth,
robust-overfitting and transfer-threat studies at smoke scale with two seeds), and must exit 0 (or the code
its first excerpt line `# exit N` names) and print every excerpt line (whitespace collapsed; a line `...` stands
for output left out). `rttui run` lines run at smoke scale (`--smoke` added): what they print then is not the
real run's, so only their exit code is checked.
"""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomlkit

from tests.entry import run_cli

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


@dataclass(frozen=True)
class Example:
    """One `$ rttui ...` line of a console block, where it is, and what it must print."""

    page: str
    line: int
    args: list[str]
    excerpts: list[str]
    exit_code: int = 0

    def __str__(self) -> str:
        return f"{self.page}:{self.line}"


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _example(page: str, line: int, args: list[str], excerpts: list[str]) -> Example:
    """An example; a first excerpt line `# exit N` is the exit code it expects, not output."""
    if excerpts and (m := re.fullmatch(r"#\s*exit\s+(\d+)", excerpts[0])):
        return Example(page, line, args, excerpts[1:], exit_code=int(m.group(1)))
    return Example(page, line, args, excerpts)


def examples(docs: Path = DOCS) -> list[Example]:
    """Every command of every ```console block under `docs`, in page order."""
    import shlex

    found: list[Example] = []
    for path in sorted(docs.rglob("*.md")):
        page = str(path.relative_to(docs))
        in_block = False
        current: tuple[int, list[str], list[str]] | None = None
        for i, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            stripped = raw.strip()
            if not in_block:
                in_block = stripped.startswith("```console")
                continue
            if stripped.startswith("```") or stripped.startswith("$ "):
                if current is not None:
                    found.append(_example(page, *current))
                current = (i, shlex.split(stripped[2:]), []) if stripped.startswith("$ ") else None
                in_block = not stripped.startswith("```")
            elif current is not None and stripped and stripped != "...":
                current[2].append(stripped)
    return found


EXAMPLES = examples()


def miniature_quickstart() -> str:
    """`studies/quickstart.toml` at a size that runs in about a minute: the same name, models, strategies,
    attacks and epsilon grid; two seeds, fewer epochs, images and PGD steps."""
    doc = tomlkit.parse((ROOT / "studies" / "quickstart.toml").read_text(encoding="utf-8"))
    doc["study"]["seeds"] = [0, 1]
    doc["source"]["epochs"] = 2
    doc["source"]["train_size"] = 300
    doc["target"]["test_size"] = 60
    doc["target"]["train_size"] = 200
    doc["train"]["epochs"] = 2
    doc["attacks"]["pgd"]["steps"] = 2
    return tomlkit.dumps(doc)


@pytest.fixture(scope="session")
def docs_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder as a reader's after the tutorial: `studies/` and a finished `q.db` of the miniature quickstart."""
    from rttui import api

    d = tmp_path_factory.mktemp("docs")
    shutil.copytree(ROOT / "studies", d / "studies")
    (d / "studies" / "quickstart.toml").write_text(miniature_quickstart(), encoding="utf-8")
    api.run_study(api.load_study(d / "studies" / "quickstart.toml"), d / "q.db")
    return d


# Databases other pages read besides q.db: each a study of `studies/` at smoke scale, with its whole epsilon grid
# and two seeds (paired tests need pairs), made the first time an example names it.
EXTRA_DBS = {"fd.db": "freeze-depth.toml", "ro.db": "robust-overfitting.toml", "tt.db": "transfer-threat.toml"}


def _extra_db(folder: Path, name: str) -> None:
    from rttui import api
    from rttui.study.files import study_toml
    from rttui.study.smoke import SmokeScale, smoke_study
    from rttui.study.spec import load_study, parse_study

    real = load_study(folder / "studies" / EXTRA_DBS[name])
    small = smoke_study(real, SmokeScale(epsilons=99))
    raw = {**small.raw, "study": {**small.raw["study"], "seeds": list(real.seeds[:2])}}
    api.run_study(parse_study(study_toml(raw), f"{name} (docs)"), folder / name)


def test_docs_examples_are_found() -> None:
    """The harness reads the pages' console blocks (a parser that finds nothing would pass every page)."""
    assert len(EXAMPLES) >= 10, [str(e) for e in EXAMPLES]
    assert all(e.args and e.args[0] == "rttui" for e in EXAMPLES), [str(e) for e in EXAMPLES if e.args[:1] != ["rttui"]]


@pytest.mark.slow
@pytest.mark.parametrize("example", EXAMPLES, ids=str)
def test_docs_example_runs_and_prints_what_the_page_quotes(
    example: Example, docs_folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(docs_folder)
    monkeypatch.delenv("RTTUI_DB", raising=False)
    args = example.args[1:]
    for flag, value in itertools.pairwise(args):
        if flag == "--db" and value in EXTRA_DBS and not (docs_folder / value).exists():
            _extra_db(docs_folder, value)
    is_run = bool(args) and args[0] == "run"
    if is_run and "--smoke" not in args:
        args = [*args, "--smoke"]
    code, out, err = run_cli(args, monkeypatch, capsys)
    printed = _collapse(out + "\n" + err)
    assert code == example.exit_code, f"{example}: `{' '.join(example.args)}` exited {code}\n{out}\n{err}"
    if is_run:
        return
    missing = [line for line in example.excerpts if _collapse(line) not in printed]
    assert not missing, f"{example}: not printed: {missing}\n--- printed ---\n{out}\n{err}"


def test_docs_example_parser_reads_commands_excerpts_and_exit_codes(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text(
        "text\n```console\n$ rttui compare --db q.db\nheader  one\n...\n\n$ rttui validate bad.toml\n# exit 2\n"
        "error: bad\n```\n```bash\n$ rttui not-run\n```\n",
        encoding="utf-8",
    )
    found = examples(tmp_path)
    assert [(e.args, e.excerpts, e.exit_code) for e in found] == [
        (["rttui", "compare", "--db", "q.db"], ["header  one"], 0),
        (["rttui", "validate", "bad.toml"], ["error: bad"], 2),
    ]


def test_docs_site_builds_strictly(tmp_path: Path) -> None:
    """`mkdocs build --strict`: every page in the nav, no broken link or anchor, the reference pages generated."""
    pytest.importorskip("mkdocs")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for page in ("reference/cli", "reference/study-keys", "reference/registries"):
        assert (tmp_path / "site" / page / "index.html").is_file(), page
