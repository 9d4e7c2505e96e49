"""Study files: TOML in, a validated, fully resolved `Study` out.

A study is a union of grid blocks (`[[grid]]`), each a cross product of models x strategies x techniques
(x attacks), with the study's seeds. Top-level sections (`[source]`, `[target]`, `[train]`, `[eval]`,
`[attacks.*]`, `[strategies.*]`, `[techniques.*]`, `[models.*]`) give defaults that a block may override with
tables of the same name. Every problem becomes one line: `file: key: problem; fix`.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rttui.engine.attacks import audit_settings
from rttui.engine.attacks import names as attack_names
from rttui.engine.robustbench_names import DEFAULT_MODEL_DIR, FROM_RTTUI_DATASET
from rttui.errors import RttuiError, StudyError
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
    "run",
    "track",
}
# The keys of [study] and of a [[grid]] block, with their help, live in the catalog (the reference docs read them).
BLOCK_KEYS = catalog.BLOCK_KEYS
STUDY_KEYS = catalog.STUDY_KEYS

# timm.create_model's own loader keywords: they would load weights (or change where from) past rttui's checks of
# checkpoints, or clash with what rttui sets itself. Each maps to the key of rttui that does the job.
LOADER_KWARGS = {
    "checkpoint_path": 'set checkpoint = "/path/to/weights.safetensors" under [models.NAME] instead',
    "pretrained_cfg": "set checkpoint (and mean/std) under [models.NAME] instead",
    "pretrained_cfg_overlay": "set checkpoint (and mean/std) under [models.NAME] instead",
    "cache_dir": "put downloaded weights in the Hugging Face cache ($HF_HOME) instead",
    "pretrained": "set pretrained = true under [models.NAME] or [source] instead",
    "num_classes": "leave it out: rttui sizes the head for the task's classes",
}


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
    # The resolved `[run]` table (executor, and `slurm` job options): how to run, never part of a run's config.
    run: dict[str, Any] = field(default_factory=dict)
    # The resolved `[track]` table (an experiment tracker each run is pushed to as it is stored); {} for none.
    # Execution only, like `run`.
    track: dict[str, Any] = field(default_factory=dict)


class _Problems:
    """Collects one-line problems so a user sees all of them at once.

    `allow_large` is the study's `[study] allow_large`: it lifts the typo bounds (`Param.typo_above`).
    """

    def __init__(self, where: str, allow_large: bool = False) -> None:
        self.where = where
        self.allow_large = allow_large
        self.items: list[str] = []

    def add(self, key: str, problem: str, fix: str) -> None:
        self.items.append(f"{self.where}: {key}: {problem}; {fix}")

    def add_once(self, key: str, problem: str, fix: str) -> None:
        """Add a problem that names its own subject (an attack needing an extra) once, however many keys hit it."""
        if not any(item.endswith(f": {problem}; {fix}") for item in self.items):
            self.add(key, problem, fix)

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
    if isinstance(value, str) and spec.words and value not in spec.words:
        probs.add(key, f"unknown value {value!r}", f"use a number or {' or '.join(repr(w) for w in spec.words)}")
        return spec.default
    if isinstance(value, float) and not math.isfinite(value):
        probs.add(key, f"{value} is not a finite number", f"give a number ({spec.help})")
        return spec.default
    if isinstance(value, int | float) and not isinstance(value, bool):
        if spec.low is not None and value < spec.low:
            probs.add(key, f"{value} is below {spec.low}", f"use a value {'>' if spec.low_open else '>='} {spec.low}")
        elif spec.low_open and value == spec.low:
            probs.add(key, f"{value} must be above {spec.low}", f"use a value > {spec.low}")
        if spec.high is not None and value > spec.high:
            probs.add(key, f"{value} is above {spec.high}", f"use a value <= {spec.high}")
        elif spec.typo_above is not None and value > spec.typo_above and not probs.allow_large:
            probs.add(
                key,
                f"{value} is above {spec.typo_above:g}, which is almost surely a typo",
                "use a smaller value, or set allow_large = true under [study] if you mean it",
            )
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
    problem: Callable[[str], tuple[str, str] | None] | None = None,
) -> Choice | None:
    """An axis value is a name or an inline table {name = ..., param = ...}. An attack the catalog knows but may not
    run here (a torchattacks one without the extra, or one it refuses) gets its own reason."""
    if isinstance(item, str):
        name, inline = item, {}
    elif isinstance(item, dict) and isinstance(item.get("name"), str):
        name, inline = item["name"], {k: v for k, v in item.items() if k != "name"}
    else:
        probs.add(key, f"expected a name or {{name = ...}}, got {item!r}", "write a quoted name")
        return None
    entry = registry.get(name)
    why = problem(name) if problem is not None else None
    if why is not None and why[1]:
        probs.add_once(key, *why)
        return None
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
    probs: _Problems,
    key: str,
    values: Any,
    registry: dict[str, Entry],
    defaults: dict[str, Any],
    problem: Callable[[str], tuple[str, str] | None] | None = None,
) -> tuple[Choice, ...]:
    if not isinstance(values, list) or not values:
        probs.add(key, "expected a non-empty list", f'e.g. {key.rsplit(".", 1)[-1]} = ["{next(iter(registry))}"]')
        return ()
    out = [
        c for i, v in enumerate(values) if (c := _resolve_choice(probs, f"{key}[{i}]", v, registry, defaults, problem))
    ]
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
        return _axis(
            probs, f"{p}.strategies", block.get("strategies"), catalog.STRATEGIES, defaults, catalog.strategy_problem
        )
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
    out = (
        list(_axis(probs, f"{p}.strategies", listed, catalog.STRATEGIES, defaults, catalog.strategy_problem))
        if listed is not None
        else []
    )
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
        for k in sorted(params.get("kwargs") or {}):
            if k in LOADER_KWARGS:
                probs.add(
                    f"{key}[{name}].kwargs.{k}", "is timm's loader option, not a model argument", LOADER_KWARGS[k]
                )
        out.append(Choice(name, params))
    return tuple(out)


RB_ONLY_KEYS = ("dataset", "threat_model", "model_dir")


def robustbench_model(source: dict[str, Any], params: dict[str, Any]) -> dict[str, Any] | None:
    """A model's RobustBench identity (`dataset`, `threat_model`, `model_dir`) when its kind ([models.NAME], else
    [source]) is 'robustbench'; None for a timm model. The dataset defaults to the zoo's dataset of [source]."""
    if (params.get("kind") or source.get("kind") or "timm") != "robustbench":
        return None
    return {
        "dataset": params.get("dataset") or FROM_RTTUI_DATASET.get(str(source.get("dataset"))),
        "threat_model": params.get("threat_model") or source.get("threat_model") or "Linf",
        "model_dir": params.get("model_dir") or source.get("model_dir") or DEFAULT_MODEL_DIR,
    }


def _check_robustbench(
    probs: _Problems, p: str, source: dict[str, Any], models: tuple[Choice, ...], techniques: tuple[Choice, ...]
) -> None:
    """RobustBench models: a zoo dataset known, no timm-only keys, no source training (they are used as they are).
    Whether the name is in the installed zoo is `check_models`'s (it imports the zoo)."""
    for m in models:
        key = f"{p}.models[{m.name}]"
        rb = robustbench_model(source, m.params)
        if rb is None:
            for k in RB_ONLY_KEYS:
                if m.params.get(k) is not None:
                    probs.add(f"{key}.{k}", "is for RobustBench models only", 'set kind = "robustbench", or remove it')
            continue
        if rb["dataset"] is None:
            probs.add(
                f"{key}.dataset",
                f"RobustBench has no dataset for [source] dataset {source.get('dataset')!r}",
                'set dataset = "cifar10", "cifar100" or "imagenet" under [models.NAME]',
            )
        if rb["dataset"] == "imagenet" and rb["threat_model"] == "L2":
            probs.add(f"{key}.threat_model", "RobustBench has no ImageNet L2 models", 'use "Linf" or "corruptions"')
        for k, fix in (("checkpoint", "remove it (the weights come from model_dir)"), ("kwargs", "remove them")):
            if m.params.get(k):
                probs.add(f"{key}.{k}", "does not apply to a RobustBench model", fix)
        if any(t.name == "adv_pretraining" for t in techniques):
            probs.add(
                f"{p}.techniques",
                f"adv_pretraining trains the source, but RobustBench's {m.name!r} is used as it is",
                "remove adv_pretraining from this block (the RobustBench weights are the robust source)",
            )


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


def _validation(
    probs: _Problems,
    p: str,
    target: dict[str, Any],
    train: dict[str, Any],
    eval_cfg: dict[str, Any],
    attacks: tuple[Choice, ...],
    smoke: bool,
) -> dict[str, Any] | None:
    """Check `[target] val_size`, `[train] select` and `[train.probe]`; return the resolved probe (None: no
    per-epoch validation). The probe's eps and norm default to the grid's (its report eps, its PGD norm)."""
    val = target.get("val_size")
    probe_raw = train.get("probe")
    select = train.get("select", "last")
    if val is not None:
        if val == 0 or (isinstance(val, float) and val >= 1):
            probs.add(
                f"{p}.target.val_size",
                f"{val!r} is neither a count >= 1 nor a fraction in (0, 1)",
                "write e.g. val_size = 100 (images) or val_size = 0.1 (of the training split)",
            )
            val = None
        elif isinstance(val, int):
            n_cls = catalog.known_classes(target)
            if n_cls is not None and val < n_cls and not (smoke and not catalog.stratified(target["dataset"])):
                probs.add(
                    f"{p}.target.val_size",
                    f"{val} leaves a class without validation images ({n_cls} classes)",
                    f"set val_size >= {n_cls}",
                )
            cap = target.get("train_size")
            if isinstance(cap, int) and val >= cap:
                probs.add(
                    f"{p}.target.val_size",
                    f"{val} is not smaller than the training split (train_size = {cap})",
                    "use a smaller count or a fraction such as 0.1",
                )
    if val is None:
        if probe_raw is not None:
            probs.add(f"{p}.train.probe", "needs a validation split", "set val_size under [target] (e.g. 0.1)")
        if select != "last":
            probs.add(
                f"{p}.train.select",
                f"{select!r} needs a validation split",
                'set val_size under [target] (e.g. 0.1), or select = "last"',
            )
        return None
    probe = _resolve_section(probs, f"{p}.train.probe", catalog.PROBE_KEYS, probe_raw)
    if not probe["enabled"]:
        if select != "last":
            probs.add(
                f"{p}.train.select",
                f"{select!r} needs the per-epoch validation that train.probe.enabled = false turns off",
                'remove enabled = false, or select = "last"',
            )
        return {"enabled": False}
    grid = list(eval_cfg.get("epsilons") or [])
    pgd_norms = sorted({str(a.params.get("norm", "linf")) for a in attacks if a.name == "pgd"}) or ["linf"]
    norm = probe["norm"] or pgd_norms[0]
    if probe["norm"] is not None and probe["norm"] not in pgd_norms:
        probs.add(
            f"{p}.train.probe.norm",
            f"{probe['norm']!r} is not the grid's norm ({', '.join(pgd_norms)})",
            f'use norm = "{pgd_norms[0]}" (or leave it out)',
        )
    if probe["attack"] == "fgsm" and norm != "linf":
        probs.add(f"{p}.train.probe.norm", f"FGSM is L-inf only, not {norm!r}", 'use attack = "pgd" or norm = "linf"')
    if probe["eps"] is None:
        report = eval_cfg.get("report_eps")
        eps = (
            [float(report)] if report is not None else ([0.03] if 0.03 in grid or not grid else [grid[len(grid) // 2]])
        )
    else:
        eps = _epsilons(probs, f"{p}.train.probe.eps", probe["eps"])
        if any(e == 0 for e in eps):
            probs.add(f"{p}.train.probe.eps", "eps 0 is not an attack", "use epsilons in (0, 1]")
    steps = int(probe["steps"])
    rel = probe["rel_step_size"] if probe["rel_step_size"] is not None else 2.5 / steps
    out = {
        "attack": probe["attack"],
        "eps": eps,
        "norm": norm,
        "seed": int(probe["seed"]),
    }
    if probe["images"] is not None:  # else the engine's default (a share of the training images)
        out["images"] = int(probe["images"])
    if probe["attack"] == "pgd":
        out.update(steps=steps, rel_step_size=round(float(rel), 6))
    return out


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
    except RecursionError:  # tomllib recurses per nesting level: thousands of levels exhaust Python's stack
        raise StudyError(f"{where}: arrays or tables nested too deeply to read; flatten the file") from None
    for k in raw:
        if k not in TOP_KEYS:
            probs.add(k, "unknown section", _suggest(k, TOP_KEYS))
    head = raw.get("study")
    if not isinstance(head, dict):
        probs.add("study", "missing [study] table", 'add [study] with name = "..." and seeds = [0, 1, 2]')
        probs.raise_if_any()
        head = {}
    allow_large = head.get("allow_large", False)
    if not isinstance(allow_large, bool):
        probs.add("study.allow_large", f"expected true or false, got {allow_large!r}", "write allow_large = true")
    probs.allow_large = allow_large is True
    # `rttui run --smoke` writes `smoke = true` on the study it derives: its splits may hold fewer images than
    # classes (a few batches of a 100-class task), which a real study refuses below.
    smoke = head.get("smoke", False)
    if not isinstance(smoke, bool):
        probs.add("study.smoke", f"expected true or false, got {smoke!r}", "remove it (rttui run --smoke sets it)")
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
        or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= catalog.MAX_SEED for s in seeds)
    ):
        probs.add(
            "study.seeds",
            f"expected a list of integers in 0..{catalog.MAX_SEED}, got {seeds!r}",
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
    attack_entries = catalog.attacks()
    for aname in tables["attacks"]:
        why = catalog.attack_problem(aname)
        if why is not None and why[1]:
            probs.add_once(f"attacks.{aname}", *why)
        elif aname not in attack_entries:
            probs.add(f"attacks.{aname}", "unknown attack", _suggest(aname, attack_entries))
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
            n_cls = cls if isinstance(cls, int) else len(cls) if isinstance(cls, list) else None
            for size_key in ("train_size", "test_size"):
                size = sec[size_key]
                small = isinstance(size, int) and not isinstance(size, bool) and 1 <= size < (n_cls or 0)
                if small and not (smoke is True and not catalog.stratified(sec["dataset"])):
                    probs.add(
                        f"{p}.{sec_name}.{size_key}",
                        f"{size} is smaller than the {n_cls} classes (a stratified split needs one image of each)",
                        f"set {size_key} >= {n_cls}",
                    )
        models = _models(probs, f"{p}.models", b.get("models"), tables["models"])
        strategies = _strategies(probs, p, b, tables["strategies"])
        techniques = _axis(
            probs, f"{p}.techniques", b.get("techniques", ["none"]), catalog.TECHNIQUES, tables["techniques"]
        )
        _check_robustbench(probs, p, source, models, techniques)
        attack_names = b.get("attacks", list(tables["attacks"]) or ["fgsm", "pgd"])
        attacks = _axis(probs, f"{p}.attacks", attack_names, attack_entries, tables["attacks"], catalog.attack_problem)
        check_transfer_attacks(probs, f"{p}.attacks", attacks, seeds if isinstance(seeds, list) else [])
        train["probe"] = _validation(probs, p, target, train, eval_cfg, attacks, smoke is True)
        _check_autoattack_classes(probs, p, attacks, target)
        headline = eval_cfg.get("headline")
        names = [a.name for a in attacks]
        if isinstance(headline, str) and headline != "worst_case" and headline not in names:
            probs.add(
                f"{p}.eval.headline",
                f"{headline!r} is not an attack of this study",
                f"write one of {', '.join([*names, 'worst_case'])}",
            )
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
    run = _run_table(probs, raw.get("run"))
    track = _track_table(probs, raw.get("track"))
    probs.raise_if_any()
    return Study(str(name), str(head.get("description", "")), tuple(seeds), tuple(blocks), path, raw, run, track)


def _track_table(probs: _Problems, table: Any) -> dict[str, Any]:
    """`[track]`: the tracker and its settings; {} when the study has none. A setting of the other tracker, and a
    tracker whose package is missing, are refused here, before anything runs."""
    if table is None:
        return {}
    if not isinstance(table, dict):
        probs.add("track", f"expected a table, got {table!r}", 'write it as [track] with to = "mlflow" or "wandb"')
        return {}
    out = _resolve_section(probs, "track", catalog.TRACK_KEYS, table)
    to = out["to"]
    if table.get("to") is None:
        probs.add("track.to", "missing: [track] needs the tracker", 'add to = "mlflow" or to = "wandb"')
        return {}
    if to not in catalog.TRACKER_SETTINGS:
        return {}  # _resolve_section reported the unknown tracker
    other = next(t for t in catalog.TRACKER_SETTINGS if t != to)
    for key in catalog.TRACKER_SETTINGS[other]:
        if out.get(key) is not None:
            probs.add(f"track.{key}", f"is a {other} setting, and to = {to!r}", f"drop {key} (or set to = {other!r})")
    problem = catalog.tracker_problem(to)
    if problem:
        probs.add("track.to", problem[0], problem[1])
    return out


def _run_table(probs: _Problems, table: Any) -> dict[str, Any]:
    """`[run]`: the default executor, and `[run.slurm]` job options (defaults filled, every value checked)."""
    if table is None:
        table = {}
    if not isinstance(table, dict):
        probs.add("run", f"expected a table, got {table!r}", "write it as [run] with key = value lines")
        table = {}
    out = _resolve_section(probs, "run", {**catalog.RUN_KEYS, "slurm": Param({}, (dict,), "")}, table)
    out["slurm"] = _slurm_section(probs, "run.slurm", table.get("slurm"))
    return out


def _slurm_section(probs: _Problems, prefix: str, *layers: dict[str, Any] | None) -> dict[str, Any]:
    out = _resolve_section(probs, prefix, catalog.SLURM_KEYS, *layers)
    t = out["time"]
    bad_text = isinstance(t, str) and parse_minutes(t) is None
    if bad_text or (isinstance(t, int) and not isinstance(t, bool) and t < 1):
        probs.add(f"{prefix}.time", f"{t!r} is not a time limit", "give minutes (120) or 'HH:MM:SS' or 'D-HH:MM:SS'")
        out["time"] = catalog.SLURM_KEYS["time"].default
    for k, v in out["sbatch"].items():
        if isinstance(v, dict | list) or v is None:
            probs.add(
                f"{prefix}.sbatch.{k}", f"expected a string or number, got {v!r}", f'e.g. sbatch = {{ {k} = "..." }}'
            )
    if not all(isinstance(line, str) for line in out["setup"]):
        probs.add(f"{prefix}.setup", "expected a list of shell lines", 'e.g. setup = ["module load cuda"]')
    return out


def parse_minutes(text: str) -> int | None:
    """An sbatch time limit as whole minutes (rounded up): 'MM', 'HH:MM:SS', 'D-HH', 'D-HH:MM', 'D-HH:MM:SS';
    None when it is none of those."""
    days, _, rest = text.strip().rpartition("-")
    try:
        d = int(days) if days else 0
        parts = [int(p) for p in rest.split(":")]
    except ValueError:
        return None
    if d < 0 or any(p < 0 for p in parts) or not 1 <= len(parts) <= 3:
        return None
    if days:  # D-HH, D-HH:MM, D-HH:MM:SS
        h, m, sec = [*parts, 0, 0][:3]
    elif len(parts) == 1:  # MM
        h, m, sec = 0, parts[0], 0
    else:  # MM:SS or HH:MM:SS
        h, m, sec = [0, *parts][-3:]
    minutes = d * 1440 + h * 60 + m + (1 if sec else 0)
    return minutes if minutes >= 1 else None


def slurm_options(study: Study, overrides: list[str] | None = None) -> dict[str, Any]:
    """The study's `[run.slurm]` options with `--slurm KEY=VALUE` overrides on top (`sbatch.NAME=VALUE` for an
    extra sbatch option), checked like the study: a wrong key or type is one line naming the fix."""
    probs = _Problems("--slurm")
    layer: dict[str, Any] = {}
    for item in overrides or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            probs.add(item, "expected KEY=VALUE", "e.g. --slurm partition=gpu --slurm time=120")
            continue
        value = _literal(text.strip())
        if key.startswith("sbatch."):
            layer.setdefault("sbatch", {})[key[len("sbatch.") :]] = value
        else:
            layer[key] = value
    base = dict(study.run.get("slurm") or {})
    if "sbatch" in layer:
        layer["sbatch"] = {**base.get("sbatch", {}), **layer["sbatch"]}
    out = _slurm_section(probs, "slurm", base, layer)
    probs.raise_if_any()
    return out


def _literal(text: str) -> Any:
    """A command-line value read as a TOML value (120, 1.5, true, [...]), else as the plain string."""
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
    return value if isinstance(value, str | int | float | bool | list | dict) else text


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
            rb = robustbench_model(b.source, m.params)
            if rb is not None:
                _check_zoo_name(probs, f"grid[{b.index}].models[{i}]", m.name, rb)
                continue
            base = m.name.split(".", 1)[0]
            if base not in names:
                probs.add(f"grid[{b.index}].models[{i}]", f"unknown timm model {m.name!r}", _suggest(base, names))
    probs.raise_if_any()
    _check_model_shapes(study, probs)
    probs.raise_if_any()


def _check_zoo_name(probs: _Problems, key: str, name: str, rb: dict[str, Any]) -> None:
    """A RobustBench model's name must be in the installed zoo (imports robustbench's model zoo)."""
    from rttui.engine import robustbench
    from rttui.errors import CheckpointError

    try:
        robustbench.build_check(name, rb["dataset"], rb["threat_model"])
    except CheckpointError as exc:
        problem, _, fix = str(exc).partition("; ")
        probs.add(key, problem, fix or "choose another model")


def _check_model_shapes(study: Study, probs: _Problems) -> None:
    """Build each model on the meta device (no memory, no weights): kwargs it does not take are refused, and so
    is a freeze depth (freeze, keep_frozen, freeze_depths) deeper than the model's depth groups."""
    from rttui.engine.models import model_skeleton
    from rttui.engine.strategies import depth_groups, resolve_freeze
    from rttui.errors import CheckpointError

    groups: dict[str, int | None] = {}
    for b in study.blocks:
        size = b.target["image_size"]
        for i, m in enumerate(b.models):
            rb = robustbench_model(b.source, m.params)
            key = repr((m.name, sorted((m.params.get("kwargs") or {}).items(), key=str), size, rb))
            if key not in groups:
                try:
                    cfg = {"name": m.name, "kwargs": m.params.get("kwargs") or {}}
                    if rb is not None:
                        cfg["robustbench"] = {"dataset": rb["dataset"], "threat_model": rb["threat_model"]}
                    net = model_skeleton(cfg, size)
                except CheckpointError as exc:
                    probs.add(f"grid[{b.index}].models[{i}]", str(exc).split("; ")[0], f"fix [models.{m.name}] kwargs")
                    groups[key] = None
                    continue
                groups[key] = len(depth_groups(net)) if net is not None else None
            n = groups[key]
            if n is None:
                continue
            for j, st in enumerate(b.strategies):
                for pk in ("freeze", "keep_frozen"):
                    depth = st.params.get(pk)
                    if depth is None or depth == "auto":
                        continue
                    try:
                        resolve_freeze(depth, n, pk)
                    except RttuiError:
                        probs.add(
                            f"grid[{b.index}].strategies[{j}][{st.name}].{pk}",
                            f"{depth!r} groups, but model {m.name!r} has {n} depth groups",
                            f"use 0..{n}, a fraction in (0, 1), 'half' or 'all'",
                        )
