"""The facade for smoke runs: a study's whole path at tiny scale, in a database of its own, before a long run.

`run_smoke` checks each block's data and starting weights the way a real run does (`runner.preflight`), runs the
blocks that pass at smoke scale (`study.smoke.smoke_study`) into `<db stem>.smoke.db` next to the given database
(replaced on every smoke run; the given database is never opened, so never created), and reports one line per
failure naming its block, model, strategy, technique and attack. Smoke results are never mixed with real ones:
no table, export or comparison reads the smoke database unless it is named with --db.

Thin on purpose: the scale rules are `rttui.study.smoke`, the checks `rttui.runner.preflight`, the run itself
`run_study`. Nothing here imports torch at module level, or a face.
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
from pathlib import Path
from typing import Any

from rttui.api.runs import ensure_no_runner, run_study
from rttui.api.stores import db_path, smoke_db_path
from rttui.errors import EmptyDatabase, RttuiError, StoreError
from rttui.store import Store
from rttui.study import Study, make_plan
from rttui.study.smoke import SmokeScale, block_study, smoke_study, with_blocks

__all__ = ["CPU_BATCH_CAP", "run_smoke", "smoke_db_path"]

# Batch size cap of a smoke run on CPU: a CPU cannot test a GPU's memory, and a full batch of a 224-pixel model
# takes seconds per image there. On CUDA the study's own batch sizes run, so an out-of-memory batch shows.
CPU_BATCH_CAP = 2


def _on_gpu(device: str | None, devices: list[str] | None) -> bool:
    named = [*(devices or []), *([device] if device else [])]
    if named:
        return any(d.startswith("cuda") for d in named)
    import torch

    return torch.cuda.is_available()


def _clear(path: Path) -> None:
    """Remove an earlier smoke database and its checkpoints; refuse a file that is not an rttui database."""
    if path.exists():
        try:
            Store.open(path).close()
        except EmptyDatabase:
            pass  # no tables (a creation a full disk cut short): nothing of anyone's to keep
        except StoreError:
            raise StoreError(
                f"{path}: exists and is not an rttui smoke database; move it away or pass another --db"
            ) from None
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        p.unlink(missing_ok=True)
    shutil.rmtree(path.parent / f"{path.stem}.artifacts", ignore_errors=True)


def _refuse_unwritable(path: Path, exc: OSError | None = None) -> None:
    """One line instead of a traceback when the smoke database cannot be written where it goes (next to --db): a
    read-only mount (a results archive), a folder without write permission, no folder at all."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        why = f"cannot be made: the folder {folder} does not exist"
    elif (exc is not None and exc.errno == errno.EROFS) or (
        hasattr(os, "statvfs") and os.statvfs(folder).f_flag & os.ST_RDONLY
    ):
        why = "is on a read-only file system"
    elif exc is not None or not os.access(folder, os.W_OK):
        why = f"cannot be written ({exc.strerror if exc is not None else 'no write permission on its folder'})"
    else:
        return
    raise StoreError(
        f"{path}: the smoke database {why}; a smoke run writes it next to --db, so pass a --db in a writable folder "
        "(the real database is never touched)"
    )


def _first_line(exc: BaseException) -> str:
    msg = str(exc) if isinstance(exc, RttuiError) else f"{type(exc).__name__}: {exc}"
    return (msg.strip().splitlines() or [type(exc).__name__])[0]


def _preflight(smoke: Study) -> tuple[list[int], list[str]]:
    """Check each block's inputs on its own, so every broken block is named (not only the first)."""
    from rttui.runner.preflight import check_inputs

    ok, failures = [], []
    for b in smoke.blocks:
        try:
            check_inputs(make_plan(block_study(smoke, b.index)))
        except Exception as exc:  # a smoke run reports every problem; it never stops at the first
            failures.append(f"block {b.name}: inputs: {_first_line(exc)}")
        else:
            ok.append(b.index)
    return ok, failures


def _outcome(study: Study, path: Path) -> tuple[list[str], list[str], dict[str, int]]:
    """Per block: an 'ok' line, or one line per failed unit (block/model/strategy/technique[/attack]: error)."""
    lines: list[str] = []
    failures: list[str] = []
    counts = {"sources": 0, "runs": 0, "evaluations": 0}
    if not path.exists():
        return lines, failures, counts
    seen: set[str] = set()
    with Store.open(path) as s:
        for b in study.blocks:
            plan = make_plan(block_study(study, b.index))
            n0 = dict(counts)
            seconds = 0.0
            bad = len(failures)
            for sp in plan.sources.values():
                row = s.unit("source", sp.id) or {}
                if sp.id in seen:
                    continue
                seen.add(sp.id)
                if row.get("state") == "done":
                    counts["sources"] += 1
                    seconds += row.get("seconds") or 0.0
                elif row.get("state") == "failed":
                    m = sp.config["model"]["name"]
                    failures.append(f"block {b.name}: {m} source s{sp.config['seed']}: {row.get('error')}")
            for rp in plan.runs:
                if rp.id in seen:
                    continue
                seen.add(rp.id)
                row = s.unit("run", rp.id) or {}
                done = s.done_evals(rp.id)
                counts["evaluations"] += sum(e.id in done for e in rp.evals)
                seconds += row.get("seconds") or 0.0
                c = rp.config
                what = f"{c['model']['name']}/{c['strategy']['name']}/{c['technique']['name']}"
                failed = s.failed_evals(rp.id)
                mine = [e for e in rp.evals if e.id in failed]
                for e in mine:  # an evaluation that failed on its own: the run's training stands
                    failures.append(f"block {b.name}: {what} attack {e.attack}: {failed[e.id]}")
                if row.get("state") == "done" and not mine:
                    counts["runs"] += 1
                elif row.get("state") == "failed":
                    todo = [e for e in rp.evals if e.id not in done]
                    # Evaluations run in plan order after training: a trained run failed in its first missing one.
                    if row.get("checkpoint") and todo:
                        what += f" attack {todo[0].attack}"
                    failures.append(f"block {b.name}: {what}: {row.get('error')}")
            if len(failures) == bad:
                lines.append(
                    f"block {b.name}: ok: {counts['sources'] - n0['sources']} source(s), {counts['runs'] - n0['runs']}"
                    f" run(s), {counts['evaluations'] - n0['evaluations']} evaluation(s) in {seconds:.0f} s"
                )
    return lines, failures, counts


def run_smoke(
    study: Study,
    db: str | Path | None = None,
    listener: Any = None,
    device: str | None = None,
    stop: threading.Event | None = None,
    *,
    random_weights: bool = False,
    devices: list[str] | None = None,
    **run_opts: Any,
) -> dict[str, Any]:
    """Run `study` at smoke scale into `<db stem>.smoke.db` (see the module doc); `run_opts` (workers, executor,
    address, max_retries, slurm) go to `run_study` as they are.

    Returns `passed`, `units` (sources, runs and evaluations that finished), `failures` (one line each),
    `lines` (the summary, ending with "smoke passed: N units" or the failures), `smoke_db`, `cancelled`.
    """
    path = smoke_db_path(db)
    if path.resolve() == db_path(db).resolve():
        raise RttuiError(f"--db {path} is itself a smoke database; pass the real database's path")
    ensure_no_runner(path)
    _refuse_unwritable(path)
    try:
        _clear(path)
    except OSError as exc:
        _refuse_unwritable(path, exc)
    scale = SmokeScale(batch_cap=None if _on_gpu(device, devices) else CPU_BATCH_CAP, random_weights=random_weights)
    smoke = smoke_study(study, scale)
    ok, failures = _preflight(smoke)
    cancelled = False
    if ok:
        runnable = with_blocks(smoke, ok)
        result = run_study(
            runnable,
            path,
            listener,
            device,
            stop,
            check_data_first=False,  # done above, block by block
            devices=devices,
            **run_opts,
        )
        cancelled = bool(result["cancelled"])
        block_lines, unit_failures, counts = _outcome(runnable, path)
    else:
        block_lines, unit_failures, counts = [], [], {"sources": 0, "runs": 0, "evaluations": 0}
    failures += unit_failures
    units = sum(counts.values())
    lines = [f"smoke run of {study.name} ({len(study.blocks)} blocks): {scale.describe()}", *block_lines]
    where = f"results in {path}" if path.exists() else "nothing stored"
    if cancelled:
        lines.append(f"smoke cancelled after {units} units ({where})")
    elif failures:
        lines.append(f"smoke FAILED: {len(failures)} failure(s) in {len(study.blocks)} blocks ({where}):")
        lines += failures
    else:
        lines.append(
            f"smoke passed: {units} units ({counts['sources']} sources, {counts['runs']} runs, "
            f"{counts['evaluations']} evaluations) in {len(study.blocks)} blocks; {where}"
        )
    return {
        "passed": not failures and not cancelled,
        "cancelled": cancelled,
        "units": units,
        "failures": failures,
        "lines": lines,
        "smoke_db": str(path),
    }
