"""The facade for running studies: run one here, launch one detached, ask the runner to cancel or retry, and
read how far runs are (status, live progress, sanity checks, a run's model and layer analysis).

Thin on purpose: executor choice is `rttui.runner.executors`, detached spawning `rttui.runner.detached`,
progress rules `rttui.study.progress`, "is a runner holding this database" `Store.refuse_if_running`.
Nothing here imports torch at module level.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from rttui.analysis.environment import env_fields, env_line
from rttui.api.stores import db_path, open_store, require_study
from rttui.api.studies import check_data, validate_study
from rttui.errors import EmptyDatabase, StoreError
from rttui.store import Store
from rttui.study import Plan, Study, check_models, make_plan, parse_study
from rttui.study.files import study_toml
from rttui.study.progress import metrics_by_run, plan_totals, run_progress
from rttui.study.spec import slurm_options

__all__ = [
    "cancel",
    "checks",
    "dry_run",
    "ensure_no_runner",
    "launch_study",
    "layers",
    "load_run_model",
    "retry",
    "run_study",
    "status",
    "study_progress",
]

# What a user who meets a running runner can do, per action (the rest of the line is `Store.refuse_if_running`).
WAIT_OR_CANCEL = "wait for it to finish, or stop it (rttui cancel)"


def run_study(
    study: Study,
    db: str | Path | None = None,
    listener: Any = None,
    device: str | None = None,
    stop: threading.Event | None = None,
    check_data_first: bool = True,
    workers: int | None = None,
    devices: list[str] | None = None,
    executor: str | None = None,
    address: str | None = None,
    max_retries: int = 1,
    slurm: list[str] | None = None,
) -> dict[str, Any]:
    """Run (or resume) a study into the database; returns counts of what happened.

    executor "local": in this process when one worker will do (no start-up cost), else a pool of worker
    processes (`workers` CPU workers, or one per device in `devices`, or one per visible GPU when there are
    several). executor "ray": each unit is a Ray task (`address` of an existing cluster, else a local one).
    executor "slurm": each unit is a SLURM job (submitit), options from the study's `[run.slurm]` with `slurm`
    (`KEY=VALUE` strings) on top. No executor given: the study's `[run] executor`, else local.
    Every refusal comes before the first write: options, models, the executor's needs (Ray, submitit, sbatch,
    the SLURM probe job) and the data are checked first, a live runner is refused at once, and only then is the
    database opened (created) and its runner lock taken.
    """
    from rttui.runner.executors import make_executor

    executor, slurm_opts, plan, _ = _prepare(study, db, workers, device, devices, executor, max_retries, slurm)
    p = db_path(db)
    ensure_no_runner(p)
    if check_data_first:
        check_data(study)
    runner = make_executor(  # a SLURM executor's probe job runs here: a refusal still leaves no database
        executor,
        workers=workers,
        devices=devices,
        device=device,
        address=address,
        slurm=slurm_opts,
        artifacts=_artifacts(p),
    )
    store = Store.open(p, write=True)
    try:
        store.acquire_lock(study.name)
        try:
            from rttui.runner.local import execute

            coord = execute(plan, store, listener, device, stop, runner, max_retries)
        finally:
            store.release_lock()
        return {
            "done": len(coord.done),
            "failed": len(coord.failed),
            "runs": len(plan.runs),
            "cancelled": coord.cancelled,
        }
    finally:
        store.close()


def _artifacts(p: Path) -> Path:
    """The database's artifacts folder (`Store.artifacts`), known before the database is opened or created."""
    return (p.parent / f"{p.stem}.artifacts").resolve()


def _prepare(
    study: Study,
    db: str | Path | None,
    workers: int | None,
    device: str | None,
    devices: list[str] | None,
    executor: str | None,
    max_retries: int,
    slurm: list[str] | None,
    submit: bool = True,
) -> tuple[str, dict[str, Any] | None, Plan, str]:
    """Every check of a run's options, models and executor that takes seconds and writes nothing (a refusal is
    one line, the database untouched): the executor, its SLURM options and its job script, the plan. `submit`
    False (a dry run): the SLURM script is written but not shown to sbatch, which need not be here."""
    from rttui.runner.executors import check_executor, check_options

    executor = executor or study.run.get("executor") or "local"
    check_options(executor, workers, device=device, devices=devices, max_retries=max_retries)
    slurm_opts = slurm_options(study, slurm) if executor == "slurm" or slurm else None
    check_models(study)
    plan: Plan = make_plan(study)
    script = check_executor(executor, slurm_opts, _artifacts(db_path(db)), submit=submit)
    return executor, slurm_opts, plan, script


def dry_run(
    study: Study,
    db: str | Path | None = None,
    device: str | None = None,
    workers: int | None = None,
    devices: list[str] | None = None,
    executor: str | None = None,
    address: str | None = None,
    max_retries: int = 1,
    slurm: list[str] | None = None,
) -> dict[str, Any]:
    """What `run_study` would do, without running, submitting or writing anything: the same checks of options,
    models and executor (not the data, not the SLURM probe job), the plan's size, and for the SLURM executor the
    sbatch script every job is submitted with (`SlurmExecutor.script`: submitit's own script writer; units that
    are ready together go as one job array, which adds `#SBATCH --array=0-N%P`). A database that exists is only
    read: what is already done there."""
    executor, _, plan, script = _prepare(
        study, db, workers, device, devices, executor, max_retries, slurm, submit=False
    )
    p = db_path(db)
    done = None
    if p.exists():
        with open_store(p) as s:
            done = sum(1 for rp in plan.runs if (s.unit("run", rp.id) or {}).get("state") == "done")
    return {
        "study": study.name,
        "executor": executor,
        "db": str(p),
        "sources": len(plan.sources),
        "runs": len(plan.runs),
        "evaluations": len(plan.evals),
        "runs_done": done,
        "script": script,
    }


def ensure_no_runner(db: str | Path | None = None) -> None:
    """Refuse at once (one line) when a live runner holds the database: checked before a study is even loaded.
    `run_study` takes the lock itself too; this only makes the refusal immediate."""
    p = db_path(db)
    if not p.exists():
        return
    try:
        s = Store.open(p)
    except EmptyDatabase:
        return  # a file with no tables (a creation a full disk cut short): no runner, and the run creates it
    with s:
        s.refuse_if_running(WAIT_OR_CANCEL)


def launch_study(path: str | Path, db: str | Path | None = None) -> dict[str, Any]:
    """Start `rttui run STUDY --db DB --quiet` as a detached process that outlives the caller (and its SSH).

    The caller watches the database; the process's output goes to `<db stem>.log` next to the database.
    """
    from rttui.runner.detached import spawn_run

    study = validate_study(path, check_models_=False)
    p = db_path(db).resolve()
    ensure_no_runner(p)
    return {**spawn_run(path, p), "study": study.name, "db": str(p)}


def watch_launch(info: dict[str, Any], seconds: float = 5.0) -> str:
    """After `launch_study`: wait up to `seconds` for the runner to die at once (refused because another
    runner holds the database, a crash on start). "" when it runs on (it is reaped when it ends, never left a
    zombie); else one line saying how it ended, with its log's last line. Blocks: call it off the UI thread."""
    from rttui.runner.detached import watch_launched

    ended = watch_launched(int(info["pid"]), info["log"], seconds)
    if ended is None:
        return ""
    said = ended["last_line"] or "(the log says nothing)"
    return (
        f"the runner for {info.get('study', '?')} (process {info['pid']}) stopped at once with exit code "
        f"{ended['code']}: {said} (log: {info['log']})"
    )


def cancel(db: str | Path | None = None) -> dict[str, Any] | None:
    """Ask the runner holding the database to stop (it reads the request within half a second and stops the running
    unit at its next forward pass; the database stays consistent and the next `rttui run` resumes). Returns the
    runner's lock, or None when no runner was there."""
    Store.open(db_path(db)).close()  # a missing or foreign file is refused before anything is written
    with Store.open(db_path(db), write=True) as s:
        lock = s.runner_lock()
        if lock is not None:
            s.add_request("cancel")
        return lock


def retry(db: str | Path | None, run_id: str) -> dict[str, Any] | None:
    """Ask the running runner to run a failed run again; None when no runner holds the database (then a plain
    `rttui run` retries every failed run anyway)."""
    Store.open(db_path(db)).close()
    with Store.open(db_path(db), write=True) as s:
        lock = s.runner_lock()
        if lock is not None:
            s.add_request("retry", run_id)
        return lock


def check_db(db: str | Path | None = None, full: bool = False) -> str:
    """The check of the database file (quick_check; when full, integrity_check and the stored values, what a runner
    checks before writing): a one-line verdict, or `DatabaseDamaged` naming the damage and how to recover."""
    with open_store(db, check=False) as s:  # the check below is the one to report
        return s.check(full)


def status(db: str | Path | None = None, study: str | None = None, run_id: str | None = None) -> dict[str, Any]:
    """Studies and runs with their states (read-only); with `run_id`, that run alone and the environment it and
    each of its evaluations ran in (`env` None where the database predates provenance: "not recorded")."""
    with open_store(db) as s:
        if study is not None:
            require_study(s, study)
        if run_id is None:
            rows = s.runs(study)
            runs = [{k: v for k, v in r.items() if k != "config"} for r in rows]
            return {"studies": s.studies(), "runs": runs, "sources": _sources(s, rows), "runner": s.runner_lock()}
        row = s.unit("run", run_id)
        if row is None:
            raise StoreError(f"run {run_id!r} is not in {s.path}; run `rttui status` to list run ids")
        runs = [r for r in s.runs(study) if r["id"] == run_id]
        evals = s.rows("select id, attack, created from evaluations where run_id = ? order by created", (run_id,))
        for e in evals:
            e["env"] = s.unit_env("evaluation", e["id"])
            e["env_line"] = env_line(e["env"])
        env = s.unit_env("run", run_id)
        return {
            "studies": [],
            "runs": runs,
            "runner": s.runner_lock(),
            "run": {
                "id": run_id,
                "env": env,
                "env_rows": env_fields(env),
                "evaluations": evals,
                "peak_gpu_mem": row.get("peak_gpu_mem"),  # bytes (training and evaluation); None: not on a GPU
            },
        }


def _sources(s: Any, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pretrained sources these runs start from (adversarial pretraining done by rttui), with their state and
    latest epoch: while a source trains its runs wait "pending", so status shows the source working."""
    import json

    ids: list[str] = []
    for r in runs:
        cfg = r.get("config") or {}
        try:
            cfg = json.loads(cfg) if isinstance(cfg, str) else cfg
        except ValueError:
            cfg = {}
        sid = cfg.get("source_id") if isinstance(cfg, dict) else None
        if sid and sid not in ids:
            ids.append(sid)
    epochs = s.last_unit_epochs(ids)
    out = []
    for sid in ids:
        u = s.unit("source", sid)
        if u is None:
            continue
        out.append(
            {
                **{k: u.get(k) for k in ("id", "dataset", "model", "seed", "state", "clean_acc", "error")},
                "epoch": (epochs.get(sid) or {}).get("epoch"),
            }
        )
    return out


def checks(db: str | Path | None = None, run_id: str | None = None) -> list[dict[str, Any]]:
    """The sanity checks stored with the evaluations (of one run, or of all)."""
    with open_store(db) as s:
        if run_id is not None and s.unit("run", run_id) is None:
            raise StoreError(f"run {run_id!r} is not in {s.path}; run `rttui status` to list run ids")
        return s.checks(run_id)


def gpu_telemetry(runner: dict[str, Any] | None = None, workers: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """This machine's NVIDIA GPUs (utilisation, memory used / total) and what the runner holds on each, for a
    monitor (see `rttui.runner.gpus.gpu_telemetry`); with `workers` (`study_progress`'s), each device also names
    the units the runner's workers on it work on (`units`). A runner on another host is not visible from here."""
    import socket

    from rttui.runner.gpus import gpu_telemetry as read
    from rttui.runner.gpus import match_workers

    here = runner is not None and runner.get("host") == socket.gethostname()
    out = read(int(runner["pid"]) if here and runner else None)
    out["runner_here"] = here
    if out.get("available"):
        match_workers(out, workers if here and workers else [])
    return out


def study_progress(db: str | Path | None, study: str) -> dict[str, Any]:
    """A live view of a study's runs for a monitor: states, epochs, losses, evaluations and per-eps accuracy
    (stored, and streamed per eps for the evaluation a running run is working through).

    Reads only; cheap enough to poll every second on a study of hundreds of runs.
    """
    p = db_path(db)
    if not p.exists():
        return {
            "runner": None,
            "runs": [],
            "sources": [],
            "metrics": {},
            "live": {},
            "workers": [],
            "checks": [],
            "validation": {},
        }
    with Store.open(p) as s:
        spec = s.study_spec(study)
        runs = s.runs(study)
        envs = s.environments()
        for r in runs:  # the run detail's environment line; None where it was not recorded
            r["env_line"] = env_line(envs[r["env_id"]]) if r.get("env_id") in envs else None
        lock = s.runner_lock()
        evals = s.eval_counts(study)
        last = s.last_epochs(study)
        recs = s.records(study) if runs else []
        live = s.live(study)  # the running runs' evaluations, per eps finished so far (never a stored result)
        run_ids = {r["id"] for r in runs}
        mine = set(s.study_eval_ids(study))
        # The study's own checks: its evaluations', its runs' own, and PGD/FGSM pairs it planned both halves of.
        checks_ = [
            c
            for c in s.checks()
            if c["run_id"] in run_ids and (not c["eval_id"] or set(c["eval_id"].split("+")) <= mine)
        ]
        validation = s.validation_points(study)  # per-epoch validation so far (runs with [target] val_size)
        workers = s.workers() if lock and lock["study"] == study else []
    totals: dict[str, tuple[int, int]] = {}
    source_totals: dict[str, int] = {}
    if spec is not None:
        try:
            plan = make_plan(parse_study(study_toml(spec), study))
            totals = plan_totals(plan)
            source_totals = {sp.id: int(sp.config["train"]["epochs"] or 0) for sp in plan.sources.values()}
        except Exception:  # an old spec that no longer validates: show what the database has
            totals = {}
    source_rows: list[dict[str, Any]] = []
    source_epochs: dict[str, dict[str, Any]] = {}
    if source_totals:  # the plan names the study's sources (the runs table does not say which)
        with Store.open(p) as s:
            source_rows = [u for u in (s.unit("source", sid) for sid in source_totals) if u is not None]
            source_epochs = s.last_unit_epochs(list(source_totals))
    return {
        "runner": lock if lock and lock["study"] == study else None,
        "runs": run_progress(runs, totals, evals, last, busy={w["unit_id"] for w in workers if w.get("unit_id")}),
        # Source pretraining, as rows of their own: runs wait "pending" while their source trains.
        "sources": run_progress(
            [{**u, "strategy": "source", "technique": "", "seed": u.get("seed")} for u in source_rows],
            {sid: (n, 0) for sid, n in source_totals.items()},
            {},
            source_epochs,
        ),
        "metrics": metrics_by_run(recs),
        # Run id -> {eval_id, attack, label, n, epsilons, points: [{eps, n_adv_correct, adv_acc}]}: the evaluation
        # a running run works through, each eps as it finishes; in progress, so shown as such, never in `metrics`.
        "live": live,
        # The runner's workers (slot, pid, host, device) and the unit each works on now: the GPU panel's names.
        "workers": workers,
        "checks": checks_,
        # Run id -> [{epoch, val_clean_acc, val_adv_acc}]: clean and probe-robust validation accuracy per epoch.
        "validation": validation,
    }


def load_run_model(db: str | Path | None, run_id: str) -> Any:
    """The trained model of a run, in eval mode, taking [0, 1] images (checkpoint hash verified)."""
    from rttui.engine import models, strategies

    with open_store(db) as s:
        row = s.unit("run", run_id)
        if row is None:
            raise StoreError(f"run {run_id!r} is not in {s.path}; run `rttui status` to list run ids")
        if not row["checkpoint"]:
            raise StoreError(f"run {run_id} has no trained model yet (state {row['state']}); run its study first")
        cfg = s.run_config(run_id)
        path = s.abs(row["checkpoint"])
    model = models.create_model(cfg["model"], row["num_classes"], cfg["target"]["image_size"])
    strategies.add_adapters(model, cfg["strategy"])  # adapter runs saved LoRA modules: rebuild them first
    models.load_checkpoint(model, path, row["sha256"])
    return model.eval()


def layers(
    db: str | Path | None,
    run_id: str,
    n_images: int = 128,
    recompute: bool = False,
    store: bool = True,
    device: str | None = None,
) -> list[dict[str, Any]]:
    """A run's layer analysis, one record per depth group (input side first).

    Stored analyses are returned as they are; otherwise (or with `recompute`) it is computed from the run's
    source checkpoint (before) and its own checkpoint (after) and, with `store`, written to the database, which
    only happens while no runner holds it (the runner is the single writer while a study runs).
    """
    no_store = "pass --no-store to compute without storing, or wait for it to finish"
    if device is not None:
        from rttui.runner.executors import check_device

        check_device(device)
    with open_store(db) as s:
        row = s.unit("run", run_id)
        if row is None:
            raise StoreError(f"run {run_id!r} is not in {s.path}; run `rttui status` to list run ids")
        have = s.layers(run_id)
        if have and not recompute:
            return have
        if not row["checkpoint"]:
            raise StoreError(f"run {run_id} has no trained model yet (state {row['state']}); run its study first")
        src = s.unit("source", row["source_id"]) or {}
        if not src.get("checkpoint"):
            raise StoreError(
                f"run {run_id}: its source model {row['source_id']} has no checkpoint; re-run the study to "
                "train it, then ask again"
            )
        if store:
            s.refuse_if_running(no_store)
        cfg = s.run_config(run_id)
        source = {**src, "checkpoint": str(s.abs(src["checkpoint"]))}
        trained = {**row, "checkpoint": str(s.abs(row["checkpoint"]))}
        path = s.path
    from rttui.runner.layers import analyze_run

    records = analyze_run(cfg, source, trained, n_images, device)
    if store:
        with Store.open(path, write=True) as w:
            w.refuse_if_running(no_store)
            w.set_layers(run_id, records)
            return w.layers(run_id)
    return [{**r, "run_id": run_id} for r in records]
