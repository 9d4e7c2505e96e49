"""The generated reference pages list exactly what the code has: the commands and options `rttui --help` prints,
the keys the study parser accepts, and the registries' names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rttui.cli.reference import cli_markdown
from rttui.errors import StudyError
from rttui.study import catalog, spec
from rttui.study.reference import registries_markdown, study_keys_markdown
from tests.entry import run_cli
from tests.studies import tiny_study


def _help(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> str:
    code, out, err = run_cli([*args, "--help"], monkeypatch, capsys)
    assert code == 0, err
    return out


def test_docs_cli_reference_lists_every_command_and_option_help_prints(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    ref = cli_markdown()
    top = _help([], monkeypatch, capsys)
    commands = re.findall(r"^\s{2}([a-z][a-z-]+)\s{2,}", top.split("Commands:")[1], flags=re.M)
    assert len(commands) >= 20, top
    for name in commands:
        assert f"## `rttui {name}`" in ref, name
        section = ref.split(f"## `rttui {name}`")[1].split("\n## ")[0]
        options = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", _help([name], monkeypatch, capsys)))
        options.discard("--help")
        assert options, name
        for opt in sorted(options):
            assert opt in section, f"rttui {name}: {opt} is missing from the reference"


def _sample(p: catalog.Param) -> object:
    """A value of the key's own type (TOML has no null, so a None default needs one)."""
    if p.default is not None:
        return p.default
    t = p.types[0]
    return {str: "x", int: 1, float: 0.5, bool: False, list: [], dict: {}}[t]


def _problems(text: str, tmp_path: Path) -> str:
    f = tmp_path / "s.toml"
    f.write_text(text)
    try:
        spec.load_study(f)
    except StudyError as exc:
        return str(exc)
    return ""


def _with_key(header: str, key: str, value: object) -> str:
    """The tiny study with `key = value` set in the table `header` of the reference."""
    import tomlkit

    doc = tomlkit.parse(tiny_study())
    path = header.strip("[]").split(".")
    if path == ["train", "probe"]:
        doc["target"]["val_size"] = 0.1  # a probe needs a validation split before its keys are read
    if path == ["grid"]:
        table = doc["grid"][0]
    elif path[0] == "models":
        table = doc.setdefault("models", tomlkit.table(True)).setdefault("test_resnet", tomlkit.table())
    else:
        table = doc
        for part in path:
            table = table.setdefault(part, tomlkit.table())
    table[key] = value
    return tomlkit.dumps(doc)


def test_docs_study_keys_reference_is_what_the_parser_accepts(tmp_path: Path) -> None:
    ref = study_keys_markdown()
    assert _problems(tiny_study(), tmp_path) == ""
    sections = re.findall(r"^## `(\[.+?\]\]?)`$", ref, flags=re.M)
    assert [s.header for s in catalog.SECTIONS] == sections
    # every top-level section of a study file is documented here or in the registries
    tops = {h.strip("[]").split(".")[0] for h in sections} | {"attacks", "strategies", "techniques"}
    assert tops == set(spec.TOP_KEYS)
    for sec in catalog.SECTIONS:
        body = ref.split(f"## `{sec.header}`")[1].split("\n## ")[0]
        keys = re.findall(r"^\| `([a-z_]+)` \|", body, flags=re.M)
        assert keys == list(sec.keys), sec.header
        for key in keys:
            said = _problems(_with_key(sec.header, key, _sample(sec.keys[key])), tmp_path)
            assert "unknown key" not in said, f"{sec.header} {key}: {said}"
        said = _problems(_with_key(sec.header, "zz_no_such_key", 1), tmp_path)
        assert "zz_no_such_key" in said and "unknown key" in said, f"{sec.header}: {said}"


def test_docs_registries_reference_names_every_attack_strategy_technique_and_dataset() -> None:
    ref = registries_markdown()
    names = [*catalog.attacks(), *catalog.TA_ATTACKS, *catalog.STRATEGIES, *catalog.TECHNIQUES]
    assert len(names) > 20
    for name in names:
        assert f"### `{name}`" in ref, name
    for d in catalog.DATASETS:
        assert f"| `{d}` |" in ref, d
    # each entry's parameters are in its table
    pgd = ref.split("### `pgd`")[1].split("\n### ")[0]
    for key in catalog.ATTACKS["pgd"].params:
        assert f"| `{key}` |" in pgd, key
