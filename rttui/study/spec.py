"""Study files: TOML in, a validated, fully resolved `Study` out.

A study is a union of grid blocks (`[[grid]]`), each a cross product of models x strategies x techniques
(x attacks), with the study's seeds. Top-level sections (`[source]`, `[target]`, `[train]`, `[eval]`,
`[attacks.*]`, `[strategies.*]`, `[techniques.*]`, `[models.*]`) give defaults that a block may override with
tables of the same name. Every problem becomes one line: `file: key: problem; fix`.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rttui.engine import attack_names, audit_settings
from rttui.errors import StudyError
from rttui.study import catalog
from rttui.study.catalog import Entry, Param
from rttui.study.transfer import check_attacks as check_transfer_attacks

TOP_KEYS = {
    "study",
    "source",
    "target",
    "train",
    "eval",
    "attacks",
    "strategies",
    "techniques",
    "models",
    "grid",
}
BLOCK_KEYS = {
    "models",
    "strategies",
    "techniques",
    "attacks",
    "source",
    "target",
    "train",
    "eval",
    "name",
    "freeze_depths",
}
STUDY_KEYS = {"name", "description", "seeds"}


@dataclass(frozen=True)
class Choice:
    """One value on an axis: a name plus its resolved parameters."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "params": dict(self.params)}


@dataclass(frozen=True)
class Block:
    """One grid block, with every section resolved (defaults merged, validated)."""

    index: int
    name: str
    source: dict[str, Any]
    target: dict[str, Any]
    train: dict[str, Any]
    eval: dict[str, Any]
    models: tuple[Choice, ...]
    strategies: tuple[Choice, ...]
    techniques: tuple[Choice, ...]
    attacks: tuple[Choice, ...]


@dataclass(frozen=True)
class Study:
    """A validated study. `raw` is the parsed TOML, kept so a face can edit and save it back."""

    name: str
    description: str
    seeds: tuple[int, ...]
    blocks: tuple[Block, ...]
    path: Path | None = None
    raw: dict[str, Any] = field(default_factory=dict)


class _Problems:
    """Collects one-line problems so a user sees all of them at once."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.items: list[str] = []

    def add(self, key: str, problem: str, fix: str) -> None:
        self.items.append(f"{self.where}: {key}: {problem}; {fix}")

    def raise_if_any(self) -> None:
        if self.items:
            raise StudyError("\n".join(self.items))


def _suggest(name: str, options: list[str] | set[str] | dict[str, Any]) -> str:
    close = difflib.get_close_matches(name, list(options), n=3, cutoff=0.5)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    return "choose one of " + ", ".join(sorted(options))


def _check_param(probs: _Problems, key: str, value: Any, spec: Param) -> Any:
    if value is None:
        if spec.nullable:
            return None
        probs.add(key, "must not be empty", f"give a value ({spec.help})")
        return spec.default
    ok_types = spec.types
    # bool is an int subclass: `true` must not pass where a number is expected.
    ok = isinstance(value, ok_types) and not (isinstance(value, bool) and bool not in ok_types)
    if not ok:
        names = " or ".join(t.__name__ for t in ok_types)
        probs.add(key, f"expected {names}, got {value!r}", f"set it to a {names} ({spec.help})")
        return spec.default
    if spec.choices and value not in spec.choices:
        probs.add(key, f"unknown value {value!r}", _suggest(str(value), [str(c) for c in spec.choices]))
        return spec.default
    if isinstance(value, int | float) and not isinstance(value, bool):
        if spec.low is not None and value < spec.low:
            probs.add(key, f"{value} is below {spec.low}", f"use a value >= {spec.low}")
        if spec.high is not None and value > spec.high:
            probs.add(key, f"{value} is above {spec.high}", f"use a value <= {spec.high}")
    return value


def _resolve_section(
    probs: _Problems, prefix: str, schema: dict[str, Param], *layers: dict[str, Any] | None
) -> dict[str, Any]:
    """Merge layers over the schema defaults, key by key, and check every value."""
    out = {k: p.default for k, p in schema.items()}
    for layer in layers:
        if layer is None:
            continue
        if not isinstance(layer, dict):
            probs.add(prefix, f"expected a table, got {layer!r}", f"write it as [{prefix}] with key = value lines")
            continue
        for k, v in layer.items():
            if k not in schema:
                probs.add(f"{prefix}.{k}", "unknown key", _suggest(k, schema))
                continue
            out[k] = _check_param(probs, f"{prefix}.{k}", v, schema[k])
    return out


def _kept(spec: Param, value: Any, params: dict[str, Any]) -> bool:
    """Whether a resolved parameter belongs in the config (and so in the run id); see Param.omit_default."""
    if spec.omit_default and value == spec.default:
        return False
    return spec.only_with is None or params.get(spec.only_with[0]) == spec.only_with[1]


def _resolve_choice(
    probs: _Problems,
    key: str,
    item: Any,
    registry: dict[str, Entry],
    defaults: dict[str, Any],
) -> Choice | None:
    """An axis value is a name or an inline table {name = ..., param = ...}."""
    if isinstance(item, str):
        name, inline = item, {}
    elif isinstance(item, dict) and isinstance(item.get("name"), str):
        name, inline = item["name"], {k: v for k, v in item.items() if k != "name"}
    else:
        probs.add(key, f"expected a name or {{name = ...}}, got {item!r}", "write a quoted name")
        return None
    entry = registry.get(name)
    if entry is None:
        probs.add(key, f"unknown name {name!r}", _suggest(name, registry))
        return None
    if not entry.implemented:
        probs.add(key, f"{name!r} is not implemented in this version of rttui", "remove it from the study")
        return None
    params = _resolve_section(probs, f"{key}[{name}]", entry.params, defaults.get(name), inline)
    params = {k: v for k, v in params.items() if _kept(entry.params[k], v, params)}
    return Choice(name, params)


def _axis(
    probs: _Problems, key: str, values: Any, registry: dict[str, Entry], defaults: dict[str, Any]
) -> tuple[Choice, ...]:
    if not isinstance(values, list) or not values:
        probs.add(key, "expected a non-empty list", f'e.g. {key.rsplit(".", 1)[-1]} = ["{next(iter(registry))}"]')
        return ()
    out = [c for i, v in enumerate(values) if (c := _resolve_choice(probs, f"{key}[{i}]", v, registry, defaults))]
    names = [(c.name, repr(sorted(c.params.items(), key=str))) for c in out]  # values may be tables
    if len(set(names)) != len(names):
        probs.add(key, "lists the same value twice", "remove the duplicate")
    return tuple(out)


def _freeze_depth_ok(d: Any) -> bool:
    if isinstance(d, bool):
        return False
    if isinstance(d, int):
        return d >= 0
    if isinstance(d, float):
        return 0 < d < 1
    return d in ("all", "half", "auto")


def _strategies(probs: _Problems, p: str, block: dict[str, Any], defaults: dict[str, Any]) -> tuple[Choice, ...]:
    """The block's strategies plus its freeze-depth sweep.

    `freeze_depths = [0, 1, 2, "all"]` is shorthand for one `layer_freezing` strategy per depth (0 trains every
    group, "all" only the head), so a sweep's runs have exactly the ids the long form would give them.
    """
    depths = block.get("freeze_depths")
    if depths is None:
        return _axis(probs, f"{p}.strategies", block.get("strategies"), catalog.STRATEGIES, defaults)
    key = f"{p}.freeze_depths"
    if not isinstance(depths, list) or not depths:
        probs.add(key, "expected a non-empty list of depths", 'e.g. freeze_depths = [0, 1, 2, 3, "all"]')
        return ()
    bad = [d for d in depths if not _freeze_depth_ok(d)]
    if bad:
        probs.add(
            key,
            f"{bad[0]!r} is not a freeze depth",
            'use group counts (0, 1, 2, ...), fractions in (0, 1), "half", "all" or "auto"',
        )
        return ()
    listed = block.get("strategies")
    out = list(_axis(probs, f"{p}.strategies", listed, catalog.STRATEGIES, defaults)) if listed is not None else []
    for i, d in enumerate(depths):
        c = _resolve_choice(probs, f"{key}[{i}]", {"name": "layer_freezing", "freeze": d}, catalog.STRATEGIES, defaults)
        if c is not None:
            out.append(c)
    names = [(c.name, repr(sorted(c.params.items(), key=str))) for c in out]  # values may be tables
    if len(set(names)) != len(names):
        probs.add(key, "repeats a depth (or one the block's strategies already list)", "remove the duplicate")
    return tuple(out)


def _models(probs: _Problems, key: str, values: Any, defaults: dict[str, Any]) -> tuple[Choice, ...]:
    if not isinstance(values, list) or not values:
        probs.add(key, "expected a non-empty list of timm model names", 'e.g. models = ["resnet50"]')
        return ()
    out = []
    for i, v in enumerate(values):
        if isinstance(v, str):
            name, inline = v, {}
        elif isinstance(v, dict) and isinstance(v.get("name"), str):
            name, inline = v["name"], {k: x for k, x in v.items() if k != "name"}
        else:
            probs.add(f"{key}[{i}]", f"expected a model name, got {v!r}", 'write a timm name such as "resnet50"')
            continue
        params = _resolve_section(probs, f"{key}[{name}]", catalog.MODEL_KEYS, defaults.get(name), inline)
        out.append(Choice(name, params))
    return tuple(out)


def _epsilons(probs: _Problems, key: str, eps: Any) -> list[float]:
    if not isinstance(eps, list) or not eps:
        probs.add(key, "expected a non-empty list of numbers", "e.g. epsilons = [0.01, 0.03, 0.05]")
        return []
    out: list[float] = []
    for e in eps:
        if isinstance(e, bool) or not isinstance(e, int | float):
            probs.add(key, f"{e!r} is not a number", "use numbers in [0, 1] pixel units")
        elif not 0 <= e <= 1:
            hint = f" (did you mean {e}/255 = {e / 255:.4f}?)" if 1 < e <= 255 else ""
            probs.add(key, f"epsilon {e} is outside [0, 1]{hint}", "epsilons are in [0, 1] pixel units")
        else:
            out.append(float(e))
    if len(set(out)) != len(out):
        probs.add(key, "lists the same epsilon twice", "remove the duplicate")
    return sorted(set(out))


def _check_autoattack_classes(probs: _Problems, p: str, attacks: tuple[Choice, ...], target: dict[str, Any]) -> None:
    """Refuse an AutoAttack version the target's class count cannot run (when the study alone says the count),
    before anything is trained; the engine checks again once the model exists."""
    n = catalog.known_classes(target)
    for a in attacks:
        if a.name != "autoattack" or n is None:
            continue
        version = str(a.params.get("version", "standard"))
        need = attack_names.AUTOATTACK_MIN_CLASSES.get(version)
        if need is not None and n < need:
            fix = ' or version = "rand" (needs 3)' if n == 3 else ""
            probs.add(
                f"{p}.attacks (autoattack)",
                f"the target has {n} classes but AutoAttack version {version!r} needs at least {need}",
                f"remove autoattack, use a target with >= {need} classes{fix}",
            )


def parse_study(text: str, where: str = "<study>", path: Path | None = None) -> Study:
    """Parse and validate a study from TOML text; raises StudyError with every problem found."""
    probs = _Problems(where)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StudyError(f"{where}: not valid TOML ({exc}); fix the syntax at that line") from None
    for k in raw:
        if k not in TOP_KEYS:
            probs.add(k, "unknown section", _suggest(k, TOP_KEYS))
    head = raw.get("study")
    if not isinstance(head, dict):
        probs.add("study", "missing [study] table", 'add [study] with name = "..." and seeds = [0, 1, 2]')
        probs.raise_if_any()
        head = {}
    for k in head:
        if k not in STUDY_KEYS:
            probs.add(f"study.{k}", "unknown key", _suggest(k, STUDY_KEYS))
    name = head.get("name")
    if not isinstance(name, str) or not name.strip() or any(c in name for c in "/\\\n"):
        probs.add("study.name", f"invalid study name {name!r}", 'give a short name such as "quickstart"')
        name = "?"
    seeds = head.get("seeds", [0, 1, 2])
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
    ):
        probs.add(
            "study.seeds",
            f"expected a list of non-negative integers, got {seeds!r}",
            "e.g. seeds = [0, 1, 2]",
        )
        seeds = [0]
    elif len(set(seeds)) != len(seeds):
        probs.add("study.seeds", "lists the same seed twice", "remove the duplicate")

    tables: dict[str, dict[str, Any]] = {}
    for sec in ("attacks", "strategies", "techniques", "models"):
        t = raw.get(sec, {})
        if not isinstance(t, dict) or not all(isinstance(v, dict) for v in t.values()):
            probs.add(sec, f"expected tables such as [{sec}.NAME]", f"write parameters under [{sec}.NAME]")
            t = {}
        tables[sec] = t
    for aname in tables["attacks"]:
        if aname not in catalog.ATTACKS:
            probs.add(f"attacks.{aname}", "unknown attack", _suggest(aname, catalog.ATTACKS))
    for sname in tables["strategies"]:
        if sname not in catalog.STRATEGIES:
            probs.add(f"strategies.{sname}", "unknown strategy", _suggest(sname, catalog.STRATEGIES))
    for tname in tables["techniques"]:
        if tname not in catalog.TECHNIQUES:
            probs.add(f"techniques.{tname}", "unknown technique", _suggest(tname, catalog.TECHNIQUES))

    grid = raw.get("grid")
    if not isinstance(grid, list) or not grid or not all(isinstance(b, dict) for b in grid):
        probs.add("grid", "missing [[grid]] blocks", "add [[grid]] with models = [...] and strategies = [...]")
        grid = []
    blocks: list[Block] = []
    for i, b in enumerate(grid):
        p = f"grid[{i}]"
        for k in b:
            if k not in BLOCK_KEYS:
                probs.add(f"{p}.{k}", "unknown key", _suggest(k, BLOCK_KEYS))
        source = _resolve_section(probs, f"{p}.source", catalog.SOURCE_KEYS, raw.get("source"), b.get("source"))
        target = _resolve_section(probs, f"{p}.target", catalog.TARGET_KEYS, raw.get("target"), b.get("target"))
        train = _resolve_section(probs, f"{p}.train", catalog.TRAIN_KEYS, raw.get("train"), b.get("train"))
        eval_cfg = _resolve_section(probs, f"{p}.eval", catalog.EVAL_KEYS, raw.get("eval"), b.get("eval"))
        eval_cfg["epsilons"] = _epsilons(probs, f"{p}.eval.epsilons", eval_cfg["epsilons"])
        if isinstance(eval_cfg.get("audit"), dict):
            probs.items += [f"{where}: {p}.{line}" for line in audit_settings.check_settings(eval_cfg["audit"])]
        for sec_name, sec in (("source", source), ("target", target)):
            if not catalog.dataset_known(sec["dataset"]):
                probs.add(
                    f"{p}.{sec_name}.dataset",
                    f"unknown dataset {sec['dataset']!r}",
                    _suggest(sec["dataset"], catalog.DATASETS),
                )
            cls = sec["classes"]
            if isinstance(cls, int) and cls < 2:
                probs.add(f"{p}.{sec_name}.classes", f"need at least two classes, got {cls}", "draw 2 or more")
            elif isinstance(cls, list) and (not cls or len(set(map(str, cls))) != len(cls) or len(cls) < 2):
                probs.add(
                    f"{p}.{sec_name}.classes",
                    f"need at least two distinct classes, got {cls!r}",
                    "list two or more class indices",
                )
        models = _models(probs, f"{p}.models", b.get("models"), tables["models"])
        strategies = _strategies(probs, p, b, tables["strategies"])
        techniques = _axis(
            probs, f"{p}.techniques", b.get("techniques", ["none"]), catalog.TECHNIQUES, tables["techniques"]
        )
        attack_names = b.get("attacks", list(tables["attacks"]) or ["fgsm", "pgd"])
        attacks = _axis(probs, f"{p}.attacks", attack_names, catalog.ATTACKS, tables["attacks"])
        check_transfer_attacks(probs, f"{p}.attacks", attacks, seeds if isinstance(seeds, list) else [])
        _check_autoattack_classes(probs, p, attacks, target)
        bname = b.get("name", f"block{i}")
        blocks.append(
            Block(
                index=i,
                name=str(bname),
                source=source,
                target=target,
                train=train,
                eval=eval_cfg,
                models=models,
                strategies=strategies,
                techniques=techniques,
                attacks=attacks,
            )
        )
    probs.raise_if_any()
    return Study(str(name), str(head.get("description", "")), tuple(seeds), tuple(blocks), path, raw)


def load_study(path: str | Path) -> Study:
    """Read and validate a study file."""
    p = Path(path)
    if not p.is_file():
        raise StudyError(f"{p}: no such study file; give the path of a .toml file (see studies/)")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StudyError(f"{p}: cannot be read ({exc}); check the file's permissions and encoding") from None
    return parse_study(text, str(p), p)


def check_models(study: Study) -> None:
    """Check every model name against timm's registry (imports timm, so it is kept out of parsing)."""
    from rttui.engine.models import known_model_names

    names = known_model_names()
    probs = _Problems(str(study.path or study.name))
    for b in study.blocks:
        for i, m in enumerate(b.models):
            base = m.name.split(".", 1)[0]
            if base not in names:
                probs.add(f"grid[{b.index}].models[{i}]", f"unknown timm model {m.name!r}", _suggest(base, names))
    probs.raise_if_any()
