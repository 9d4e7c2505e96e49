"""The facade: everything the CLI and the TUI do goes through these functions (plain data in and out).

Nothing here imports torch at module level; functions that need the engine import it when called.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rttui.analysis.compare import CompareTable, Comparison  # plain result types (no torch, no UI)
from rttui.errors import RttuiError, StoreError
from rttui.store import Store, default_db_path
from rttui.study import Plan, Study, check_models, load_study, make_plan, parse_study
from rttui.study.spec import slurm_options

__all__ = [
    "CompareTable",
    "Comparison",
    "PlanRow",
    "Study",
    "cancel",
    "check_data",
    "compare",
    "confusions",
    "datasets",
    "depth_figure",
    "depth_table",
    "ensure_no_runner",
    "export_records",
    "export_table",
    "figure_kinds",
    "frame",
    "layers",
    "load_run_model",
    "load_study",
    "make_plan",
    "open_store",
    "parse_study",
    "plan_status",
    "plot",
    "report",
    "retry",
    "run_study",
    "stability",
    "status",
    "summary",
    "tests_grid",
    "ttest",
    "validate_study",
]


def db_path(db: str | Path | None) -> Path:
    """--db, else $RTTUI_DB, else ./rttui.db."""
    return Path(db) if db else default_db_path()


def open_store(db: str | Path | None = None, write: bool = False) -> Store:
    return Store.open(db_path(db), write=write)


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
    from rttui.study.catalog import DATASET_FILES, DATASETS

    return [{"name": n, "help": h, "files": DATASET_FILES.get(n, "")} for n, h in DATASETS.items()]


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
                    done = len(store.done_evals(r.id) & {e.id for e in r.evals})
            rows.append(PlanRow(r.id, r.label, state, len(r.evals), done))
    finally:
        if store is not None:
            store.close()
    return rows


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
    The runner lock is taken before anything else is written or loaded, so a second runner is refused at once.
    """
    from rttui.errors import RttuiError

    executor = executor or study.run.get("executor") or "local"
    if executor not in ("local", "ray", "slurm"):
        raise RttuiError(f"--executor {executor!r} is not known; use local, ray or slurm")
    slurm_opts = slurm_options(study, slurm) if executor == "slurm" or slurm else None
    if workers is not None and workers < 1:
        raise RttuiError(f"--workers {workers} must be at least 1")
    check_models(study)
    plan: Plan = make_plan(study)
    store = Store.open(db_path(db), write=True)
    try:
        store.acquire_lock(study.name)
        try:
            if check_data_first:
                check_data(study)
            from rttui.runner.local import InProcess, execute

            runner: Any
            if executor == "ray":
                from rttui.runner.ray_executor import RayExecutor

                runner = RayExecutor(address, num_cpus=workers)
            elif executor == "slurm":
                from rttui.runner.slurm_executor import SlurmExecutor

                runner = SlurmExecutor(slurm_opts or {}, store.artifacts)
                runner.preflight()  # the artifacts folder must be shared with the nodes: checked before any write
            else:
                pool_devices = _pool_devices(workers, devices, device)
                if pool_devices is None:
                    _set_threads()
                    runner = InProcess((devices or [None])[0] if devices else device)
                else:
                    from rttui.runner.pool import Pool

                    runner = Pool(pool_devices)
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


def _pool_devices(workers: int | None, devices: list[str] | None, device: str | None) -> list[str] | None:
    """The pool's worker devices, or None when the study runs in this process (one worker, one device)."""
    if workers is None and not devices:
        if device is not None:
            return None
        import torch

        if not torch.cuda.is_available() or torch.cuda.device_count() < 2:
            return None  # one GPU or CPU: in-process is fastest
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]  # one worker per GPU
    if (workers or 1) == 1 and len(devices or []) <= 1:
        return None
    from rttui.runner.pool import plan_workers

    return plan_workers(workers, devices or ([device] if device else None))


def _set_threads() -> None:
    import os

    import torch

    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, os.cpu_count() or 1))


def ensure_no_runner(db: str | Path | None = None) -> None:
    """Refuse at once (one line) when a live runner holds the database: checked before a study is even loaded.
    `run_study` takes the lock itself too; this only makes the refusal immediate."""
    import os

    p = db_path(db)
    if not p.exists():
        return
    with Store.open(p) as s:
        lock = s.runner_lock()
    if lock is not None and lock["pid"] != os.getpid():
        raise StoreError(
            f"{p}: study {lock['study']!r} is already running in process {lock['pid']} on {lock['host']}; "
            "wait for it to finish, or stop it (rttui cancel)"
        )


def cancel(db: str | Path | None = None) -> dict[str, Any] | None:
    """Ask the runner holding the database to stop (it applies the request within a second, the database stays
    consistent and the next `rttui run` resumes). Returns the runner's lock, or None when no runner was there."""
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


def status(db: str | Path | None = None, study: str | None = None) -> dict[str, Any]:
    """Studies and runs with their states (read-only)."""
    with open_store(db) as s:
        return {"studies": s.studies(), "runs": s.runs(study), "runner": s.runner_lock()}


def export_records(db: str | Path | None = None, study: str | None = None) -> list[dict[str, Any]]:
    """One flat record per (study, run, attack, eps), accuracies as fractions in [0, 1]."""
    with open_store(db) as s:
        if study and study not in {r["name"] for r in s.studies()}:
            raise StoreError(f"study {study!r} is not in {s.path}; run `rttui status` to list its studies")
        return s.records(study)


def checks(db: str | Path | None = None, run_id: str | None = None) -> list[dict[str, Any]]:
    with open_store(db) as s:
        return s.checks(run_id)


def summary(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean +- std over seeds per (dataset, model, strategy, technique, attack, eps)."""
    from rttui.analysis.aggregate import summarize

    return summarize(records)


def load_run_model(db: str | Path | None, run_id: str) -> Any:
    """The trained model of a run, in eval mode, taking [0, 1] images (checkpoint hash verified)."""
    from rttui.engine import models, strategies

    with open_store(db) as s:
        row = s.unit("run", run_id)
        if row is None:
            raise StoreError(f"run {run_id!r} is not in {s.path}; run `rttui status` to list run ids")
        if not row["checkpoint"]:
            raise StoreError(f"run {run_id} has no trained model yet (state {row['state']}); run its study first")
        cfg = json.loads(row["config"])
        path = s.abs(row["checkpoint"])
    model = models.create_model(cfg["model"], row["num_classes"], cfg["target"]["image_size"])
    strategies.add_adapters(model, cfg["strategy"])  # adapter runs saved LoRA modules: rebuild them first
    models.load_checkpoint(model, path, row["sha256"])
    return model.eval()


# ---- results: compare, tests, error analysis, figures, exports (issue 6) ---------------------------------
def _results(db: str | Path | None, study: str | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Store]:
    s = open_store(db)
    if study and study not in {r["name"] for r in s.studies()}:
        names = ", ".join(r["name"] for r in s.studies()) or "none"
        s.close()
        raise StoreError(f"study {study!r} is not in {s.path} (studies: {names}); pass one of them")
    return s.records(study), s.runs(study), s


def compare(
    db: str | Path | None = None,
    study: str | None = None,
    attack: str | None = "pgd",
    eps: float | None = None,
    rows: Sequence[str] | str | None = None,
    cols: Sequence[str] | str | None = None,
    where: Sequence[str] | dict[str, Any] | None = None,
    metrics: Sequence[str] | None = None,
    stability: bool = False,
    baseline: tuple[str, str] | bool | None = True,
) -> Comparison:
    """Pivot tables of standard / adversarial accuracy and drop, mean +- std over seeds (see
    `rttui.analysis.compare.compare`). `where` takes "axis=value" strings (repeats OR together) or a dict;
    `stability=True` shows the spread over seeds instead of the drop. Partial results are marked.

    For a face: each `CompareTable` in `.tables` has `title`, `caption` (attack, parameters, eps, n seeds,
    marks), `header()` and `body()` (display strings, row-axis columns first), `best()` ({value column index:
    row keys to bold}), `warnings` (sanity checks on its numbers), `partial` and `missing` (runs not yet
    evaluated), and `cells` with the numbers; `.as_dict()` is the JSON form."""
    from rttui.analysis import compare as cmp

    recs, runs, s = _results(db, study)
    try:
        checks_ = s.checks()
    finally:
        s.close()
    ms = tuple(metrics) if metrics else (cmp.STABILITY_METRICS if stability else cmp.DEFAULT_METRICS)
    if not recs:  # a study that has started but evaluated nothing yet: nothing to show, and it says so
        return Comparison([], study, partial=True)
    return cmp.compare(recs, runs, checks_, attack, eps, rows, cols, where, ms, baseline, study)


def ttest(
    db: str | Path | None,
    axis: str,
    a: str,
    b: str,
    metric: str = "adv_acc",
    attack: str | None = None,
    eps: float | None = None,
    study: str | None = None,
    test: str = "t",
    mcnemar: bool = False,
    variance: bool = False,
    where: Sequence[str] | dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Paired tests (over seeds) of axis=a against axis=b, one per combination of the other axes, attack
    and eps; each dict has mean_diff (a - b), ci_low, ci_high, t, p, p_holm, dz, n, warning and the fixed
    axes. p is None where the test is undefined. `mcnemar` adds an exact per-sample McNemar test,
    `variance` a Brown-Forsythe (Levene, median) equal-variance test of the metric across seeds."""
    from rttui.analysis import stats

    recs, _runs, s = _results(db, study)
    if not recs:
        s.close()
        return []
    try:
        rows = stats.comparisons(recs, axis, a, b, metric, attack, eps, where, test, variance)
        if mcnemar and rows:
            grids = s.eval_grids({p[k] for r in rows for p in r["pairs"] for k in ("eval_a", "eval_b")})
            stats.add_mcnemar(rows, s.samples, grids)
    finally:
        s.close()
    return rows


def stability(
    db: str | Path | None = None,
    study: str | None = None,
    attack: str | None = "pgd",
    eps: float | None = None,
    where: Sequence[str] | dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Per configuration, attack and eps: mean, sd and range of standard and adversarial accuracy over seeds."""
    from rttui.analysis import stats

    recs, _runs, s = _results(db, study)
    s.close()
    return stats.stability(recs, attack, eps, where) if recs else []


def confusions(
    db: str | Path | None = None,
    study: str | None = None,
    attack: str | None = "pgd",
    eps: float | None = None,
    where: Sequence[str] | dict[str, Any] | None = None,
    top: int = 5,
) -> list[dict[str, Any]]:
    """The class pairs most confused under attack, per (dataset, model, strategy, technique, attack, eps),
    summed over seeds, with class names and the full confusion matrix. eps=None: the default eps (0.03
    if evaluated, else the grid's middle)."""
    from rttui.analysis import compare as cmp
    from rttui.analysis import errors

    recs, _runs, s = _results(db, study)
    if not recs:
        s.close()
        return []
    try:
        sel = cmp.select(recs, attack, eps if eps is not None else None, where)
        if eps is None:
            e = cmp.default_eps(sel)
            sel = [r for r in sel if abs(float(r["eps"]) - e) < cmp.EPS_TOL]
        conf = s.confusion({r["eval_id"] for r in sel})
        classes = s.run_classes({r["run_id"] for r in sel})
    finally:
        s.close()
    return errors.confusions(sel, conf, classes, top)


def figure_kinds() -> dict[str, str]:
    """The figure kinds `plot` can draw, with what each shows (a registry other analyses extend)."""
    from rttui.analysis import figures

    return {k: f.description for k, f in figures.FIGURES.items()}


def plot(
    db: str | Path | None,
    kind: str,
    out: str | Path,
    study: str | None = None,
    attack: str | None = None,
    eps: float | None = None,
    where: Sequence[str] | dict[str, Any] | None = None,
    formats: Sequence[str] = ("png", "svg"),
) -> list[Path]:
    """Draw one figure kind (see `figure_kinds()`) into `out` (a folder, or a file name such as fig1.png);
    returns the files written. attack=None: every attack for `curves`, else PGD if evaluated (else the
    first attack). Matplotlib (Agg) is imported only here."""
    from rttui.analysis import figures

    fig = figures.get(kind)
    recs, runs, s = _results(db, study)
    s.close()
    if attack is None and kind != "curves" and recs:
        attacks = list(dict.fromkeys(r["attack"] for r in recs))
        attack = "pgd" if "pgd" in attacks else attacks[0]
    data: dict[str, Any] = {"records": recs, "runs": runs, "study": study, "attack": attack, "eps": eps}
    data["where"] = where
    if "confusions" in fig.needs:
        data["confusions"] = confusions(db, study, attack, eps, where)
    return figures.draw(kind, data, Path(out), tuple(formats))


def export_table(
    comparison: Comparison | list[dict[str, Any]],
    fmt: str,
) -> str:
    """A compare result (or ttest rows) as text: csv, md, latex or json."""
    from rttui.analysis import export

    return export.render(comparison, fmt)


def tests_grid(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """ttest rows as display strings: title, header, rows (lists of cells), caption, n_axes (leading
    label columns). Differences in points; p 'n/a' where undefined."""
    from rttui.analysis import export

    axes = export._test_axes(rows)
    title = f"{rows[0]['axis']}: {rows[0]['a']} vs {rows[0]['b']} ({rows[0]['metric']})" if rows else "no comparisons"
    return {
        "title": title,
        "header": export.test_header(rows, axes),
        "rows": [export.test_cells(r, axes) for r in rows],
        "caption": export.tests_caption(rows),
        "n_axes": len(axes),
    }


def report(db: str | Path | None, study: str, out: str | Path) -> dict[str, Any]:
    """Every table and figure of a study into one folder, with an index.md that links them; returns
    {"index": path, "files": [...], "partial": bool}. Works on a study that is still running."""
    from rttui.analysis import compare as cmp
    from rttui.analysis import export, figures

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    recs, runs, s = _results(db, study)
    s.close()
    if not recs:
        raise StoreError(f"study {study!r} has no results yet; run it first (rttui run STUDY --db DB)")
    files: list[Path] = []
    attacks = list(dict.fromkeys(r["attack"] for r in recs))
    eps0 = cmp.default_eps(recs)
    todo = [r for r in runs if r["state"] != "done"]
    index = [f"# Study {study}", ""]
    if todo:
        index += [f"**PARTIAL**: {len(todo)} of {len(runs)} runs are not done yet; numbers will change.", ""]
    index += [f"{len(runs)} runs, attacks: {', '.join(attacks)}; single-epsilon views use ε = {eps0:g}.", ""]

    def write(name: str, text: str) -> Path:
        p = out / name
        p.write_text(text)
        files.append(p)
        return p

    index += ["## Tables", ""]
    for attack in attacks:
        ms = ("clean", "adv", "drop", "rel_drop", "auc")
        comp = compare(db, study, attack, eps0, metrics=ms)
        stem = f"compare_{attack}_eps{eps0:g}"
        for fmt, ext in (("md", "md"), ("latex", "tex"), ("csv", "csv"), ("json", "json")):
            write(f"{stem}.{ext}", export.render(comp, fmt))
        index += [
            export.comparison_markdown(comp, level=3),
            f"Files: [{stem}.tex]({stem}.tex), [{stem}.csv]({stem}.csv), [{stem}.json]({stem}.json)",
            "",
        ]
        curve = compare(db, study, attack, None, cols=("eps",), metrics=("adv",))
        stem = f"compare_{attack}_all_eps"
        for fmt, ext in (("md", "md"), ("latex", "tex"), ("csv", "csv")):
            write(f"{stem}.{ext}", export.render(curve, fmt))
        index += [export.comparison_markdown(curve, level=3)]
        stab = compare(db, study, attack, eps0, stability=True, baseline=None)
        write(f"stability_{attack}.md", export.render(stab, "md"))
        index += ["Stability across seeds:", "", export.comparison_markdown(stab, level=4)]

    index += ["## Paired tests", ""]
    for axis, ref in (("strategy", "full"), ("technique", "none")):
        values = list(dict.fromkeys(str(r[axis]) for r in recs))
        if ref not in values or len(values) < 2:
            continue
        for v in values:
            if v == ref:
                continue
            rows = ttest(db, axis, v, ref, "adv_acc", None, eps0, study, mcnemar=True, variance=True)
            if not rows:
                continue
            stem = f"ttest_{axis}_{v}_vs_{ref}"
            write(f"{stem}.md", export.render(rows, "md"))
            write(f"{stem}.tex", export.render(rows, "latex"))
            write(f"{stem}.json", export.render(rows, "json"))
            index += [f"### {axis}: {v} vs {ref} (adversarial accuracy, ε = {eps0:g})", "", export.render(rows, "md")]

    index += ["## Most confused class pairs under attack", ""]
    lines = []
    for attack in attacks:
        for g in confusions(db, study, attack, eps0, top=3):
            cfg = "/".join(str(g[a]) for a in cmp.CONFIG_AXES)
            pairs = ", ".join(f"{p['true_name']}→{p['pred_name']} ({p['count']}, {p['share']:.0%})" for p in g["pairs"])
            lines.append(f"| {cfg} | {attack} | {g['eps']:g} | {len(g['seeds'])} | {pairs or 'none'} |")
    if lines:
        text = "\n".join(
            [
                "| configuration | attack | ε | seeds | top pairs (count, share of true class) |",
                "| --- | --- | --- | --- | --- |",
                *lines,
                "",
            ]
        )
        write("confusions.md", text)
        index += [text]

    index += ["## Figures", ""]
    for kind, fk in figures.FIGURES.items():
        try:
            paths = plot(
                db, kind, out, study, None if kind == "curves" else attacks[0] if "pgd" not in attacks else "pgd"
            )
        except RttuiError as exc:
            index += [f"- {kind}: not drawn ({exc})"]
            continue
        files += paths
        png = next((p for p in paths if p.suffix == ".png"), paths[0])
        index += [f"### {fk.description}", "", f"![{kind}]({png.name})", ""]
    idx = write("index.md", "\n".join(index) + "\n")
    return {"index": idx, "files": files, "partial": bool(todo)}


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
            _refuse_if_running(s)
        cfg = json.loads(row["config"])
        source = {**src, "checkpoint": str(s.abs(src["checkpoint"]))}
        trained = {**row, "checkpoint": str(s.abs(row["checkpoint"]))}
        path = s.path
    from rttui.runner.layers import analyze_run

    records = analyze_run(cfg, source, trained, n_images, device)
    if store:
        with Store.open(path, write=True) as w:
            _refuse_if_running(w)
            w.set_layers(run_id, records)
            return w.layers(run_id)
    return [{**r, "run_id": run_id} for r in records]


def _refuse_if_running(s: Store) -> None:
    lock = s.runner_lock()
    if lock is not None:
        raise StoreError(
            f"{s.path}: study {lock['study']!r} is running in process {lock['pid']} on {lock['host']} and is the "
            "only writer; wait for it to finish, or pass --no-store to compute without storing"
        )


def depth_table(
    db: str | Path | None = None, study: str | None = None, attack: str | None = None, eps: float | None = None
) -> dict[str, Any]:
    """Clean and adversarial accuracy by freeze depth (mean ± std over seeds), per dataset, model and technique.

    Returns {"attack", "eps", "params", "rows"}; each row's "clean"/"adv" are `Stat`s (see analysis.depth).
    """
    from rttui.analysis.depth import depth_rows

    with open_store(db) as s:
        if study and study not in {r["name"] for r in s.studies()}:
            raise StoreError(f"study {study!r} is not in {s.path}; run `rttui status` to list its studies")
        return depth_rows(s.records(study), s.runs(study), attack, eps)


def depth_figure(table: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """Draw `depth_table`'s result: accuracy and robustness against freeze depth (PNG, SVG or PDF)."""
    from rttui.analysis.depth import depth_figure as draw

    return draw(table, path, title)


# ---- for the TUI: plain data about the vocabulary, study files, live runs -------------------------------


def catalog() -> dict[str, Any]:
    """The study vocabulary as plain data (names, help, parameters with defaults), read from the catalog.

    Faces build their pickers from this, so a strategy or attack added to the catalog shows up without UI code.
    """
    from rttui.study import catalog as cat

    def params(ps: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {
            k: {
                "default": p.default,
                "types": [t.__name__ for t in p.types],
                "help": p.help,
                "choices": list(p.choices),
                "low": p.low,
                "high": p.high,
                "nullable": p.nullable,
            }
            for k, p in ps.items()
        }

    def entries(reg: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {"name": e.name, "help": e.help, "implemented": e.implemented, "params": params(e.params)}
            for e in reg.values()
        ]

    return {
        "strategies": entries(cat.STRATEGIES),
        "techniques": entries(cat.TECHNIQUES),
        "attacks": entries(cat.attacks()),
        "datasets": [{"name": k, "help": v} for k, v in cat.DATASETS.items()],
        "sections": {
            "source": params(cat.SOURCE_KEYS),
            "target": params(cat.TARGET_KEYS),
            "train": params(cat.TRAIN_KEYS),
            "eval": params(cat.EVAL_KEYS),
        },
    }


def model_names() -> list[str]:
    """Every timm model name (imports timm, ~3 s: call it off the UI thread)."""
    from rttui.engine.models import known_model_names

    return sorted(known_model_names())


def study_toml(raw: dict[str, Any], base: str | None = None) -> str:
    """TOML text of a parsed study (`Study.raw`), so a face can load, edit and save a study file.

    With `base` (the file's text before the edit), only what changed is rewritten: comments, key order and
    layout of the rest survive (tomlkit).
    """
    import tomlkit

    raw = _drop_none(raw)
    if base is None:
        return tomlkit.dumps(raw)
    doc = tomlkit.parse(base)
    _merge(doc, raw)
    return tomlkit.dumps(doc)


def _merge(container: Any, new: dict[str, Any]) -> None:
    """Make a tomlkit container hold `new`, touching only the keys whose values differ."""
    for k in [k for k in container if k not in new]:
        del container[k]
    for k, v in new.items():
        old = container.get(k)
        plain = old.unwrap() if hasattr(old, "unwrap") else old
        if plain == v:
            continue
        if isinstance(v, dict) and isinstance(plain, dict) and hasattr(old, "items"):
            _merge(old, v)
        elif (
            isinstance(v, list)
            and isinstance(plain, list)
            and len(v) == len(plain)
            and all(isinstance(x, dict) for x in v)
            and all(hasattr(x, "items") for x in old)
        ):
            for o, n in zip(old, v, strict=True):
                _merge(o, n)
        else:
            container[k] = v


def _drop_none(obj: Any) -> Any:
    # TOML has no null; an unset key means "the default", which is what None means in a study.
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_drop_none(v) for v in obj]
    return obj


def save_study(raw: dict[str, Any], path: str | Path, base: str | None = None) -> Study:
    """Validate a study and write it as TOML (keeping `base`'s comments and layout where it is given);
    nothing is written when it does not validate."""
    p = Path(path)
    text = study_toml(raw, base)
    study = parse_study(text, str(p), p)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(p)
    return study


@dataclass(frozen=True)
class StudyRow:
    """One line of the studies list: a study file, a study in the database, or both."""

    name: str
    path: str  # the study file ("" when only the database knows it)
    in_db: bool
    runs: int  # runs the study implies (or holds in the database)
    done: int
    failed: int
    running: int
    state: str  # new | partial | running | done | failed | invalid
    error: str = ""


def list_studies(db: str | Path | None = None, studies_dir: str | Path | None = None) -> list[StudyRow]:
    """Study files in `studies_dir` and studies in the database, with their progress (read-only)."""
    from rttui.errors import RttuiError

    p = db_path(db)
    in_db: dict[str, dict[str, Any]] = {}
    runner = None
    states: dict[str, dict[str, str]] = {}
    if p.exists():
        with Store.open(p) as s:
            in_db = {r["name"]: r for r in s.studies()}
            runner = s.runner_lock()
            for name in in_db:
                states[name] = {r["id"]: r["state"] for r in s.runs(name)}
    rows: list[StudyRow] = []
    seen: set[str] = set()
    files = sorted(Path(studies_dir).glob("*.toml")) if studies_dir and Path(studies_dir).is_dir() else []
    for f in files:
        try:
            study = load_study(f)
        except RttuiError as exc:
            rows.append(StudyRow(f.stem, str(f), False, 0, 0, 0, 0, "invalid", str(exc).splitlines()[0]))
            continue
        ids = [r.id for r in make_plan(study).runs]
        # A run counts for this file when the database holds it, whichever study registered it.
        known = {}
        for st in states.values():
            known.update(st)
        rows.append(_study_row(study.name, str(f), study.name in in_db, ids, known, runner))
        seen.add(study.name)
    for name, r in in_db.items():
        if name not in seen:
            rows.append(_study_row(name, r["path"] or "", True, list(states[name]), states[name], runner))
    return rows


def _study_row(
    name: str, path: str, in_db: bool, ids: list[str], states: dict[str, str], runner: dict[str, Any] | None
) -> StudyRow:
    got = [states.get(i, "new") for i in ids]
    done, failed, running = got.count("done"), got.count("failed"), got.count("running")
    if runner and runner["study"] == name:
        state = "running"
    elif ids and done == len(ids):
        state = "done"
    elif failed:
        state = "failed"
    elif any(s != "new" for s in got):
        state = "partial"
    else:
        state = "new"
    return StudyRow(name, path, in_db, len(ids), done, failed, running, state)


def study_source(name: str, db: str | Path | None = None, path: str | Path | None = None) -> str:
    """The TOML of a study: its file when there is one, else the spec the database stored when it ran."""
    if path and Path(path).is_file():
        return Path(path).read_text(encoding="utf-8")
    with open_store(db) as s:
        spec = s.study_spec(name)
    if spec is None:
        raise StoreError(f"study {name!r} has no file and is not in {db_path(db)}; open a study file instead")
    return study_toml(spec)


def duplicate_study(text: str, new_name: str, dest: str | Path) -> Study:
    """Save a copy of a study under a new name (new runs; the original's results are untouched)."""
    from rttui.errors import StudyError

    study = parse_study(text)
    d = Path(dest)
    if d.exists():
        raise StudyError(f"{d}: file exists; pick another name for the copy")
    raw = dict(study.raw)
    raw["study"] = {**raw.get("study", {}), "name": new_name}
    return save_study(raw, d, base=text)


def delete_study(name: str, db: str | Path | None = None, path: str | Path | None = None) -> dict[str, Any]:
    """Delete a study's file and its database entry (runs shared with other studies are kept)."""
    out: dict[str, Any] = {"file": None, "runs_dropped": 0}
    p = db_path(db)
    if p.exists():
        with Store.open(p, write=True) as s:
            lock = s.runner_lock()
            if lock and lock["study"] == name:
                raise StoreError(f"study {name!r} is running in process {lock['pid']}; cancel it before deleting")
            out["runs_dropped"] = s.forget_study(name)
    if path and Path(path).is_file():
        Path(path).unlink()
        out["file"] = str(path)
    return out


def launch_study(path: str | Path, db: str | Path | None = None) -> dict[str, Any]:
    """Start `rttui run STUDY --db DB --quiet` as a detached process that outlives the caller (and its SSH).

    The caller watches the database; the process's output goes to `<db stem>.log` next to the database.
    """
    import os
    import subprocess
    import sys

    study = validate_study(path, check_models_=False)
    p = db_path(db).resolve()
    if p.exists():
        with Store.open(p) as s:
            lock = s.runner_lock()
        if lock:
            raise StoreError(
                f"{p}: study {lock['study']!r} is already running in process {lock['pid']}; wait for it or cancel it"
            )
    log = p.with_suffix(".log")
    cmd = [sys.executable, "-m", "rttui", "run", str(Path(path).resolve()), "--db", str(p), "--quiet"]
    with open(log, "ab") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n".encode())
        fh.flush()
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=fh, stderr=fh, start_new_session=True, env=dict(os.environ)
        )
    return {"pid": proc.pid, "log": str(log), "study": study.name, "db": str(p)}


def study_progress(db: str | Path | None, study: str) -> dict[str, Any]:
    """A live view of a study's runs for a monitor: states, epochs, losses, evaluations and per-eps accuracy.

    Reads only; cheap enough to poll every second on a study of hundreds of runs.
    """
    p = db_path(db)
    if not p.exists():
        return {"runner": None, "runs": [], "metrics": {}, "checks": []}
    with Store.open(p) as s:
        spec = s.study_spec(study)
        runs = s.runs(study)
        lock = s.runner_lock()
        evals = s.eval_counts(study)
        last = s.last_epochs(study)
        recs = s.records(study) if runs else []
        checks = [c for c in s.checks() if c["run_id"] in {r["id"] for r in runs}]
    totals: dict[str, tuple[int, int]] = {}
    if spec is not None:
        try:
            for rp in make_plan(parse_study(study_toml(spec), study)).runs:
                totals[rp.id] = (int(rp.config["train"]["epochs"]), len(rp.evals))
        except Exception:  # an old spec that no longer validates: show what the database has
            totals = {}
    metrics: dict[str, list[dict[str, Any]]] = {}
    for r in recs:
        metrics.setdefault(r["run_id"], []).append(
            {k: r[k] for k in ("attack", "eps", "clean_acc", "adv_acc", "n", "steps")}
        )
    out = []
    for r in runs:
        epochs_total, evals_total = totals.get(r["id"], (0, 0))
        ep = last.get(r["id"]) or {}
        ev_done = evals.get(r["id"], 0)
        work_total = epochs_total + evals_total
        work_done = (epochs_total if r["state"] in ("trained", "done") else (ep.get("epoch") or 0)) + ev_done
        out.append(
            {
                **{k: r[k] for k in ("id", "dataset", "model", "strategy", "technique", "seed", "state", "error")},
                "clean_acc": r["clean_acc"],
                "started": r["started"],
                "finished": r["finished"],
                "seconds": r["seconds"],
                "epoch": ep.get("epoch"),
                "epochs_total": epochs_total,
                "loss": ep.get("loss"),
                "epoch_seconds": ep.get("seconds"),
                "evals_done": ev_done,
                "evals_total": evals_total,
                "progress": (work_done / work_total) if work_total else (1.0 if r["state"] == "done" else 0.0),
            }
        )
    return {
        "runner": lock if lock and lock["study"] == study else None,
        "runs": out,
        "metrics": metrics,
        "checks": checks,
    }


def study_size(study: Study) -> dict[str, Any]:
    """How big a study is, for a face to show while it is edited: units of work and a rough cost.

    The cost is counted in work, not seconds (seconds depend on the machine): training epochs, and attack
    gradient steps per test image summed over every evaluation and epsilon.
    """
    plan = make_plan(study)
    src_epochs = sum(int(sp.config["train"]["epochs"]) for sp in plan.sources.values())
    run_epochs = sum(int(rp.config["train"]["epochs"]) for rp in plan.runs)
    steps = 0
    for e in plan.evals:
        per_eps = int(e.params.get("steps") or 1) * int(e.params.get("restarts") or 1)
        steps += per_eps * len(e.epsilons)
    return {
        "sources": len(plan.sources),
        "runs": len(plan.runs),
        "evaluations": len(plan.evals),
        "train_epochs": src_epochs + run_epochs,
        "attack_steps_per_image": steps,
        "models": sorted({m.name for b in study.blocks for m in b.models}),
    }


def frame(db: str | Path | None = None, study: str | None = None, kind: str = "records") -> Any:
    """A pandas DataFrame of stored results for notebooks (extra `rttui[pandas]`): `records` (one row per run,
    attack and eps), `samples` (one row per evaluated test image) or `epochs` (one row per training epoch), with
    typed columns and every parameter as a column. Read-only, like `export_records`."""
    from rttui.analysis.frame import check_kind, require_pandas, to_frame

    check_kind(kind)
    require_pandas()
    rows: list[dict[str, Any]]
    if kind == "records":
        rows = export_records(db, study)
    else:
        with open_store(db) as s:
            if study and study not in {r["name"] for r in s.studies()}:
                raise StoreError(f"study {study!r} is not in {s.path}; run `rttui status` to list its studies")
            rows = s.sample_records(study) if kind == "samples" else s.epoch_records(study)
    return to_frame(rows, kind)
