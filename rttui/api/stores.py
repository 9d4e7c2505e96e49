"""Where a face's database is and how the facade opens it: `--db`, else `$RTTUI_DB`, else ./rttui.db.

Never import a face, the engine or torch here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rttui.errors import StoreError
from rttui.store import Store, default_db_path


def _planned_evals(name: str, spec: dict[str, Any]) -> list[tuple[str, str]] | None:
    """The evaluations a stored study spec plans, (eval id, run id); None when it no longer parses or plans (the
    store then keeps the old reading for that study). What rebuilds membership in a database written before it was
    recorded."""
    from rttui.errors import RttuiError
    from rttui.study.files import study_toml
    from rttui.study.plan import make_plan
    from rttui.study.spec import parse_study

    try:
        plan = make_plan(parse_study(study_toml(spec), f"the stored plan of study {name!r}"))
    except (RttuiError, KeyError, TypeError, ValueError):
        return None
    return [(ep.id, ep.run_id) for ep in plan.evals]


Store.membership_planner = _planned_evals


def db_path(db: str | Path | None) -> Path:
    """--db, else $RTTUI_DB, else ./rttui.db."""
    return Path(db) if db else default_db_path()


def smoke_db_path(db: str | Path | None) -> Path:
    """Where `rttui run --smoke` puts the smoke results of `db`: `<stem>.smoke<suffix>` next to it."""
    p = db_path(db)
    return p.with_name(f"{p.stem}.smoke{p.suffix or '.db'}")


def check_reads(on: bool) -> None:
    """Whether every read-only open runs SQLite's quick_check first (a few ms for a study's database, under a
    second for 100 MiB): on for the CLI's one-shot commands, so damage anywhere in the file is reported instead of
    read around; off for a face that reopens the file every second."""
    Store.check_reads = on


def open_store(db: str | Path | None = None, write: bool = False, check: bool | None = None) -> Store:
    """The database for a face; a missing one with smoke results next to it says that they are not results."""
    p, smoke = db_path(db), smoke_db_path(db)
    if not write and not p.exists() and smoke.exists():
        raise StoreError(
            f"{p}: no such database ({smoke.name} next to it holds smoke results only, which are never read as "
            f"results); run the study without --smoke to fill {p}, or pass --db {smoke} to look at the smoke run"
        )
    return Store.open(p, write=write, check=check)


ALL_STUDIES = "all"


def require_study(s: Store, study: str | None) -> str | None:
    """The study a read means: `study` when the database holds it, the only study when none is named, None (every
    study, on purpose) for "all". Refuses, in one line listing the studies, a name the database does not hold and
    an unnamed read of a database with several studies: results of different studies are never mixed silently."""
    names = s.study_names()
    if study == ALL_STUDIES and ALL_STUDIES not in names:
        return None
    if study is None:
        if len(names) <= 1:
            return names[0] if names else None
        raise StoreError(
            f"{s.path} holds {len(names)} studies ({', '.join(names)}); pass --study NAME, or --study all to mix them"
        )
    if study not in names:
        raise StoreError(
            f"study {study!r} is not in {s.path} (studies: {', '.join(names) or 'none'}); pass one of them"
        )
    return study


def read_results(
    db: str | Path | None, study: str | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Store, str | None]:
    """The records and runs of a study (see `require_study`), the open store (the caller closes it) and the study
    they are of (None: every study)."""
    s = open_store(db)
    try:
        name = require_study(s, study)
    except StoreError:
        s.close()
        raise
    return study_records(s, name), s.runs(name), s, name


def study_records(s: Store, study: str | None) -> list[dict[str, Any]]:
    """A study's stored records and, derived from its per-sample outcomes, its per-sample worst case over every
    attack it evaluated (`rttui.analysis.worst_case`): what every face reads."""
    from rttui.analysis.worst_case import worst_case_records

    recs = s.records(study)
    if not recs:
        return recs
    grids = s.eval_grids({r["eval_id"] for r in recs})
    return recs + worst_case_records(recs, s.sample_masks, grids)
