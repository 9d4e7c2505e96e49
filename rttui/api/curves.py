"""The facade for training curves: per-epoch validation accuracy (clean and under the probe) of a study's runs.

Thin: the rows and the figure are `rttui.analysis.curves`; the store's `validation_records` reads them. Read-only.
Matplotlib is imported only when a figure is drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rttui.api.stores import open_store, require_study

__all__ = ["validation_curves", "validation_rows"]


def validation_rows(
    db: str | Path | None, study: str | None = None, where: Sequence[str] | dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """One row per (configuration, epoch): seed mean and sd of clean and robust validation accuracy (see
    `rttui.analysis.curves.curves`); AnalysisError when no run of the study recorded validation."""
    return _read(db, study, where)[0]


def _read(
    db: str | Path | None, study: str | None, where: Sequence[str] | dict[str, Any] | None
) -> tuple[list[dict[str, Any]], str]:
    """The curve rows and a note naming the runs not done yet ("" when every run is done)."""
    from rttui.analysis.curves import curves

    s = open_store(db)
    try:
        require_study(s, study)
        recs = s.validation_records(study)
        runs = s.runs(study)
    finally:
        s.close()
    todo = [r for r in runs if r.get("state") != "done"]
    return curves(recs, where), f"[PARTIAL: {len(todo)} of {len(runs)} runs not done]" if todo else ""


def validation_curves(
    db: str | Path | None,
    out: str | Path,
    study: str | None = None,
    where: Sequence[str] | dict[str, Any] | None = None,
    formats: Sequence[str] = ("png", "svg"),
) -> tuple[list[dict[str, Any]], list[Path]]:
    """Draw the validation curves into `out` (a folder, or a file name such as curves.png) with their numbers
    (.json, .csv) beside them; returns (rows, files written)."""
    from rttui.analysis.curves import write

    rows, partial = _read(db, study, where)
    return rows, write(rows, Path(out), tuple(formats), " ".join(x for x in (study or "", partial) if x))
