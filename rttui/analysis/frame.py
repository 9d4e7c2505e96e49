"""Stored results as pandas DataFrames for notebooks: flat records in, one typed DataFrame out.

pandas is an optional extra (`rttui[pandas]`): it is imported when a frame is built, and its absence is one line
naming the extra. Each kind has a fixed set of typed columns (axes as strings, counts as integers, accuracies and
epsilons as floats, flags as booleans), and the parameters that produced a row become columns of their own
(`attack_params.steps`, `strategy_params.freeze`, `technique_params.eps`), so a notebook filters and groups on
them like on any other column. Never import torch, the store or a face here: rows come from the caller.
"""

from __future__ import annotations

from typing import Any

from rttui.errors import RttuiError

KINDS = ("records", "samples", "epochs")
PARAM_COLUMNS = ("attack_params", "strategy_params", "technique_params")

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
        "peak_gpu_mem": "int",  # bytes the run peaked at on a GPU (training and evaluation); missing on a CPU
    },
    "samples": {
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
        "clean_pred": "int",
        "clean_correct": "bool",
        "fooled_mask": "int",
        "first_fooled_eps": "float",
        "min_norm": "float",
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
    schema = COLUMNS[kind]
    flat = []
    for r in rows:
        row = {k: r.get(k) for k in schema}
        for col in PARAM_COLUMNS:
            for key, value in (r.get(col) or {}).items():
                row[f"{col}.{key}"] = _scalar(value)
        if kind == "samples":
            row["epsilons"] = list(r.get("epsilons") or [])
        flat.append(row)
    df = pd.DataFrame(flat, columns=_columns(schema, flat))
    for col, typ in schema.items():
        df[col] = _typed(pd, df[col], typ)
    params = [c for c in df.columns if c not in schema and c != "epsilons"]
    for col in params:
        df[col] = df[col].infer_objects()
    return df


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
