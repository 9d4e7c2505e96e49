"""The Builder's form as plain data, and the mapping between it and a study (`Study.raw`, the parsed TOML).

`form_from_study` says what every field, picker and parameter box shows for a study; `study_from_form` applies
what they hold back onto a copy of the study, so keys the form does not show (extra grid blocks, model kwargs,
descriptions, inline strategy tables) survive a load-edit-save round trip. Pure functions over dicts and
strings: no widgets, no Textual, no I/O, so the rules are unit-tested without an app.
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass, field
from typing import Any

# A new study: small enough to run offline on a CPU in about a minute.
TEMPLATE: dict[str, Any] = {
    "study": {"name": "new-study", "seeds": [0, 1, 2]},
    "source": {"dataset": "digits", "classes": [0, 1, 2, 3, 4], "epochs": 4},
    "target": {"dataset": "digits", "classes": [5, 6, 7, 8, 9], "image_size": 16, "test_size": 100},
    "train": {"epochs": 2, "lr": 0.002},
    "eval": {"epsilons": [0.01, 0.03, 0.05]},
    "attacks": {"fgsm": {}, "pgd": {"steps": 10}},
    "grid": [{"models": ["test_resnet"], "strategies": ["full", "feature_extraction"]}],
}

# (input id, section, key, label, kind): kind is "list" for comma-separated lists, else a scalar.
FIELDS: tuple[tuple[str, str, str, str, str], ...] = (
    ("f-name", "study", "name", "name", "str"),
    ("f-seeds", "study", "seeds", "seeds", "list"),
    ("f-src-classes", "source", "classes", "classes", "list"),
    ("f-src-epochs", "source", "epochs", "epochs", "scalar"),
    ("f-tgt-classes", "target", "classes", "classes", "list"),
    ("f-tgt-image", "target", "image_size", "image size", "scalar"),
    ("f-tgt-test", "target", "test_size", "test size", "scalar"),
    ("f-tgt-train", "target", "train_size", "train size", "scalar"),
    ("f-train-epochs", "train", "epochs", "epochs", "scalar"),
    ("f-train-lr", "train", "lr", "lr", "scalar"),
    ("f-train-batch", "train", "batch_size", "batch size", "scalar"),
    ("f-eps", "eval", "epsilons", "epsilons", "list"),
)
AXES = ("strategies", "techniques", "attacks")


def parse_value(text: str, kind: str) -> Any:
    """A field's text as a TOML value: `3` -> 3, `0.1` -> 0.1, `true` -> True, `half` -> "half"."""
    text = text.strip()
    if not text:
        return None
    if kind == "list" and not text.startswith("["):
        text = f"[{text}]"
    if kind == "str":
        return text
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def show_value(value: Any) -> str:
    """A study value as a field shows it (the inverse of `parse_value`): lists comma-separated, "" for unset."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(show_value(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def entry_name(item: Any) -> str:
    """The name of an axis value, written either as a name or as an inline table {name = ...}."""
    return item["name"] if isinstance(item, dict) else str(item)


def param_id(axis: str, name: str, key: str) -> str:
    """The widget id of one parameter box: `p-attacks-pgd-steps` (ids take letters, digits, '_' and '-', so the
    colon of a catalogue name such as `ta:CW` becomes '_')."""
    return f"p-{axis}-{name.replace(':', '_')}-{key}"


@dataclass
class Form:
    """What the Builder's widgets hold, as text and choices (no widgets).

    `fields`: FIELDS input id -> text; `selected`: axis -> the names ticked in its list; `params`: parameter
    box id (`param_id`) -> text. Datasets are None where the study names one the pickers do not offer.
    """

    fields: dict[str, str] = field(default_factory=dict)
    source_dataset: str | None = "digits"
    target_dataset: str | None = "digits"
    pretrained: bool = False
    models: str = ""
    selected: dict[str, list[str]] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


def form_from_study(raw: dict[str, Any], catalog: dict[str, Any]) -> Form:
    """What each widget shows for a study: its first grid block's models and axes, the top-level sections, and
    the parameters of each catalog entry. Names the engine does not implement are never ticked."""
    block = (raw.get("grid") or [{}])[0]
    datasets = {d["name"] for d in catalog["datasets"]}
    form = Form()
    for fid, sec, key, _, _ in FIELDS:
        form.fields[fid] = show_value((raw.get(sec) or {}).get(key))
    src = (raw.get("source") or {}).get("dataset", "digits")
    tgt = (raw.get("target") or {}).get("dataset", "digits")
    form.source_dataset = src if src in datasets else None
    form.target_dataset = tgt if tgt in datasets else None
    form.pretrained = bool((raw.get("source") or {}).get("pretrained"))
    form.models = ", ".join(entry_name(m) for m in block.get("models", []))
    chosen = {
        "strategies": [entry_name(s) for s in block.get("strategies", [])],
        "techniques": [entry_name(s) for s in block.get("techniques", ["none"])],
        "attacks": [entry_name(s) for s in block.get("attacks", list(raw.get("attacks", {})) or ["fgsm", "pgd"])],
    }
    for axis, names in chosen.items():
        offered = {entry["name"] for entry in catalog[axis] if entry["implemented"]}
        form.selected[axis] = [n for n in names if n in offered]
        for entry in catalog[axis]:
            for k in entry["params"]:
                value = ((raw.get(axis) or {}).get(entry["name"]) or {}).get(k)
                form.params[param_id(axis, entry["name"], k)] = show_value(value)
    return form


SHOWN_BLOCK_KEYS = ("models", "strategies", "techniques", "attacks")


def unshown(raw: dict[str, Any]) -> str:
    """What of the grid the form does not show (and a save keeps as written), in one line; "" when nothing:
    keys of the first block other than its pickers (`freeze_depths`, a per-block `target`), and further blocks."""
    grid = raw.get("grid") or [{}]
    keys = [k for k in grid[0] if k not in SHOWN_BLOCK_KEYS]
    parts = []
    if keys:
        shown = ", ".join(f"{k} = {show_value(grid[0][k])}" if isinstance(grid[0][k], list) else k for k in keys)
        parts.append(f"grid[0] also sets {shown}")
    if len(grid) > 1:
        parts.append(f"{len(grid) - 1} more grid block(s) follow")
    return f"{'; '.join(parts)}: kept as written (edit them in the file)" if parts else ""


def study_from_form(raw: dict[str, Any], form: Form, catalog: dict[str, Any]) -> dict[str, Any]:
    """The study the form shows, as a TOML-ready dict: a copy of `raw` with the form's values applied.

    Only the first grid block is edited; an empty field removes its key (the default applies); a strategy,
    technique or attack listed as an inline table keeps its table (an attack listed twice, e.g. two transfer
    surrogates, keeps both); an axis the block does not list (a grid that sweeps `freeze_depths` instead of naming
    strategies) stays unlisted while nothing is ticked; a dataset picker left at what the study showed (None, or
    the value `form_from_study` gives) leaves the file's dataset as written (a study may name none: per-block
    targets, a pretrained source); an attack table is dropped when no block uses it any more; parameter tables
    of unchecked attacks are left as they were.
    """
    shown = form_from_study(raw, catalog)
    raw = copy.deepcopy(raw)

    def put(sec: str, key: str, value: Any) -> None:
        if value is None:  # an empty field: the key goes (no empty table is added for a section the study lacks)
            if isinstance(raw.get(sec), dict):
                raw[sec].pop(key, None)
            return
        raw.setdefault(sec, {})[key] = value

    for fid, sec, key, _, kind in FIELDS:
        put(sec, key, parse_value(form.fields.get(fid, ""), kind))
    for sec, picked, was in (
        ("source", form.source_dataset, shown.source_dataset),
        ("target", form.target_dataset, shown.target_dataset),
    ):
        if picked is not None and picked != was:
            put(sec, "dataset", picked)
    put("source", "pretrained", True if form.pretrained else None)
    grid = raw.setdefault("grid", [{}])
    if not grid:
        grid.append({})
    block = grid[0]
    old = {axis: {entry_name(x): x for x in block.get(axis, [])} for axis in ("models", "strategies", "techniques")}
    models = [m.strip() for m in form.models.split(",") if m.strip()]
    block["models"] = [old["models"].get(m, m) for m in models]
    for axis in ("strategies", "techniques"):
        names = form.selected.get(axis, [])
        if axis not in block and (not names or (axis == "techniques" and names == ["none"])):
            continue  # the default, or an axis this block spells another way: leave the file as it was
        block[axis] = [old[axis].get(n, n) for n in names]
    attacks = form.selected.get("attacks", [])
    tables = raw.setdefault("attacks", {})
    inline = set()
    if "attacks" in block:
        listed = block["attacks"]
        kept = [x for x in listed if entry_name(x) in attacks]  # every entry of a ticked name, inline tables too
        block["attacks"] = kept + [a for a in attacks if a not in map(entry_name, listed)]
        inline = {entry_name(x) for x in kept if isinstance(x, dict)}
    for a in list(tables):
        if a not in attacks and not any(a in map(entry_name, b.get("attacks", [])) for b in grid[1:]):
            del tables[a]
    for a in attacks:
        if a not in inline:  # an attack given only as inline tables needs no table of its own
            tables.setdefault(a, {})
    for axis in AXES:
        for entry in catalog[axis]:
            for k in entry["params"]:
                pid = param_id(axis, entry["name"], k)
                if pid not in form.params:
                    continue
                v = parse_value(form.params[pid], "scalar")
                if axis == "attacks" and entry["name"] not in attacks:
                    continue
                if v is None and entry["name"] not in raw.get(axis, {}):
                    continue  # nothing to remove, and no empty table to add
                t = raw.setdefault(axis, {}).setdefault(entry["name"], {})
                if v is None:
                    t.pop(k, None)
                else:
                    t[k] = v
                if axis != "attacks" and not t:
                    raw[axis].pop(entry["name"], None)
        if axis in raw and not raw[axis] and axis != "attacks":
            raw.pop(axis)
    return raw
