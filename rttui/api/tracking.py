"""The facade for experiment trackers: push a stored study to MLflow or Weights & Biases (`rttui export --to`).

Read-only on the database. Every check that can refuse (tracker, extra, server, credentials, study) runs before
the first push; the tracker libraries are imported only by the push itself.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from rttui.api.stores import open_store, require_study
from rttui.errors import RttuiError, StoreError

__all__ = ["push_study", "trackers"]


def trackers() -> tuple[str, ...]:
    from rttui.analysis.tracking import TRACKERS

    return TRACKERS


def push_study(
    db: str | Path | None,
    study: str | None,
    to: str,
    *,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    project: str | None = None,
    mode: str | None = None,
    figures: bool = True,
) -> dict[str, Any]:
    """Push a study's runs (config as params, epochs as step metrics, one metric per attack, eps and number, the
    audit and provenance as tags) and one study run holding its figures and study file. A second push finds each
    run again by its rttui run id and updates it. Returns {"created", "updated", "runs", "where", "study"}."""
    from rttui.analysis.tracking import TrackerTarget, check_target, push, study_run
    from rttui.runner.tracking import collect

    target = TrackerTarget(to, tracking_uri, experiment, project, mode)
    check_target(target)
    with open_store(db) as s:
        name = require_study(s, study)
        if name is None:
            raise StoreError(f"{s.path} holds no study to push; run one first (rttui run STUDY --db DB)")
        runs = collect(s, name)
        spec = s.study_spec(name)
    if not runs:
        raise StoreError(f"study {name!r} has no trained run yet; run it first (rttui run STUDY --db DB)")
    with tempfile.TemporaryDirectory(prefix="rttui-track-") as tmp:
        files = _figures(db, name, Path(tmp) / "figures") if figures else []
        spec_file = None
        if isinstance(spec, dict):
            from rttui.study.files import study_toml

            spec_file = Path(tmp) / f"{name}.toml"
            spec_file.write_text(study_toml(spec))
        result = push(target, [study_run(name, files, spec_file), *runs], name)
    return {**result, "study": name}


def _figures(db: str | Path | None, study: str, out: Path) -> list[Path]:
    """Every figure kind this study's results can draw (PNG): a kind it cannot (one strategy, no curve) is left
    out, as the report leaves it out."""
    from rttui.api.results import figure_kinds, plot

    files: list[Path] = []
    for kind in figure_kinds():
        try:
            files += plot(db, kind, out, study, formats=("png",))
        except RttuiError:
            continue
    return files
