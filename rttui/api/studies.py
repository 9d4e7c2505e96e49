"""The facade for study files and the vocabulary: validate, plan, read and write studies, list them with their
state, and the catalog as plain data for pickers.

Thin on purpose: the TOML round trip is `rttui.study.files`, study states `rttui.study.progress`, plan size
`Plan.size`, the catalog `rttui.study.catalog`. Nothing here imports torch at module level.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rttui.api.stores import db_path, open_store
from rttui.errors import RttuiError, StoreError
from rttui.store import Store
from rttui.study import Study, check_models, load_study, make_plan, parse_study
from rttui.study.files import duplicate_study, save_study, study_toml
from rttui.study.progress import StudyRow, study_row

__all__ = [
    "PlanRow",
    "StudyRow",
    "catalog",
    "check_data",
    "datasets",
    "delete_study",
    "duplicate_study",
    "list_studies",
    "load_study",
    "make_plan",
    "model_names",
    "parse_study",
    "plan_status",
    "save_study",
    "study_file_inside",
    "study_size",
    "study_source",
    "study_toml",
    "validate_study",
]


def validate_study(path: str | Path, check_models_: bool = True, data: bool = False) -> Study:
    """Parse and check a study; `data=True` also loads every dataset it names (slow, needs the files)."""
    study = load_study(path)
    if check_models_:
        check_models(study)
    if data:
        check_data(study)
    return study


def check_data(study: Study) -> None:
    """Load each distinct dataset and starting weights once, so bad input fails before any run starts."""
    from rttui.runner.preflight import check_inputs

    check_inputs(make_plan(study))


def datasets() -> list[dict[str, str]]:
    """The dataset names a study can use, what each is and where it looks for its files."""
    from rttui.study.catalog import datasets_data

    return datasets_data()


def catalog() -> dict[str, Any]:
    """The study vocabulary as plain data (names, help, parameters with defaults), read from the catalog.

    Faces build their pickers from this, so a strategy or attack added to the catalog shows up without UI code.
    """
    from rttui.study.catalog import as_data

    return as_data()


def model_names() -> list[str]:
    """Every timm model name (the first call imports timm, 5-15 s: call it off the UI thread; later calls
    answer from a cache, the list does not change while the process runs)."""
    return list(_model_names())


@functools.cache
def _model_names() -> tuple[str, ...]:
    from rttui.engine.models import known_model_names

    return tuple(sorted(known_model_names()))


def study_size(study: Study) -> dict[str, Any]:
    """How big a study is (units of work and a rough cost; see `Plan.size`)."""
    return make_plan(study).size()


# A launch that asks first: more runs left than this, or a model beyond the tiny offline test models.
LARGE_LAUNCH_RUNS = 50


def launch_question(path: str | Path, db: str | Path | None = None) -> str | None:
    """Why launching this study deserves a yes first (a plan this large takes hours, or wants a GPU), as a
    question; None for a small study, or one that cannot be read (the launch itself then says why)."""
    try:
        study = load_study(path)
        rows = plan_status(study, db)
    except (RttuiError, OSError):
        return None
    left = sum(r.state != "done" for r in rows)
    big = sorted({m.name for b in study.blocks for m in b.models if not m.name.startswith("test_")})
    if left <= LARGE_LAUNCH_RUNS and not big:
        return None
    why = [f"{left} runs to train and attack"] if left > LARGE_LAUNCH_RUNS else [f"{left} run(s)"]
    if big:
        why.append(f"full-size model(s) {', '.join(big)} (hours on a CPU; a GPU is advised)")
    return f"Launch {study.name}? It plans {' with '.join(why)}."


@dataclass(frozen=True)
class PlanRow:
    id: str
    label: str
    state: str  # pending | trained | done | failed | running | ...
    evals_total: int
    evals_done: int


def plan_status(study: Study, db: str | Path | None = None) -> list[PlanRow]:
    """The runs a study implies and, where a database exists, how far each one is."""
    plan = make_plan(study)
    p = db_path(db)
    store = Store.open(p) if p.exists() else None
    rows = []
    try:
        for r in plan.runs:
            state, done = "new", 0
            if store is not None:
                row = store.unit("run", r.id)
                if row:
                    state = row["state"]
                    done = len(store.done_evals(r.id) & {ep.id for ep in r.evals})
            rows.append(PlanRow(id=r.id, label=r.label, state=state, evals_total=len(r.evals), evals_done=done))
    finally:
        if store is not None:
            store.close()
    return rows


def list_studies(db: str | Path | None = None, studies_dir: str | Path | None = None) -> list[StudyRow]:
    """Study files in `studies_dir` and studies in the database, with their progress (read-only)."""
    p = db_path(db)
    in_db: dict[str, dict[str, Any]] = {}
    runner = None
    states: dict[str, dict[str, str]] = {}
    trained: dict[str, str] = {}
    evals_done: set[str] = set()
    if p.exists():
        with Store.open(p) as s:
            in_db = {r["name"]: r for r in s.studies()}
            runner = s.runner_lock()
            for name in in_db:
                states[name] = {r["id"]: r["state"] for r in s.runs(name)}
            trained = {r["id"]: r["state"] for r in s.runs()}  # every run's own (training) state
            evals_done = s.all_done_evals()
    rows: list[StudyRow] = []
    seen: set[str] = set()
    files = sorted(Path(studies_dir).glob("*.toml")) if studies_dir and Path(studies_dir).is_dir() else []
    # A run counts for a file when the database holds it, whichever study registered it: its state for the study
    # of that name when it is registered, else its own training state.
    for f in files:
        try:
            study = load_study(f)
        except RttuiError as exc:
            error = str(exc).splitlines()[0]
            rows.append(
                StudyRow(
                    name=f.stem,
                    path=str(f),
                    in_db=False,
                    runs=0,
                    done=0,
                    failed=0,
                    running=0,
                    state="invalid",
                    error=error,
                )
            )
            continue
        runs = make_plan(study).runs
        # A run another study finished is 'trained' for this one while an evaluation this one plans is missing
        # (the same training, another attack): the study is partial, and `rttui run` would evaluate it.
        own = states.get(study.name, {})
        known = {rp.id: own.get(rp.id) or trained.get(rp.id, "new") for rp in runs}
        mine = {
            rp.id: "trained"
            if known[rp.id] == "done" and any(ep.id not in evals_done for ep in rp.evals)
            else known[rp.id]
            for rp in runs
        }
        rows.append(study_row(study.name, str(f), study.name in in_db, [rp.id for rp in runs], mine, runner))
        seen.add(study.name)
    for name, r in in_db.items():
        if name not in seen:
            rows.append(study_row(name, r["path"] or "", True, list(states[name]), states[name], runner))
    return rows


def study_source(name: str, db: str | Path | None = None, path: str | Path | None = None) -> str:
    """The TOML of a study: its file when there is one, else the spec the database stored when it ran."""
    if path and Path(path).is_file():
        return Path(path).read_text(encoding="utf-8")
    with open_store(db) as s:
        spec = s.study_spec(name)
    if spec is None:
        raise StoreError(f"study {name!r} has no file and is not in {db_path(db)}; open a study file instead")
    return study_toml(spec)


def delete_study(
    name: str,
    db: str | Path | None = None,
    path: str | Path | None = None,
    studies_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Delete a study's database entry (runs shared with other studies are kept) and its file, but the file only
    when it lies inside `studies_dir`, the folder the caller was given: a path read from the database may point
    anywhere, and deleting a file elsewhere is not this call's to do.

    Returns {"file": the file deleted or None, "file_left": a file kept because it lies outside `studies_dir`
    (or no folder was given) or None, "runs_dropped": n}.
    """
    out: dict[str, Any] = {"file": None, "file_left": None, "runs_dropped": 0}
    p = db_path(db)
    if p.exists():
        with Store.open(p, write=True) as s:
            s.refuse_if_running("cancel it before deleting the study", study=name)
            out["runs_dropped"] = s.forget_study(name)
    if path and Path(path).is_file():
        if study_file_inside(path, studies_dir):
            Path(path).unlink()
            out["file"] = str(path)
        else:
            out["file_left"] = str(Path(path).resolve())
    return out


def study_file_inside(path: str | Path, studies_dir: str | Path | None) -> bool:
    """Whether `path` (symlinks and `..` resolved) lies inside the folder `studies_dir`."""
    if not studies_dir:
        return False
    return Path(path).resolve().is_relative_to(Path(studies_dir).resolve())
