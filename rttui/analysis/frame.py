"""Stored results as pandas DataFrames for notebooks: flat records in, one typed DataFrame out.

pandas is an optional extra (`rttui[pandas]`): it is imported when a frame is built, and its absence is one line
naming the extra. Each kind has a fixed set of typed columns (axes as strings, counts as integers, accuracies and
epsilons as floats, flags as booleans), and the parameters that produced a row become columns of their own
(`attack_params.steps`, `strategy_params.freeze`, `technique_params.eps`), so a notebook filters and groups on
them like on any other column. Traps it closes: accuracies are fractions in [0, 1] (the CLI shows percent); a
parameter is one column with one dtype (a parameter the record already has a column for, such as `steps`, is not
repeated as `attack_params.steps`; an integer parameter missing from some rows is nullable Int64, not float with
NaN; a flag is boolean, not object); the attack-strength audit is columns of its own (`audit_*`); and per-sample
outcomes come tidy (`outcomes`: one row per test image and eps, `fooled` a boolean) beside the compact
`samples` form (a bitmask over the grid). Never import torch, the store or a face here: rows come from the caller.
"""

from __future__ import annotations

from typing import Any

from rttui.errors import RttuiError

KINDS = ("records", "samples", "outcomes", "epochs")
PARAM_COLUMNS = ("attack_params", "strategy_params", "technique_params")

# What identifies one evaluated test image: its run's axes, the evaluation and the image (samples, outcomes).
SAMPLE_KEYS: dict[str, str] = {
    "study": "str",
    "run_id": "str",
    "dataset": "str",
    "model": "str",
    "strategy": "str",
    "technique": "str",
    "seed": "int",
    "attack": "str",
    "mode": "str",
    "eval_id": "str",
    "idx": "int",
    "label": "int",
}

# Column -> type: "str", "int" (int64, or nullable Int64 where a value is missing), "float", "bool".
COLUMNS: dict[str, dict[str, str]] = {
    "records": {
        "study": "str",
        "run_id": "str",
        "source": "str",
        "dataset": "str",
        "model": "str",
        "strategy": "str",
        "technique": "str",
        "seed": "int",
        "attack": "str",
        "norm": "str",
        "eps": "float",
        "steps": "int",
        "step_size": "float",
        "restarts": "int",
        "random_start": "bool",
        "clean_acc": "float",
        "adv_acc": "float",
        "n": "int",
        "n_clean_correct": "int",
        "n_adv_correct": "int",
        "mode": "str",
        "precision": "str",
        "path": "str",
        "max_perturbation": "float",
        "eval_id": "str",
        "attack_success_rate": "float",  # of the clean-correct images, the share the attack fooled
        "selected_epoch": "int",  # the training epoch whose weights were attacked ([train] select)
        "peak_gpu_mem": "int",  # bytes the run peaked at on a GPU (training and evaluation); missing on a CPU
        # The attack-strength audit of this (evaluation, eps); missing where it was not audited (worst-case rows,
        # transfer, AutoAttack, the audit turned off). survivors: robust under the stored attack; reattacked: how
        # many of them the stronger attack tried; survived_stronger: of those, how many it did not fool;
        # est_adv_correct (est_lo, est_hi): its robust count over all survivors with a 95% interval.
        "audit_flagged": "bool",
        "audit_escalated": "bool",
        "audit_survivors": "int",
        "audit_reattacked": "int",
        "audit_survived_stronger": "int",
        "audit_tolerance": "float",
        "audit_est_adv_correct": "float",
        "audit_est_lo": "float",
        "audit_est_hi": "float",
        "exact": "bool",  # worst-case rows: every survivor re-attacked where an audit ran (else an estimate)
    },
    "samples": {
        **SAMPLE_KEYS,
        "clean_pred": "int",
        "clean_correct": "bool",
        "fooled_mask": "int",
        "first_fooled_eps": "float",
        "min_norm": "float",
    },
    "outcomes": {
        **SAMPLE_KEYS,
        "eps": "float",
        "clean_correct": "bool",
        "fooled": "bool",  # clean-correct and fooled at this eps (an image misclassified clean is never "fooled")
        "robust": "bool",  # clean-correct and not fooled: what adversarial accuracy counts
    },
    "epochs": {
        "study": "str",
        "kind": "str",
        "unit_id": "str",
        "source_id": "str",
        "dataset": "str",
        "model": "str",
        "strategy": "str",
        "technique": "str",
        "seed": "int",
        "epoch": "int",
        "loss": "float",
        "train_acc": "float",
        "seconds": "float",
    },
}


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise RttuiError(f"frame kind {kind!r} is not known; use one of {', '.join(KINDS)}")


def require_pandas() -> Any:
    """pandas, or one line saying which extra brings it."""
    try:
        import pandas as pd
    except ImportError:
        raise RttuiError("rttui.api.frame needs pandas, which is not installed; pip install 'rttui[pandas]'") from None
    return pd


def to_frame(rows: list[dict[str, Any]], kind: str) -> Any:
    """A DataFrame of `rows` (flat records of one kind) with typed columns and the parameters as columns."""
    check_kind(kind)
    pd = require_pandas()
    if kind == "outcomes":
        rows = tidy_outcomes(rows)
    elif kind == "records":
        rows = [{**r, **_audit_columns(r.get("audit"))} for r in rows]
    schema = COLUMNS[kind]
    flat = []
    for r in rows:
        row = {k: r.get(k) for k in schema}
        for col in PARAM_COLUMNS:
            for key, value in (r.get(col) or {}).items():
                if key not in schema:  # one column per parameter: `steps`, `norm`, ... already have theirs
                    row[f"{col}.{key}"] = _scalar(value)
        if kind == "samples":
            row["epsilons"] = list(r.get("epsilons") or [])
        flat.append(row)
    # Built as objects, then typed column by column: pandas would otherwise turn an int column with a gap into
    # float64 before `_param_typed` could see its ints.
    df = pd.DataFrame(flat, columns=_columns(schema, flat), dtype=object)
    for col, typ in schema.items():
        df[col] = _typed(pd, df[col], typ)
    params = [c for c in df.columns if c not in schema and c != "epsilons"]
    for col in params:
        df[col] = _param_typed(pd, df[col])
    return df


def tidy_outcomes(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-sample records (`fooled_mask` bit i = fooled at `epsilons[i]`) as one row per (image, eps)."""
    out = []
    for s in samples:
        mask, cc = int(s.get("fooled_mask") or 0), bool(s.get("clean_correct"))
        base = {k: v for k, v in s.items() if k not in ("fooled_mask", "epsilons", "first_fooled_eps", "min_norm")}
        for i, eps in enumerate(s.get("epsilons") or []):
            fooled = cc and bool((mask >> i) & 1)
            out.append({**base, "eps": float(eps), "clean_correct": cc, "fooled": fooled, "robust": cc and not fooled})
    return out


AUDIT_FIELDS = (
    "flagged",
    "escalated",
    "survivors",
    "reattacked",
    "survived_stronger",
    "tolerance",
    "est_adv_correct",
    "est_lo",
    "est_hi",
)


def _audit_columns(audit: dict[str, Any] | None) -> dict[str, Any]:
    """A record's audit row (or None) as `audit_*` columns."""
    return {f"audit_{k}": (audit or {}).get(k) for k in AUDIT_FIELDS}


def _param_typed(pd: Any, s: Any) -> Any:
    """A parameter column with one dtype whatever rows lack it: boolean, nullable Int64, float64 or string."""
    values = [v for v in s if v is not None and not (isinstance(v, float) and v != v)]
    if not values:
        return s.astype("float64") if len(s) else s
    if all(isinstance(v, bool) for v in values):
        return s.astype("boolean")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return s.astype("Int64")
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return pd.to_numeric(s, errors="coerce").astype("float64")
    return s.map(lambda v: None if v is None or (isinstance(v, float) and v != v) else str(v)).astype("string")


def _columns(schema: dict[str, str], flat: list[dict[str, Any]]) -> list[str]:
    """The schema's columns first, then every parameter column in first-seen order."""
    extra: dict[str, None] = {}
    for row in flat:
        for k in row:
            if k not in schema:
                extra.setdefault(k, None)
    return [*schema, *extra]


def _scalar(value: Any) -> Any:
    """A parameter value a column can hold: lists and tables become their text (e.g. a class list)."""
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def _typed(pd: Any, s: Any, typ: str) -> Any:
    if typ == "str":
        return s.astype("string")
    if typ == "float":
        return pd.to_numeric(s, errors="coerce").astype("float64")
    if typ == "bool":
        return s.astype("boolean") if s.isna().any() else s.astype(bool)
    return s.astype("Int64") if s.isna().any() else s.astype("int64")
