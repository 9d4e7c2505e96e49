"""Record selection: the one place that decides which stored numbers a table, test, figure or screen shows.

Works on the flat records `Store.records()` returns (one per run, attack, eps). It owns:
- the axes a configuration is made of (`CONFIG_AXES`) and the axes a result can be pivoted or filtered on;
- normalising records: one per (evaluation, eps) (`dedupe`), strategies and techniques that appear with
  several parameter sets labelled with them (`variant_labels`, e.g. ``layer_freezing[freeze=2]``), so different
  variants are never pooled;
- filtering (`--where`), choosing one attack and epsilon (`select`), and one record per seed (`one_per_seed`:
  the first by run id, as every aggregate counts it);
- the defaults a single-attack or single-epsilon view uses when none is asked for (`default_attack`,
  `default_eps`), and the short labels that say what a number is (`attack_label`, `params_label`, `fmt_axis`).

Pure functions over plain dicts: no SQL, no I/O, no UI, no other analysis module.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from rttui.errors import RttuiError

# The axes a configuration is made of; with attack and eps, the axes a result can be pivoted on.
CONFIG_AXES = ("dataset", "model", "strategy", "technique")
AXES = (*CONFIG_AXES, "attack", "eps")
EPS_TOL = 1e-9
# The attack and epsilon a single-attack or single-epsilon view shows unless told otherwise (the paper's).
PREFERRED_ATTACK = "pgd"
PREFERRED_EPS = 0.03


class AnalysisError(RttuiError):
    """A compare/test/plot request that names an axis, value or epsilon the data does not have."""


# ---- normalising records ---------------------------------------------------------------------------
def params_str(p: Any) -> str:
    """Parameters as one sorted `k=v,k=v` string ("" for none)."""
    if not p:
        return ""
    return ",".join(f"{k}={v}" for k, v in sorted(p.items()))


def variant_labels(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies of the records where a strategy or technique that appears with several parameter sets is
    labelled with its parameters (``layer_freezing[freeze=2]``), so different variants are never pooled.
    The plain name stays in ``strategy_name`` / ``technique_name``."""
    out = [dict(r) for r in records]
    _attack_variants(out)
    for axis in ("strategy", "technique"):
        pkey = f"{axis}_params"
        seen: dict[str, set[str]] = defaultdict(set)
        for r in out:
            seen[r[axis]].add(params_str(r.get(pkey)))
        for r in out:
            r.setdefault(f"{axis}_name", r[axis])
            if len(seen[r[axis]]) > 1:
                ps = params_str(r.get(pkey))
                r[axis] = f"{r[axis]}[{ps}]" if ps else r[axis]
    # Runs that differ only in the epoch they kept ([train] select, issue #31) are different configurations too.
    if len({r.get("select") or "last" for r in out}) > 1:
        for r in out:
            sel = r.get("select") or "last"
            if sel != "last":
                t = str(r["technique"])
                r["technique"] = f"{t[:-1]},select={sel}]" if t.endswith("]") else f"{t}[select={sel}]"
    return out


def _attack_variants(out: list[dict[str, Any]]) -> None:
    """In place: an attack evaluated with several parameter sets is labelled with the parameters that differ
    (``pgd[steps=1]`` beside ``pgd[steps=10]``), so two evaluations of different strength never share a cell."""
    sets: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in out:
        if "attack" not in r:  # records of another kind (per-epoch validation): no attack to label
            continue
        p = r.get("attack_params") or {}
        sets[r["attack"]][params_str(p)] = p
    for attack, by_str in sets.items():
        if len(by_str) < 2:
            continue
        keys = sorted({k for p in by_str.values() for k in p})
        differ = [k for k in keys if len({repr(p.get(k)) for p in by_str.values()}) > 1]
        for r in out:
            if r.get("attack") == attack:
                p = r.get("attack_params") or {}
                r.setdefault("attack_name", attack)
                r["attack"] = f"{attack}[{','.join(f'{k}={p.get(k)}' for k in differ)}]"


def dedupe(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per (evaluation, eps): an evaluation two studies planned is counted once; two evaluations of one
    run that differ in any parameter are two records (their attack labels tell them apart)."""
    seen: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in records:
        seen.setdefault((r.get("eval_id") or (r["run_id"], r["attack"]), round(float(r["eps"]), 12)), r)
    return list(seen.values())


def normalize(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """De-duplicated records with variant labels: what every view starts from."""
    return variant_labels(dedupe(records))


def one_per_seed(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per seed, in seed order: the first by run id where several runs share a seed."""
    by_seed: dict[Any, dict[str, Any]] = {}
    for r in sorted(records, key=lambda r: (r["seed"], r["run_id"])):
        by_seed.setdefault(r["seed"], r)
    return list(by_seed.values())


def group(records: Iterable[dict[str, Any]], keys: Sequence[str]) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    """Records grouped by their values on `keys`, in order of first appearance."""
    out: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        out[tuple(r[k] for k in keys)].append(r)
    return dict(out)


# ---- filtering -----------------------------------------------------------------------------------------
def parse_where(where: Sequence[str] | dict[str, Any] | None) -> dict[str, list[str]]:
    """`["model=resnet50", "strategy=full,layer_freezing"]` -> {axis: allowed values}; repeats OR together."""
    if not where:
        return {}
    if isinstance(where, dict):
        return {k: [str(v) for v in (vs if isinstance(vs, list | tuple | set) else [vs])] for k, vs in where.items()}
    out: dict[str, list[str]] = defaultdict(list)
    for item in where:
        if "=" not in item:
            raise AnalysisError(f"--where {item!r} is not AXIS=VALUE; write for example --where model=resnet50")
        k, v = item.split("=", 1)
        k = k.strip()
        if k not in (*AXES, "seed", "study"):
            raise AnalysisError(f"--where {item!r}: unknown axis {k!r}; use one of {', '.join((*AXES, 'seed'))}")
        out[k] += [x.strip() for x in v.split(",") if x.strip()]
    return dict(out)


def matches(value: Any, allowed: list[str]) -> bool:
    """Whether a record's value is one of `allowed` (numbers within EPS_TOL; a variant matches its plain name)."""
    if isinstance(value, float | int) and not isinstance(value, bool):
        try:
            return any(abs(float(value) - float(a)) < EPS_TOL for a in allowed)
        except ValueError:
            return False
    name = str(value)
    return name in allowed or name.split("[", 1)[0] in allowed


def apply_where(records: Iterable[dict[str, Any]], where: dict[str, list[str]]) -> list[dict[str, Any]]:
    return [r for r in records if all(matches(r.get(k), vs) for k, vs in where.items())]


def select(
    records: list[dict[str, Any]],
    attack: str | None = None,
    eps: float | None = None,
    where: Sequence[str] | dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Normalised, de-duplicated records of one attack (None: all) and epsilon (None: all), filtered."""
    recs = normalize(records)
    if not recs:
        raise AnalysisError("no results stored yet; run the study first (rttui run STUDY --db DB)")
    recs = apply_where(recs, parse_where(where))
    if not recs:
        raise AnalysisError(f"--where {where} matches no results; check the values with `rttui export`")
    if attack is not None:
        attack = resolve_attack(attack, {r["attack"] for r in recs})
        recs = [r for r in recs if r["attack"] == attack]
    if eps is not None:
        grid = sorted({float(r["eps"]) for r in recs})
        recs = [r for r in recs if abs(float(r["eps"]) - float(eps)) < EPS_TOL]
        if not recs:
            raise AnalysisError(
                f"epsilon {eps:g} was not evaluated here; use --eps with one of {', '.join(f'{e:g}' for e in grid)}"
            )
    return recs


def filter_records(
    records: list[dict[str, Any]],
    attack: str | None = None,
    eps: float | None = None,
    where: Sequence[str] | dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The stored records (unlabelled, as exported) that an attack (its name or variant label), an epsilon and
    `--where` filters keep; AnalysisError where one matches nothing, naming what there is."""
    keep = select(records, attack, eps, where)
    wanted = {(r.get("eval_id"), round(float(r["eps"]), 12)) for r in keep}
    return [r for r in records if (r.get("eval_id"), round(float(r["eps"]), 12)) in wanted]


def resolve_attack(attack: str, labels: Iterable[str]) -> str:
    """The stored attack label `attack` means: itself, or the one variant of that name (`transfer` ->
    `transfer[source]` when it is the only transfer attack); AnalysisError naming the choices otherwise."""
    have = sorted(set(labels))
    if attack in have:
        return attack
    variants = [a for a in have if a.split("[", 1)[0] == attack]
    if len(variants) == 1:
        return variants[0]
    if variants:
        raise AnalysisError(
            f"attack {attack!r} has {len(variants)} variants here ({', '.join(variants)}); "
            f"pick one with --attack '{variants[0]}'"
        )
    raise AnalysisError(f"attack {attack!r} has no results here; use --attack with one of {', '.join(have)}")


def at_eps(records: Iterable[dict[str, Any]], eps: float) -> list[dict[str, Any]]:
    """The records evaluated at `eps` (within EPS_TOL)."""
    return [r for r in records if abs(float(r["eps"]) - float(eps)) < EPS_TOL]


# ---- defaults ------------------------------------------------------------------------------------------
def default_attack(attacks: Iterable[str] | Iterable[dict[str, Any]]) -> str | None:
    """The attack a single-attack view shows when none is asked for: PGD if evaluated, else the first by
    name; None when there is none. Takes attack names or records."""
    names = {a if isinstance(a, str) else a["attack"] for a in attacks}
    if not names:
        return None
    return PREFERRED_ATTACK if PREFERRED_ATTACK in names else sorted(names)[0]


def default_eps(grid: Iterable[float] | Iterable[dict[str, Any]], preferred: float | None = None) -> float:
    """The epsilon a single-epsilon view shows when none is asked for: `preferred` (a study's `report_eps`) if
    evaluated, else 0.03 (the paper's) if evaluated, else the middle of the grid. Takes epsilons or records.

    The middle is taken over the positive epsilons (eps = 0 is the clean accuracy, not a robustness figure;
    it is chosen only when nothing else was evaluated), the smaller of the two middles of an even count.
    """
    values = sorted({float(e) if isinstance(e, int | float) else float(e["eps"]) for e in grid})
    if not values:
        raise AnalysisError("no results stored yet; run the study first")
    for want in (preferred, PREFERRED_EPS):
        if want is None:
            continue
        for e in values:
            if abs(e - want) < EPS_TOL:
                return e
    positive = [e for e in values if e > 0] or values
    return positive[(len(positive) - 1) // 2]


# ---- labels ----------------------------------------------------------------------------------------------
def fmt_axis(axis: str, v: Any) -> str:
    """An axis value as a table shows it (epsilons as `ε=0.03`)."""
    if axis == "eps" and isinstance(v, float | int):
        return f"ε={v:g}"
    return str(v)


def config_label(r: dict[str, Any], axes: Sequence[str] = CONFIG_AXES) -> str:
    """`dataset/model/strategy/technique` of a record (or of the given axes)."""
    return "/".join(str(r[a]) for a in axes)


def _leaves(d: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config as {dotted key: value}."""
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_leaves(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def run_labels(runs: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Run id -> `dataset/model/strategy/technique seed N`, with what differs (``image_size=16``) where two runs
    would print the same label: a label always tells one run from another."""
    runs = list(runs)
    base = {r["id"]: f"{config_label(r)} seed {r['seed']}" for r in runs}
    same: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        same[base[r["id"]]].append(r)
    out = dict(base)
    for label, group_ in same.items():
        if len(group_) < 2:
            continue
        leaves = {r["id"]: _leaves(r.get("config") or {}) for r in group_}
        keys = sorted({k for lv in leaves.values() for k in lv})
        differ = [k for k in keys if len({repr(lv.get(k)) for lv in leaves.values()}) > 1]
        shown = [k for k in differ if k != "source_id"] or differ
        for r in group_:
            lv = leaves[r["id"]]
            parts = [f"{k.rsplit('.', 1)[-1]}={lv.get(k)}" for k in shown[:3]] + (["..."] if len(shown) > 3 else [])
            out[r["id"]] = f"{label} [{', '.join(parts) or 'run ' + r['id']}]"
    return out


def params_label(r: dict[str, Any]) -> str:
    """The attack and the parameters a number came from, in one short string (e.g. for a table title)."""
    p = r.get("attack_params") or {}
    parts = [f"{k}={v}" for k, v in sorted(p.items()) if v is not None]
    return f"{r['attack']} " + " ".join(parts) + f" mode={r['mode']}"


AUDIT_MARK = "†"  # a cell whose evaluation the attack-strength audit flagged
AUDIT_CHECK = "attack_strength"  # the sanity check the audit stores per evaluation


def audit_warning(r: dict[str, Any]) -> str | None:
    """What the stronger attack found where a record's audit is flagged (None otherwise)."""
    a = r.get("audit")
    if not a or not a.get("flagged"):
        return None
    return f"audit at ε={float(r['eps']):g}: " + audit_finding(r.get("attack_name", r["attack"]), a)


def audit_finding(attack: str, a: dict[str, Any]) -> str:
    """`a stronger attack (reference APGD-CE, 20 iterations) fooled 11 of 50 images that survived pgd (flagged
    above 3)`: one audit row (a store row or an engine per-eps dict with its `stronger` parameters)."""
    strong = a.get("stronger") or {}
    names = []
    if strong.get("apgd"):
        names.append(f"reference APGD-CE, {strong['apgd']['n_iter']} iterations")
    if strong.get("pgd"):
        p = strong["pgd"]
        names.append(f"PGD {p['steps']} steps x {p['restarts']} restarts")
    # Survivors the stronger attack gave a verdict (an audit from before `reattacked` existed: its subsample).
    done = int(a["reattacked"] if a.get("reattacked") is not None else a["n"])
    fooled = done - int(a["survived_stronger"])
    survivors = int(a.get("survivors") or done)
    if done >= survivors:
        of = f"{fooled} of the {done} images that survived {attack} (every survivor re-attacked)"
    else:
        of = (
            f"{fooled} of {done} re-attacked of the {survivors} images that survived {attack} "
            f"(about {survivors * fooled / done if done else 0:.0f} overstated)"
        )
    return f"a stronger attack ({' then '.join(names) or 'stronger'}) fooled {of}; flagged above {a['threshold']}"


def attack_label(r: dict[str, Any], step_sizes: list[float] | None = None) -> str:
    """`pgd steps=10 step_size=0.0075 restarts=1 random_start=True norm=linf mode=sweep implementation=rttui`:
    the whole threat model (AutoAttack: its version and the reference's budgets)."""
    parts = [r["attack"]]
    p = r.get("attack_params") or {}
    if r.get("attack_name", r["attack"]) == "worst-case":
        covers = ", ".join(p.get("covers") or [])
        return (
            f"{r['attack']} (per test image, over {covers or 'no attack'} and each one's audit; "
            f"norm={r.get('norm') or 'linf'})"
        )
    if r["attack"] == "autoattack":
        parts.append(f"version={p.get('version', 'standard')}")
        for key, name in (("n_iter", "n_iter"), ("n_target_classes", "targets"), ("square_n_queries", "queries")):
            if p.get(key) is not None:
                parts.append(f"{name}={p[key]}")
        parts.append(f"norm={r.get('norm') or 'linf'}")
        parts.append(f"mode={r.get('mode')}")
        parts.append(f"implementation={p.get('implementation', 'not recorded')}")
        return " ".join(parts)
    if r["attack"] != "fgsm":
        parts.append(f"steps={r.get('steps')}")
        if step_sizes:
            parts.append("step_size=" + "/".join(f"{s:.3g}" for s in step_sizes))
        p = r.get("attack_params") or {}
        if "rel_step_size" in p and not step_sizes:
            parts.append(f"step_size={p['rel_step_size']:g}·ε")
        parts.append(f"restarts={r.get('restarts')}")
        parts.append(f"random_start={bool(r.get('random_start'))}")
    parts.append(f"norm={r.get('norm') or 'linf'}")
    parts.append(f"mode={r.get('mode')}")
    parts.append(f"implementation={implementation(r)}")
    return " ".join(parts)


def implementation(r: dict[str, Any]) -> str:
    """Whose code computed a record: rttui's own attacks, or the torchattacks release a `ta:` row names in its
    path (`torchattacks-3.5.1`), so a caption never credits rttui with another library's numbers."""
    if str(r.get("attack_name", r["attack"])).startswith("ta:"):
        found = [s for s in str(r.get("path") or "").split("+") if s.startswith("torchattacks-")]
        return found[0].replace("-", " ", 1) if found else "torchattacks (version not recorded)"
    return "rttui"
