"""The SQLite store (sqlite-utils, WAL): one writer (the process running a study), any number of readers.

Read-only opens never create a file, and read a database on a read-only mount too. A file that is not a
database, or comes from a newer schema, is refused with a one-line error and left untouched; SQLite's own
errors (a damaged file, a full disk) become one line naming the file (`rttui.store.connection`).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from rttui.engine.attacks.names import variant_label
from rttui.errors import DatabaseDamaged, EmptyDatabase, StoreError
from rttui.store.connection import connect, damaged, is_damage, store_error

SCHEMA_VERSION = 4
# What each schema version added; opening an older file for writing applies every later step in one
# transaction (tables and columns, whose old rows read NULL, which readers show as "not recorded"; v4 also
# rewrites the stored checkpoint paths, which a read-only open reads in either form).
MIGRATIONS: dict[int, str] = {
    2: "environments table (provenance by env_id), env_id on sources/runs/evaluations, audits table",
    3: "study_evals table (which study planned which evaluation; rebuilt from the stored study plans on open), "
    "evaluations.error (a failed evaluation is that evaluation's state); per-epoch validation on epochs "
    "(val_clean_acc, val_adv_acc, val_n, val_seconds, probe), runs.selected_epoch; audits: reattacked, "
    "tolerance, escalated, est_adv_correct/est_lo/est_hi, escalation_seconds",
    4: "checkpoint paths of sources and runs relative to the database's <stem>.artifacts/ folder (they were relative "
    "to the database's folder, or absolute, so a copied or renamed pair lost its checkpoints)",
}

# Tables a file of each schema version has had since that version: one missing from a file that says it is of
# that version (or newer) was lost (damage, a `drop table` by hand), and recreating it empty would hide that.
# layers and workers came without a version bump, so a file may lack them; they are created when missing.
REQUIRED_SINCE: dict[str, int] = {
    **dict.fromkeys(
        ("meta", "studies", "sources", "runs", "study_runs", "epochs", "evaluations", "metrics", "samples"), 1
    ),
    **dict.fromkeys(("confusion", "checks", "requests", "locks"), 1),
    "environments": 2,
    "audits": 2,
    "study_evals": 3,
}

# Table -> (columns, primary key). Kept declarative so the schema is reviewable in one place.
TABLES: dict[str, tuple[dict[str, type], str | tuple[str, ...]]] = {
    "meta": ({"key": str, "value": str}, "key"),
    "studies": ({"name": str, "path": str, "spec": str, "created": float, "updated": float}, "name"),
    "sources": (
        {
            "id": str,
            "config": str,
            "model": str,
            "dataset": str,
            "seed": int,
            "state": str,
            "checkpoint": str,
            "sha256": str,
            "num_classes": int,
            "clean_acc": float,
            "n_test": int,
            "started": float,
            "finished": float,
            "seconds": float,
            "error": str,
            "info": str,
            "peak_gpu_mem": int,  # bytes the unit (training and evaluation) peaked at on a GPU; empty on a CPU
            # where the unit is inside its current phase (training steps, an attack's batches), for monitors
            "phase": str,
            "phase_done": int,
            "phase_total": int,
            "env_id": str,  # the environment that trained it (environments.env_id); NULL: not recorded
        },
        "id",
    ),
    "runs": (
        {
            "id": str,
            "source_id": str,
            "config": str,
            "dataset": str,
            "model": str,
            "strategy": str,
            "technique": str,
            "seed": int,
            "state": str,
            "checkpoint": str,
            "sha256": str,
            "num_classes": int,
            "clean_acc": float,
            "n_test": int,
            "started": float,
            "finished": float,
            "seconds": float,
            "error": str,
            "info": str,
            "peak_gpu_mem": int,  # bytes the unit (training and evaluation) peaked at on a GPU; empty on a CPU
            # where the unit is inside its current phase (training steps, an attack's batches), for monitors
            "phase": str,
            "phase_done": int,
            "phase_total": int,
            "env_id": str,  # the environment that trained it (environments.env_id); NULL: not recorded
            # The evaluation running now, per epsilon finished so far (JSON: eval_id, attack, label, n, epsilons,
            # points), for monitors only: cleared when the evaluation is stored (its metric rows are the result),
            # when the run ends, fails or is reset. Never read by analysis or exports: a half-done grid is no result.
            "live": str,
            # the training epoch whose weights were saved and attacked ([train] select); NULL: not recorded
            "selected_epoch": int,
        },
        "id",
    ),
    "study_runs": ({"study": str, "run_id": str}, ("study", "run_id")),
    # Which study planned which evaluation: what every reader of results goes through, so a study shows its own
    # evaluations only (a run shared by two studies carries both studies' attacks). An evaluation two studies plan
    # is computed once and belongs to both.
    "study_evals": ({"study": str, "eval_id": str, "run_id": str}, ("study", "eval_id")),
    "epochs": (
        {
            "unit_id": str,
            "kind": str,
            "epoch": int,
            "loss": float,
            "train_acc": float,
            "seconds": float,
            # per-epoch validation (rttui.engine.validation; NULL when the run has no validation split): clean
            # accuracy on the val_n validation images, robust accuracy under the probe (mean over its eps), the
            # probe's seconds, and the probe itself (JSON: attack, eps, norm, steps, n images, adv_acc per eps)
            "val_clean_acc": float,
            "val_adv_acc": float,
            "val_n": int,
            "val_seconds": float,
            "probe": str,
        },
        ("unit_id", "epoch"),
    ),
    "evaluations": (
        {
            "id": str,
            "run_id": str,
            "attack": str,
            "params": str,
            "epsilons": str,
            "mode": str,
            "state": str,
            "n": int,
            "seconds": float,
            "created": float,
            # transfer attacks: the surrogate unit (source or run id), its checkpoint's SHA-256, and the
            # crafted-image file key per eps (JSON; files under <artifacts>/transfer/)
            "surrogate_id": str,
            "surrogate_sha256": str,
            "crafted": str,
            "env_id": str,  # the environment that ran it; NULL: not recorded
            "error": str,  # state 'failed': the first line of what went wrong (the run's training is untouched)
        },
        "id",
    ),
    # One row per distinct environment a unit ran in (rttui.runner.provenance.collect(), JSON).
    "environments": ({"env_id": str, "env": str, "first_seen": float}, "env_id"),
    # The attack-strength audit of an evaluation, per eps (rttui.engine.attacks.audit). Its own table, so the
    # audited evaluation's id and rows are what they would be without it.
    "audits": (
        {
            "eval_id": str,
            "eps": float,
            "run_id": str,
            "n": int,  # the planned subsample of survivors
            "survivors": int,  # images that survived the audited attack at eps (its robust count)
            "survived_attack": int,
            "survived_stronger": int,  # of the `reattacked`, those the stronger attack left standing
            "threshold": int,  # most of `reattacked` the stronger attack may fool without a flag
            "flagged": int,
            "complete": int,  # the planned subsample got its verdicts (not stopped early)
            "fooled_ids": str,
            "stronger": str,
            "seconds": float,  # the subsample's re-attack
            # Added in v3 (NULL on older rows: not recorded). reattacked: survivors the stronger attack gave a
            # verdict (the denominator of what it found); tolerance: images of overstatement allowed, max(3, 1% of
            # n); escalated: 1 when every survivor was re-attacked because the eps was flagged; est_*: the stronger
            # attack's robust count at eps in test images (not accuracy) with a 95% Clopper-Pearson interval, all
            # equal when every survivor got a verdict; escalation_seconds: what escalation added to `seconds`.
            "reattacked": int,
            "tolerance": float,
            "escalated": int,
            "est_adv_correct": float,
            "est_lo": float,
            "est_hi": float,
            "escalation_seconds": float,
        },
        ("eval_id", "eps"),
    ),
    "metrics": (
        {
            "eval_id": str,
            "eps": float,
            "run_id": str,
            "attack": str,
            "norm": str,
            "steps": int,
            "step_size": float,
            "restarts": int,
            "random_start": int,
            "n": int,
            "n_clean_correct": int,
            "n_adv_correct": int,
            "clean_acc": float,
            "adv_acc": float,
            "mode": str,
            "precision": str,
            "path": str,
            "max_perturbation": float,
        },
        ("eval_id", "eps"),
    ),
    "samples": (
        {
            "eval_id": str,
            "idx": int,
            "run_id": str,
            "label": int,
            "clean_pred": int,
            "clean_correct": int,
            "fooled_mask": int,
            "first_fooled_eps": float,
            "min_norm": float,
        },
        ("eval_id", "idx"),
    ),
    "confusion": (
        {"eval_id": str, "eps": float, "label": int, "pred": int, "count": int},
        ("eval_id", "eps", "label", "pred"),
    ),
    "checks": (
        {"run_id": str, "eval_id": str, "check": str, "level": str, "message": str},
        ("run_id", "eval_id", "check"),
    ),
    "requests": (
        {"id": int, "kind": str, "target": str, "created": float, "applied": float},
        "id",
    ),
    "layers": (
        {
            "run_id": str,
            "group_idx": int,
            "group_name": str,
            "module": str,
            "n_params": int,
            "grad_norm": float,
            "grad_share": float,
            "grad_norm_after": float,
            "cka": float,
            "frozen": int,
            "n_images": int,
            "batch": str,
            "created": float,
        },
        ("run_id", "group_idx"),
    ),
    "locks": ({"name": str, "pid": int, "host": str, "started": float, "study": str}, "name"),
    # The running runner's workers (one row per worker slot: its process, host and device) and the unit each is
    # working on now (empty between units), for monitors: a GPU row names the run on it. Emptied when a runner
    # starts and ends; never a result.
    "workers": (
        {
            "slot": int,
            "pid": int,
            "host": str,
            "device": str,
            "kind": str,
            "unit_id": str,
            "since": float,
        },
        "slot",
    ),
}
INDEXES = [
    ("runs", ["state"]),
    ("metrics", ["run_id"]),
    ("evaluations", ["run_id"]),
    ("samples", ["run_id"]),
    ("study_runs", ["run_id"]),
    ("study_evals", ["eval_id"]),
    ("study_evals", ["run_id"]),
    ("audits", ["run_id"]),
]


def _artifacts_tail(p: Path) -> Path | None:
    """The part of an old-style checkpoint path after its `<stem>.artifacts` folder; None for any other path."""
    parts = p.parts
    for i in range(len(parts) - 2, -1, -1):
        if parts[i].endswith(".artifacts"):
            return Path(*parts[i + 1 :])
    return None


def default_db_path() -> Path:
    return Path(os.environ.get("RTTUI_DB") or "rttui.db")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _busy(path: Path, study: str, pid: int, host: str, fix: str) -> str:
    """The one line every refusal to write beside a live runner prints."""
    return (
        f"{path}: a runner is already running: study {study!r} is running in process {pid} on {host} and is the "
        f"only writer; {fix}"
    )


# (study name, stored spec) -> the (eval id, run id) pairs its plan holds, or None when the spec no longer plans
# (an old study the catalog has moved past). Set by rttui.api: the store cannot plan a study itself (the study
# package is its sibling), and a database written before membership was recorded needs it rebuilt on open.
MembershipPlanner = Callable[[str, dict[str, Any]], "list[tuple[str, str]] | None"]


class Store:
    """A study database. Use `Store.open(path, write=...)`; writes go through the runner's coordinator."""

    membership_planner: ClassVar[MembershipPlanner | None] = None
    # Readers run SQLite's quick_check when they open the file (set by the CLI for its commands): a damaged page
    # is then found whichever table it is in, not only when a query happens to step onto it. The TUI, which
    # opens the file every second or so, leaves it off.
    check_reads: ClassVar[bool] = False

    def __init__(self, conn: sqlite3.Connection, path: Path, write: bool) -> None:
        import sqlite_utils

        self.path = path
        self.write = write
        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        self.schema_version = SCHEMA_VERSION  # the file's, once opened (older files read NULL in newer columns)

    # ---- opening -------------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path | None = None, write: bool = False, check: bool | None = None) -> Store:
        """Open a database; `check` (default: `check_reads` for readers) runs quick_check on a read-only open."""
        p = Path(path) if path is not None else default_db_path()
        if p.is_dir():
            raise StoreError(f"{p} is a folder, not a database; name a file such as {p / 'rttui.db'}")
        if not write and not p.exists():
            raise StoreError(f"{p}: no such database; run a study first (rttui run STUDY --db {p}) or pass --db")
        if write and p.exists() and not os.access(p, os.W_OK):
            if hasattr(os, "statvfs") and os.statvfs(p).f_flag & os.ST_RDONLY:
                raise StoreError(
                    f"{p}: database is on a read-only file system; reading works, to run or change it copy it "
                    "somewhere writable and pass that --db"
                )
            raise StoreError(f"{p}: database is read-only; fix its permissions or pass another --db")
        if write and not p.exists() and not os.access(p.parent if str(p.parent) else Path("."), os.W_OK):
            raise StoreError(f"{p.parent}: directory is not writable; pass a --db in a writable directory")
        conn = connect(p, write)
        try:
            store = cls(conn, p, write)
            store._check_or_init()
            if not write and (cls.check_reads if check is None else check):
                problems = store.integrity_problems()
                if problems:
                    raise DatabaseDamaged(damaged(p, f"quick_check: {_summary(problems)}"))
            store._ensure_membership()
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.DatabaseError):
                raise store_error(exc, p) or StoreError(
                    f"{p}: not a usable rttui database ({exc}); pass the right --db or move the file away"
                ) from None
            raise
        return store

    def _check_or_init(self) -> None:
        tables = set(self.db.table_names())
        if "meta" in tables:
            row = self.conn.execute("select value from meta where key = 'schema_version'").fetchone()
            if row is None:
                raise StoreError(f"{self.path}: database has no schema version; it was not written by rttui")
            try:
                version = int(row[0])
            except (TypeError, ValueError):
                raise DatabaseDamaged(
                    f"{self.path}: database schema version {row[0]!r} is not a number; the file is damaged or was "
                    "not written by rttui: restore it from a backup or pass another --db"
                ) from None
            self.schema_version = version
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: database schema v{version} is newer than this rttui (v{SCHEMA_VERSION}); "
                    "upgrade rttui (pip install -U rttui)"
                )
            lost = sorted(t for t, since in REQUIRED_SINCE.items() if since <= version and t not in tables)
            if lost:
                raise DatabaseDamaged(
                    damaged(
                        self.path,
                        f"no such table: {', '.join(lost)}, which a schema v{version} file has; "
                        "it was dropped or its page lost",
                    )
                )
        else:
            self.schema_version = SCHEMA_VERSION
        if tables and "meta" not in tables:
            raise StoreError(f"{self.path}: SQLite file holds other tables, not an rttui database; pass another --db")
        if not tables and not self.write:
            raise EmptyDatabase(f"{self.path}: empty database; run a study into it first")
        if self.write:
            self.conn.execute("pragma synchronous = normal")
            # Migration: columns added since the file was written (old rows read NULL there).
            missing = [
                (name, col, typ)
                for name, (cols, _) in TABLES.items()
                if name in tables
                for have in [self.db[name].columns_dict]
                for col, typ in cols.items()
                if col not in have
            ]
            if set(TABLES) <= tables and not missing and self.schema_version == SCHEMA_VERSION:
                return  # nothing to create: the runner lock is the first write (a second runner is refused at once)
            self.db.enable_wal()
            # One transaction for every table, index and the version row: a creation that fails (a full disk)
            # leaves no table behind, and the next open starts again from an empty file. Python's sqlite3 runs
            # CREATE TABLE outside any transaction unless one was begun explicitly, hence atomic() (BEGIN).
            with self.db.atomic():
                for name, (cols, pk) in TABLES.items():
                    if name not in tables:
                        self.db[name].create(cols, pk=pk, not_null=None)
                for name, col, typ in missing:
                    self.db[name].add_column(col, typ)
                for table, cols in INDEXES:
                    self.db[table].create_index(cols, if_not_exists=True)
                for step in range(self.schema_version + 1, SCHEMA_VERSION + 1):
                    if step == 4:
                        self._checkpoints_relative_to_artifacts()
                    note = f"{time.time():.0f}: {MIGRATIONS[step]}"
                    self.db["meta"].upsert({"key": f"migration_{step}", "value": note}, pk="key")
                self.db["meta"].upsert({"key": "schema_version", "value": str(SCHEMA_VERSION)}, pk="key")
                self.schema_version = SCHEMA_VERSION

    def _checkpoints_relative_to_artifacts(self) -> None:
        """Migration to v4, inside the creation's transaction: every stored checkpoint path as `rel` writes it now."""
        for table in ("sources", "runs"):
            rows = self.conn.execute(f"select id, checkpoint from {table} where coalesce(checkpoint, '') != ''")
            for uid, old in rows.fetchall():
                was = Path(old)
                if not was.is_absolute() and _artifacts_tail(was) is None:
                    was = self.path.parent.resolve() / was  # relative to the database's folder, as v1-v3 wrote it
                new = self.rel(self.abs(str(was)))
                if new != old:
                    self.conn.execute(f"update {table} set checkpoint = ? where id = ?", (new, uid))

    def close(self) -> None:
        self.conn.close()

    def integrity_problems(self, full: bool = False, limit: int = 100) -> list[str]:
        """What SQLite's own check finds wrong with the file, [] when it is sound.

        `quick_check` reads every page once (O(file size)) and checks the b-trees; `integrity_check` (full)
        also checks that every index matches its table, which costs more. The raw sqlite3 call keeps SQLite's
        own error: a page too broken to check is a finding; a disk or lock error is raised as one line.
        """
        pragma = "integrity_check" if full else "quick_check"
        try:
            rows = [str(r[0]) for r in sqlite3.Connection.execute(self.conn, f"pragma {pragma}({limit})").fetchall()]
            if rows == ["ok"] and full:
                rows = self._value_problems(limit) or rows
        except sqlite3.DatabaseError as exc:
            if is_damage(exc):
                return [str(exc)]
            raise store_error(exc, self.path) or exc from exc
        return [] if rows == ["ok"] else rows

    def _value_problems(self, limit: int) -> list[str]:
        """What SQLite's checks cannot see (they check pages and indexes, never values): TEXT that is not UTF-8
        (rttui writes only UTF-8; a flipped byte can make it undecodable) and per-sample outcomes whose
        `clean_correct` disagrees with their label and prediction (a flipped byte in an outcome). One pass over
        the values, about as long as integrity_check."""
        problems: list[str] = []
        tables = set(self.db.table_names())
        raw = sqlite3.Connection.execute
        factory = self.conn.text_factory
        self.conn.text_factory = bytes
        try:
            for table, (cols, _) in TABLES.items():
                text = [c for c, t in cols.items() if t is str and table in tables]
                for col in text:
                    sql = f'select rowid, "{col}" from "{table}" where typeof("{col}") = \'text\''
                    for rowid, value in raw(self.conn, sql):
                        try:
                            value.decode("utf-8")
                        except UnicodeDecodeError:
                            problems.append(f"{table}.{col} of row {rowid} is not UTF-8 text")
                            if len(problems) >= limit:
                                return problems
        finally:
            self.conn.text_factory = factory
        if "samples" in tables:
            bad = raw(
                self.conn,
                "select count(*), min(rowid) from samples where clean_correct is not (label = clean_pred)",
            ).fetchone()
            if bad[0]:
                problems.append(
                    f"samples: {bad[0]} outcome(s) whose clean_correct disagrees with label and clean_pred "
                    f"(first: row {bad[1]})"
                )
        return problems[:limit]

    def check(self, full: bool = False) -> str:
        """The file checked by SQLite: a one-line verdict, or DatabaseDamaged naming the damage and the fix."""
        how = "integrity_check" if full else "quick_check"
        t0 = time.perf_counter()
        problems = self.integrity_problems(full)
        if problems:
            raise DatabaseDamaged(damaged(self.path, f"{how}: {_summary(problems)}", checked=True))
        mib = self.path.stat().st_size / 2**20
        return f"{self.path}: no damage found ({how} of {mib:.1f} MiB in {time.perf_counter() - t0:.2f} s)"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def artifacts(self) -> Path:
        """Checkpoints live next to the database: <stem>.artifacts/."""
        return (self.path.parent / f"{self.path.stem}.artifacts").resolve()

    def rel(self, path: str | Path) -> str:
        """A checkpoint path as stored: relative to the database's artifacts folder, so the pair can be moved,
        renamed or mounted elsewhere together (a path outside that folder stays absolute)."""
        p = Path(path).resolve()
        try:
            return str(p.relative_to(self.artifacts))
        except ValueError:
            return str(p)

    def abs(self, path: str) -> Path:
        """Where a stored checkpoint path is now. Rows written before v4 (a read-only file is never migrated) name
        the artifacts folder they were written under (`q.artifacts/...`, relative to the database's folder, or
        absolute): what follows that folder is read from this database's own, so a copied pair reads its copy."""
        p = Path(path)
        inside = _artifacts_tail(p)
        if inside is not None:
            return self.artifacts / inside
        return p if p.is_absolute() else self.artifacts / p

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.conn:
            yield

    # ---- lock: one runner per database -----------------------------------------------------------
    def acquire_lock(self, study: str) -> None:
        """Refuse a second runner at once; a lock left by a dead process is taken over.

        A runner taking the lock also checks the file (`check(full=True)`: integrity_check and the values, before
        anything is written), so it never adds results to a damaged database: the damage would grow, and a byte
        flipped inside a row passes quick_check.
        """
        host = socket.gethostname()
        with self.conn:
            # BEGIN IMMEDIATE takes the write lock before the read, so two runners cannot both see "free".
            self.conn.execute("begin immediate")
            row = self.conn.execute("select pid, host, study from locks where name = 'runner'").fetchone()
            held = False
            if row:
                pid, lhost, lstudy = row
                held = lhost == host and pid == os.getpid()
                if not held and (lhost != host or _pid_alive(pid)):
                    raise StoreError(
                        _busy(self.path, lstudy, pid, lhost, "wait for it to finish, or stop that process")
                    )
            if not held:
                # damaged: raises, and the transaction ends with nothing written. The full check: a flipped byte
                # in a row passes quick_check, and a runner must not add results beside it.
                self.check(full=True)
            self.db["locks"].upsert(
                {"name": "runner", "pid": os.getpid(), "host": host, "started": time.time(), "study": study},
                pk="name",
            )

    def release_lock(self) -> None:
        """Give the runner lock back. Never raises: on a full or damaged disk the row may stay, and the next
        runner takes over a lock whose process is gone (so an error here would only hide the first one)."""
        try:
            with self.conn:
                self.conn.execute("delete from locks where name = 'runner' and pid = ?", (os.getpid(),))
        except (StoreError, sqlite3.Error):
            pass

    def runner_lock(self) -> dict[str, Any] | None:
        """The live runner's lock row, or None when no live runner holds the database."""
        row = self.conn.execute("select pid, host, started, study from locks where name = 'runner'").fetchone()
        if not row:
            return None
        pid, host, started, study = row
        if host == socket.gethostname() and not _pid_alive(pid):
            return None
        return {"pid": pid, "host": host, "started": started, "study": study}

    def refuse_if_running(self, fix: str, *, study: str | None = None) -> None:
        """Raise StoreError (one line ending in `fix`) when a live runner other than this process holds the
        database (with `study`: only when it runs that study). The one answer to "is a runner holding this
        database" for every command that must not write beside it."""
        lock = self.runner_lock()
        if lock is None or (study is not None and lock["study"] != study):
            return
        if lock["pid"] == os.getpid() and lock["host"] == socket.gethostname():
            return
        raise StoreError(_busy(self.path, lock["study"], lock["pid"], lock["host"], fix))

    def reset_running_units(self) -> None:
        """After a cancel or a crash of the runner: units left 'running' go back to 'pending' (a run with a
        checkpoint to 'trained'); their partial work is not trusted."""
        with self.transaction():
            self.conn.execute("update sources set state = 'pending' where state = 'running'")
            self.conn.execute(
                "update runs set state = case when coalesce(checkpoint, '') != '' then 'trained' else 'pending' end, "
                "live = null where state = 'running'"
            )

    # ---- writes (the coordinator's) --------------------------------------------------------------
    def register_study(
        self,
        name: str,
        path: str | None,
        spec: dict[str, Any],
        run_ids: Iterable[str],
        evals: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Record a study as its file says now: its runs and the evaluations it plans ((eval id, run id) pairs),
        which are what its tables show."""
        now = time.time()
        evals = list(evals)
        with self.conn:
            old = self.conn.execute("select created from studies where name = ?", (name,)).fetchone()
            self.db["studies"].upsert(
                {
                    "name": name,
                    "path": path or "",
                    "spec": json.dumps(spec, default=str),
                    "created": old[0] if old else now,
                    "updated": now,
                },
                pk="name",
            )
            # The study is what its file says now: an edited cell is a new run; the old run stays in the database
            # (status, export without --study) but no longer counts for this study's tables.
            self.conn.execute("delete from study_runs where study = ?", (name,))
            self.db["study_runs"].upsert_all([{"study": name, "run_id": r} for r in run_ids], pk=("study", "run_id"))
            self._set_membership(name, evals)

    def _set_membership(self, study: str, evals: list[tuple[str, str]]) -> None:
        """Replace the evaluations a study planned, inside the caller's transaction."""
        self.conn.execute("delete from study_evals where study = ?", (study,))
        self.conn.executemany(
            "insert or replace into study_evals (study, eval_id, run_id) values (?, ?, ?)",
            [(study, e, r) for e, r in evals],
        )

    def set_membership(self, plans: dict[str, list[tuple[str, str]]]) -> None:
        """Record which evaluations each study planned (study -> (eval id, run id) pairs), in one transaction.

        Used to rebuild membership for a database written before it was recorded. On a read-only database the
        rows go to a TEMP table of this connection (the file is never written): readers see the same membership
        and the file stays as it was."""
        if (
            not self.write
            and not self.conn.execute("select 1 from sqlite_temp_master where name = 'study_evals'").fetchone()
        ):
            # The TEMP table shadows the file's (if any) for this connection: it starts as a copy of it.
            self.conn.execute(
                "create temp table study_evals (study text, eval_id text, run_id text, primary key (study, eval_id))"
            )
            if "study_evals" in self.db.table_names():
                self.conn.execute("insert into temp.study_evals select study, eval_id, run_id from main.study_evals")
        with self.conn:
            for study, evals in plans.items():
                self._set_membership(study, evals)

    def _ensure_membership(self) -> None:
        """Studies registered before membership was recorded get it rebuilt from their stored plans (written when
        the file is opened for writing, kept on this connection only when it is read-only). A spec that no longer
        plans keeps the old reading: every stored evaluation of the study's runs."""
        missing = self.studies_without_membership()
        if not missing:
            return
        plans: dict[str, list[tuple[str, str]]] = {}
        for name in missing:
            spec = self.study_spec(name)
            planner = type(self).membership_planner
            planned = planner(name, spec) if planner is not None and spec else None
            if planned is None:
                planned = [
                    (r["id"], r["run_id"])
                    for r in self.rows(
                        "select e.id, e.run_id from evaluations e join study_runs sr on sr.run_id = e.run_id "
                        "where sr.study = ?",
                        (name,),
                    )
                ]
            plans[name] = planned
        self.set_membership(plans)

    def studies_without_membership(self) -> list[str]:
        """Studies registered before membership was recorded (no planned evaluation stored for them)."""
        have = "study_evals" in self.db.table_names() or bool(
            self.conn.execute("select 1 from sqlite_temp_master where name = 'study_evals'").fetchone()
        )
        if not have:
            return [r["name"] for r in self.rows("select name from studies order by name")]
        return [
            r["name"]
            for r in self.rows(
                "select name from studies where name not in (select distinct study from study_evals) order by name"
            )
        ]

    def ensure_source(self, sid: str, config: dict[str, Any]) -> None:
        with self.conn:
            if not self.conn.execute("select 1 from sources where id = ?", (sid,)).fetchone():
                self.db["sources"].insert(
                    {
                        "id": sid,
                        "config": json.dumps(config, sort_keys=True),
                        "model": config["model"]["name"],
                        "dataset": config["data"]["dataset"],
                        "seed": config.get("seed"),
                        "state": "pending",
                    }
                )

    def ensure_run(self, rid: str, config: dict[str, Any]) -> None:
        with self.conn:
            if not self.conn.execute("select 1 from runs where id = ?", (rid,)).fetchone():
                self.db["runs"].insert(
                    {
                        "id": rid,
                        "source_id": config["source_id"],
                        "config": json.dumps(config, sort_keys=True),
                        "dataset": config["target"]["dataset"],
                        "model": config["model"]["name"],
                        "strategy": config["strategy"]["name"],
                        "technique": config["technique"]["name"],
                        "seed": config["seed"],
                        "state": "pending",
                    }
                )

    def update_unit(self, kind: str, uid: str, **fields: Any) -> None:
        table = {"source": "sources", "run": "runs"}[kind]
        if "info" in fields and not isinstance(fields["info"], str):
            fields["info"] = json.dumps(fields["info"], default=str)
        with self.conn:
            self.db[table].update(uid, fields)

    def reset_epochs(self, uid: str) -> None:
        with self.conn:
            self.conn.execute("delete from epochs where unit_id = ?", (uid,))

    def restart_epochs(self, uid: str, kind: str, from_epoch: int, history: list[dict[str, Any]]) -> None:
        """Training (re)starts after `from_epoch`: later epochs go, the restored history is (re)written."""
        with self.conn:
            self.conn.execute("delete from epochs where unit_id = ? and epoch > ?", (uid, from_epoch))
            if history:
                self.db["epochs"].upsert_all(
                    [{"unit_id": uid, "kind": kind, **r} for r in history if r["epoch"] <= from_epoch],
                    pk=("unit_id", "epoch"),
                )

    def set_live(self, run_id: str, live: dict[str, Any] | None) -> None:
        """The evaluation a run is working through, per epsilon finished so far (None clears it): for monitors
        (see the `live` column); one write per finished epsilon at most."""
        with self.conn:
            self.conn.execute(
                "update runs set live = ? where id = ?", (json.dumps(live) if live is not None else None, run_id)
            )

    def set_worker(self, slot: int, pid: int, device: str) -> None:
        """A worker is ready (a new process in that slot: whatever the slot worked on before is gone)."""
        row = {"slot": slot, "pid": pid, "host": socket.gethostname(), "device": device}
        with self.conn:
            self.db["workers"].upsert({**row, "kind": None, "unit_id": None, "since": None}, pk="slot")

    def worker_unit(self, slot: int, kind: str | None, uid: str | None) -> None:
        """What a worker works on now (None: nothing). A slot no worker row holds (a Ray task, a SLURM job: their
        processes are not this runner's workers) is left alone."""
        with self.conn:
            self.conn.execute(
                "update workers set kind = ?, unit_id = ?, since = ? where slot = ?",
                (kind, uid, time.time() if uid else None, slot),
            )

    def unit_ended(self, uid: str) -> None:
        """No worker works on this unit any more (it finished, failed or went back to the queue)."""
        with self.conn:
            self.conn.execute("update workers set kind = null, unit_id = null, since = null where unit_id = ?", (uid,))

    def clear_workers(self) -> None:
        """A runner starts or ends: the workers of an earlier one are gone."""
        with self.conn:
            self.conn.execute("delete from workers")

    def merge_info(self, kind: str, uid: str, extra: dict[str, Any]) -> None:
        """Add keys to a unit's `info` JSON without losing what is there."""
        row = self.unit(kind, uid) or {}
        info = self._json(row.get("info") or "{}", f"the info of {kind} {uid}")
        self.update_unit(kind, uid, info={**info, **extra})

    # ---- requests: the small writes other processes may make while a runner holds the database ---------
    def add_request(self, kind: str, target: str = "") -> int:
        with self.conn:
            cur = self.conn.execute(
                "insert into requests (kind, target, created) values (?, ?, ?)", (kind, target, time.time())
            )
            return int(cur.lastrowid or 0)

    def pending_requests(self) -> list[dict[str, Any]]:
        return self.rows("select id, kind, target, created from requests where applied is null order by id")

    def mark_request_applied(self, request_id: int) -> None:
        with self.conn:
            self.conn.execute("update requests set applied = ? where id = ?", (time.time(), request_id))

    def add_epoch(self, uid: str, kind: str, rec: dict[str, Any]) -> None:
        with self.conn:
            self.db["epochs"].upsert({"unit_id": uid, "kind": kind, **rec}, pk=("unit_id", "epoch"))

    def add_evaluation(
        self,
        eval_row: dict[str, Any],
        metrics: list[dict[str, Any]],
        samples: list[dict[str, Any]],
        confusion: list[dict[str, Any]],
        checks: list[dict[str, Any]],
        audit: dict[str, Any] | None = None,
    ) -> None:
        """Store one evaluation atomically (with its audit, when it has one): all there or not at all."""
        eid, rid = eval_row["id"], eval_row["run_id"]
        with self.conn:
            for t in ("metrics", "samples", "confusion", "audits"):
                self.conn.execute(f"delete from {t} where eval_id = ?", (eid,))
            self.conn.execute("delete from checks where eval_id = ?", (eid,))
            if self.has_column("runs", "live"):  # the grid streamed so far is superseded by the stored one
                self.conn.execute("update runs set live = null where id = ?", (rid,))
            self.db["evaluations"].upsert(
                {
                    **eval_row,
                    "params": json.dumps(eval_row["params"], sort_keys=True),
                    "epsilons": json.dumps(eval_row["epsilons"]),
                    "state": "done",
                    "error": None,
                    "created": time.time(),
                },
                pk="id",
            )
            self.db["metrics"].insert_all(
                [{**m, "eval_id": eid, "run_id": rid, "random_start": int(m["random_start"])} for m in metrics]
            )
            self.db["samples"].insert_all([{**s, "eval_id": eid, "run_id": rid} for s in samples], batch_size=1000)
            self.db["confusion"].insert_all([{**c, "eval_id": eid} for c in confusion], batch_size=1000)
            self.db["checks"].insert_all([{**c, "eval_id": eid, "run_id": rid} for c in checks])
            self._insert_audit(eid, rid, audit)

    def add_environment(self, env: dict[str, Any] | None) -> str | None:
        """Keep one row per distinct environment (its env_id); returns the env_id to store on a unit."""
        if not env or not env.get("env_id"):
            return None
        eid = str(env["env_id"])
        with self.conn:
            if not self.conn.execute("select 1 from environments where env_id = ?", (eid,)).fetchone():
                self.db["environments"].insert(
                    {"env_id": eid, "env": json.dumps(env, sort_keys=True, default=str), "first_seen": time.time()}
                )
        return eid

    def _insert_audit(self, eval_id: str, run_id: str, audit: dict[str, Any] | None) -> None:
        """An evaluation's audit rows (one per eps; none when the audit did not run), inside the caller's
        transaction (its old rows are deleted with the evaluation's)."""
        rows = [
            {
                "eval_id": eval_id,
                "eps": r["eps"],
                "run_id": run_id,
                "n": r["n"],
                "survivors": r["survivors"],
                "survived_attack": r["survived_attack"],
                "survived_stronger": r["survived_stronger"],
                "threshold": r["threshold"],
                "flagged": int(bool(r["flagged"])),
                "complete": int(bool(r["complete"])),
                "fooled_ids": json.dumps(r.get("fooled_ids", [])),
                "stronger": json.dumps({**audit["stronger"], "settings": audit["settings"]}, sort_keys=True),
                "seconds": r["seconds"],
                **{k: r.get(k) for k in ("reattacked", "tolerance", "est_adv_correct", "est_lo", "est_hi")},
                "escalated": None if r.get("escalated") is None else int(bool(r["escalated"])),
                "escalation_seconds": r.get("escalation_seconds"),
            }
            for r in (audit or {}).get("per_eps", [])
        ]
        if rows:
            self.db["audits"].insert_all(rows)

    def add_checks(self, run_id: str, checks: list[dict[str, Any]]) -> None:
        """A run's own checks, replacing the stored ones: run-level (eval_id empty) and cross-attack checks of a
        pair of its evaluations (eval_id "id+id", every pair the run holds)."""
        with self.conn:
            self.conn.execute("delete from checks where run_id = ? and (eval_id = '' or eval_id like '%+%')", (run_id,))
            self.db["checks"].upsert_all(
                [{"eval_id": "", **c, "run_id": run_id} for c in checks], pk=("run_id", "eval_id", "check")
            )

    def fail_evaluation(
        self, run_id: str, eval_id: str, attack: str, params: dict[str, Any], epsilons: list[float], error: str
    ) -> None:
        """An evaluation failed: its row says so (state 'failed', the error); no result of it is kept, and the run
        it belongs to is not touched. A stored (done) evaluation is never overwritten by a failure."""
        with self.conn:
            row = self.conn.execute("select state from evaluations where id = ?", (eval_id,)).fetchone()
            if row and row[0] == "done":
                return
            if self.has_column("runs", "live"):
                self.conn.execute("update runs set live = null where id = ?", (run_id,))
            self.db["evaluations"].upsert(
                {
                    "id": eval_id,
                    "run_id": run_id,
                    "attack": attack,
                    "params": json.dumps(params, sort_keys=True, default=str),
                    "epsilons": json.dumps(epsilons),
                    "state": "failed",
                    "error": error,
                    "created": time.time(),
                },
                pk="id",
            )

    def set_layers(self, run_id: str, records: list[dict[str, Any]]) -> None:
        """Replace a run's layer analysis atomically (one row per depth group)."""
        now = time.time()
        rows = [
            {
                "run_id": run_id,
                "group_idx": r["group_idx"],
                "group_name": r["group"],
                "module": r.get("module", ""),
                "n_params": r["n_params"],
                "grad_norm": r["grad_norm"],
                "grad_share": r.get("grad_share"),
                "grad_norm_after": r.get("grad_norm_after"),
                "cka": r.get("cka"),
                "frozen": int(bool(r["frozen"])),
                "n_images": r["n_images"],
                "batch": r["batch"],
                "created": now,
            }
            for r in records
        ]
        with self.conn:
            self.conn.execute("delete from layers where run_id = ?", (run_id,))
            self.db["layers"].insert_all(rows)

    # ---- reads ---------------------------------------------------------------------------------------
    def _json(self, text: str, what: str) -> Any:
        """A JSON column as rttui wrote it. Text that does not parse was damaged or edited by hand: one line
        naming the file and the row, never a JSONDecodeError from deep inside a command."""
        try:
            return json.loads(text)
        except (TypeError, ValueError) as exc:
            raise DatabaseDamaged(
                f"{self.path}: {what} is not valid JSON ({exc}); the database was damaged or edited: restore it "
                "from a backup, or run the study again into a new --db"
            ) from None

    def run_config(self, run_id: str) -> dict[str, Any]:
        """The resolved config a run was trained with (its id is this config's hash)."""
        row = self.conn.execute("select config from runs where id = ?", (run_id,)).fetchone()
        if row is None:
            raise StoreError(f"run {run_id!r} is not in {self.path}; run `rttui status` to list run ids")
        return self._json(row[0], f"the config of run {run_id}")

    def rows(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        cur = self.conn.execute(sql, tuple(params))
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    def unit(self, kind: str, uid: str) -> dict[str, Any] | None:
        table = {"source": "sources", "run": "runs"}[kind]
        rows = self.rows(f"select * from {table} where id = ?", (uid,))
        return rows[0] if rows else None

    def done_evals(self, run_id: str) -> set[str]:
        return {r["id"] for r in self.rows("select id from evaluations where run_id = ? and state = 'done'", (run_id,))}

    def failed_evals(self, run_id: str) -> dict[str, str]:
        """A run's failed evaluations: eval id -> the first line of what went wrong."""
        if not self.has_column("evaluations", "error"):
            return {}
        return {
            r["id"]: r["error"] or "failed"
            for r in self.rows("select id, error from evaluations where run_id = ? and state = 'failed'", (run_id,))
        }

    def all_done_evals(self) -> set[str]:
        """Every stored evaluation's id: a study file's runs are done only when their planned evaluations are here
        (a run shared with another study may lack this one's attacks)."""
        return {r["id"] for r in self.rows("select id from evaluations where state = 'done'")}

    def studies(self) -> list[dict[str, Any]]:
        """Every registered study with its own progress: runs counted by their state for that study (`runs`)."""
        out = self.rows("select name, path, created, updated from studies order by updated desc")
        for st in out:
            runs = self.runs(st["name"])
            states = [r["state"] for r in runs]
            evals = [e for planned in self._study_eval_states(st["name"]).values() for e, _ in planned]
            st.update(
                runs=len(states),
                done=states.count("done"),
                failed=states.count("failed"),
                running=states.count("running"),
                evals=len(evals),
                evals_done=evals.count("done"),
                evals_failed=evals.count("failed"),
            )
        return out

    def study_eval_ids(self, study: str) -> list[str]:
        """The evaluations a study planned (stored or not)."""
        return [r[0] for r in self.conn.execute("select eval_id from study_evals where study = ?", (study,))]

    def study_names(self) -> list[str]:
        """Registered studies, by name."""
        return [r["name"] for r in self.rows("select name from studies order by name")]

    def study_spec(self, name: str) -> dict[str, Any] | None:
        rows = self.rows("select spec from studies where name = ?", (name,))
        return self._json(rows[0]["spec"], f"the spec of study {name!r}") if rows else None

    def runs(self, study: str | None = None) -> list[dict[str, Any]]:
        """Run rows. With `study`, each run's `state` is its state for that study (`study_state`): a run another
        study trained and evaluated is 'trained' here until this study's own evaluations are stored, and an
        evaluation that failed makes it 'failed' here only. `train_state` is the run's own (training) state."""
        where, params = (
            ("where r.id in (select run_id from study_runs where study = ?)", [study]) if study else ("", [])
        )
        env_col = "r.env_id" if self.has_column("runs", "env_id") else "null as env_id"
        # A database read-only from before these columns (a results archive) reads them as empty.
        phase_cols = (
            "r.phase, r.phase_done, r.phase_total"
            if self.has_column("runs", "phase")
            else "null as phase, null as phase_done, null as phase_total"
        )
        peak_col = self._peak_col("r")
        rows = self.rows(
            "select r.id, r.dataset, r.model, r.strategy, r.technique, r.seed, r.state, r.clean_acc, r.n_test, "
            f"r.seconds, r.error, r.started, r.finished, r.info, {phase_cols}, {env_col}, {peak_col}, "
            "coalesce(r.checkpoint, '') != '' as has_checkpoint, r.config, "
            "(select max(epoch) from epochs e where e.unit_id = r.id) as epoch, "
            "(select group_concat(study) from study_runs sr where sr.run_id = r.id) as studies "
            f"from runs r {where} order by r.dataset, r.model, r.strategy, r.technique, r.seed",
            params,
        )
        evals = self._study_eval_states(study) if study else {}
        for r in rows:
            r["train_state"] = r["state"]
            r["config"] = _loose_json(r["config"])  # for labels only: a damaged config reads {} (status lists it)
            if study:
                planned = evals.get(r["id"], [])
                r["evals_planned"] = len(planned)
                r["evals_done"] = sum(st == "done" for st, _ in planned)
                r["state"], err = study_state(r["state"], bool(r["has_checkpoint"]), planned)
                r["error"] = err or r["error"]
        return rows

    def _study_eval_states(self, study: str) -> dict[str, list[tuple[str, str | None]]]:
        """Run id -> (state, error) of each evaluation the study planned on it ('missing' where none is stored)."""
        err_col = "e.error" if self.has_column("evaluations", "error") else "null as error"
        out: dict[str, list[tuple[str, str | None]]] = {}
        for r in self.rows(
            f"select se.run_id, coalesce(e.state, 'missing') as state, e.attack, {err_col} "
            "from study_evals se left join evaluations e on e.id = se.eval_id where se.study = ?",
            (study,),
        ):
            err = f"{r['attack']}: {r['error']}" if r["state"] == "failed" and r["error"] else None
            out.setdefault(r["run_id"], []).append((r["state"], err))
        return out

    def workers(self) -> list[dict[str, Any]]:
        """The runner's workers and what each works on now ([] for a database from before the table)."""
        if "workers" not in self.db.table_names():
            return []
        return self.rows("select slot, pid, host, device, kind, unit_id, since from workers order by slot")

    def live(self, study: str) -> dict[str, dict[str, Any]]:
        """Run id -> the evaluation it is working through (per epsilon finished so far), for the study's runs at
        work: 'running', or 'trained' (a run evaluates after its training in the same job, and stays 'trained'
        until it is done). {} for a database from before the column (read-only); a value that does not parse is
        skipped: it is a monitor's transient view, never a result."""
        if not self.has_column("runs", "live"):
            return {}
        out: dict[str, dict[str, Any]] = {}
        for r in self.rows(
            "select r.id, r.live from runs r join study_runs sr on sr.run_id = r.id "
            "where sr.study = ? and r.state in ('running', 'trained') and r.live is not null",
            (study,),
        ):
            try:
                live = json.loads(r["live"])
            except ValueError:
                continue
            if isinstance(live, dict) and isinstance(live.get("points"), list):
                out[r["id"]] = live
        return out

    def records(self, study: str | None = None) -> list[dict[str, Any]]:
        """One flat record per (study, evaluation, eps): what exports and analysis read. A study's records are the
        evaluations it planned (`study_evals`), never another study's evaluation of a shared run; without
        `study`, an evaluation two studies planned appears once per study."""
        where, params = ("where se.study = ?", [study]) if study else ("", [])
        # A database opened read-only may predate the `path` column (it is added when opened for writing).
        path_col = "m.path" if "path" in self.db["metrics"].columns_dict else "null as path"
        sur_col = "e.surrogate_id" if "surrogate_id" in self.db["evaluations"].columns_dict else "null as surrogate_id"
        env_col = "e.env_id" if self.has_column("evaluations", "env_id") else "null as env_id"
        rows = self.rows(
            "select m.run_id, se.study, r.dataset, r.model, r.strategy, r.technique, r.seed, m.attack, m.norm, "
            "m.steps, m.step_size, m.restarts, m.random_start, m.eps, m.clean_acc, m.adv_acc, m.n, "
            f"m.n_clean_correct, m.n_adv_correct, m.mode, m.precision, {path_col}, m.max_perturbation, m.eval_id, "
            f"r.config, {self._peak_col('r')}, "
            f"e.params as attack_params, {sur_col}, {env_col} "
            "from metrics m join study_evals se on se.eval_id = m.eval_id join runs r on r.id = m.run_id "
            f"join evaluations e on e.id = m.eval_id {where} "
            "order by se.study, r.dataset, r.model, r.strategy, r.technique, m.attack, m.eval_id, m.eps, r.seed",
            params,
        )
        configs: dict[str, Any] = {}
        envs = self.environments()
        zoo = self.robustbench_sources()
        audits = self.audits(r["eval_id"] for r in rows)
        selected = self.selected_epochs()
        for r in rows:
            rid = r["run_id"]
            # Provenance and audit: None where the database predates them or the unit ran without them.
            r["env"] = envs.get(r["env_id"]) if r["env_id"] else None
            r["audit"] = audits.get((r["eval_id"], float(r["eps"])))
            text = r.pop("config")
            if rid not in configs:
                configs[rid] = self._json(text, f"the config of run {rid}")
            cfg = configs[rid]
            r["strategy_params"] = cfg["strategy"]["params"]
            r["technique_params"] = cfg["technique"]["params"]
            r["attack_params"] = self._json(r["attack_params"], f"the parameters of evaluation {r['eval_id']}")
            # A transfer attack is named with its surrogate (transfer[source], ...), so two never pool.
            r["attack_name"] = r["attack"]
            r["attack"] = variant_label(r["attack"], r["attack_params"])
            r["random_start"] = bool(r["random_start"])
            r["source"] = cfg.get("source_id")
            if r["source"] in zoo:  # RobustBench's own numbers beside those measured here (only for its models)
                r["robustbench"] = zoo[r["source"]]
            r["attack_success_rate"] = 1 - r["n_adv_correct"] / r["n_clean_correct"] if r["n_clean_correct"] else None
            r["selected_epoch"] = selected.get(rid)
            r["select"] = cfg.get("train", {}).get("select", "last")  # which epoch's weights were attacked
        return rows

    def robustbench_sources(self) -> dict[str, dict[str, Any]]:
        """Per source that started from a RobustBench model: which (name, dataset, threat model, file SHA-256) and
        what RobustBench published for it (clean and robust accuracy, None when its leaderboard lacks it)."""
        out: dict[str, dict[str, Any]] = {}
        for row in self.rows("select id, info from sources where info like '%\"robustbench\"%'"):
            info = self._json(row["info"], f"the info of source {row['id']}") if row["info"] else {}
            w = info.get("weights") if isinstance(info, dict) else None
            if isinstance(w, dict) and w.get("kind") == "robustbench":
                keys = ("name", "dataset", "threat_model", "sha256", "robustbench", "published")
                out[row["id"]] = {k: w.get(k) for k in keys}
        return out

    def selected_epochs(self) -> dict[str, int]:
        """Each run's selected training epoch ([train] select), where recorded."""
        if not self.has_column("runs", "selected_epoch"):
            return {}
        return {
            r["id"]: int(r["selected_epoch"])
            for r in self.rows("select id, selected_epoch from runs where selected_epoch is not null")
        }

    def validation_points(self, study: str) -> dict[str, list[dict[str, Any]]]:
        """Per run of a study, its per-epoch validation so far (epoch, val_clean_acc, val_adv_acc), for monitors."""
        if not self.has_column("epochs", "val_clean_acc"):
            return {}
        out: dict[str, list[dict[str, Any]]] = {}
        for r in self.rows(
            "select e.unit_id, e.epoch, e.val_clean_acc, e.val_adv_acc from epochs e "
            "join study_runs sr on sr.run_id = e.unit_id where sr.study = ? and e.kind = 'run' "
            "and e.val_clean_acc is not null order by e.unit_id, e.epoch",
            (study,),
        ):
            out.setdefault(r.pop("unit_id"), []).append(r)
        return out

    def validation_records(self, study: str | None = None) -> list[dict[str, Any]]:
        """One record per epoch of every run of a study that recorded per-epoch validation: the run's axes, its
        strategy/technique parameters, the epoch's training loss and its validation fields (probe as a dict)."""
        if not self.has_column("epochs", "val_clean_acc"):
            return []
        where, params = ("and sr.study = ?", [study]) if study else ("", [])
        rows = self.rows(
            "select distinct sr.study, r.id as run_id, r.dataset, r.model, r.strategy, r.technique, r.seed, "
            "ep.epoch, ep.loss, ep.train_acc, ep.val_clean_acc, ep.val_adv_acc, ep.val_n, ep.val_seconds, ep.probe, "
            "r.selected_epoch, r.config from epochs ep join runs r on r.id = ep.unit_id "
            "join study_runs sr on sr.run_id = r.id "
            f"where ep.kind = 'run' and ep.val_clean_acc is not null {where} "
            "order by sr.study, r.dataset, r.model, r.strategy, r.technique, r.seed, ep.epoch",
            params,
        )
        for r in rows:
            cfg = json.loads(r.pop("config"))
            r["strategy_params"] = cfg["strategy"]["params"]
            r["technique_params"] = cfg["technique"]["params"]
            r["select"] = cfg["train"].get("select", "last")
            r["probe"] = self._json(r["probe"], f"the probe of run {r['run_id']}") if r["probe"] else None
        return rows

    def _peak_col(self, alias: str) -> str:
        """The unit's peak GPU memory (bytes; NULL on a CPU), or NULL where a read-only file predates the column.
        The one record of it: `info.peak_gpu_mem_mb`, which older runners also wrote, is never read."""
        return f"{alias}.peak_gpu_mem" if self.has_column("runs", "peak_gpu_mem") else "null as peak_gpu_mem"

    def has_column(self, table: str, column: str) -> bool:
        """Whether the file has this column: a database opened read-only may predate it."""
        return table in self.db.table_names() and column in self.db[table].columns_dict

    def environments(self) -> dict[str, dict[str, Any]]:
        """Every recorded environment by env_id ({} for a database written before they were recorded)."""
        if "environments" not in self.db.table_names():
            return {}
        return {
            r["env_id"]: self._json(r["env"], f"the environment {r['env_id']}")
            for r in self.rows("select env_id, env from environments order by first_seen")
        }

    def unit_env(self, kind: str, uid: str) -> dict[str, Any] | None:
        """The environment a source or run was trained in, or None when it was not recorded."""
        table = {"source": "sources", "run": "runs", "evaluation": "evaluations"}[kind]
        if not self.has_column(table, "env_id"):
            return None
        row = self.conn.execute(f"select env_id from {table} where id = ?", (uid,)).fetchone()
        return self.environments().get(row[0]) if row and row[0] else None

    def audits(self, eval_ids: Iterable[str]) -> dict[tuple[str, float], dict[str, Any]]:
        """The stored audit rows by (eval_id, eps); {} for a database written before audits existed."""
        if "audits" not in self.db.table_names():
            return {}
        out: dict[tuple[str, float], dict[str, Any]] = {}
        for chunk in _chunks(list(dict.fromkeys(eval_ids))):
            marks = ",".join("?" * len(chunk))
            for r in self.rows(f"select * from audits where eval_id in ({marks})", chunk):
                r["flagged"], r["complete"] = bool(r["flagged"]), bool(r["complete"])
                if r.get("escalated") is not None:
                    r["escalated"] = bool(r["escalated"])
                r["stronger"] = self._json(r["stronger"], f"the audit of evaluation {r['eval_id']}")
                r["fooled_ids"] = self._json(r["fooled_ids"], f"the audit of evaluation {r['eval_id']}")
                out[(r["eval_id"], float(r["eps"]))] = r
        return out

    def attack_metrics(self, run_id: str, attacks: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
        """The stored metric rows of a run's evaluations of these attacks (every parameter set), by attack: what
        the cross-attack checks of a later evaluation compare against."""
        names = list(attacks)
        marks = ",".join("?" * len(names))
        out: dict[str, list[dict[str, Any]]] = {}
        for r in self.rows(
            f"select m.* from metrics m join evaluations e on e.id = m.eval_id where m.run_id = ? "
            f"and e.state = 'done' and m.attack in ({marks}) order by m.eval_id, m.eps",
            (run_id, *names),
        ):
            r["random_start"] = bool(r["random_start"])
            out.setdefault(r["attack"], []).append(r)
        return out

    def sample_records(self, study: str | None = None) -> list[dict[str, Any]]:
        """One flat record per (study, run, evaluation, test sample): the per-sample outcomes with the run's axes
        and every parameter of the run and the attack (what a notebook's DataFrame of samples reads)."""
        where, params = ("where se.study = ?", [study]) if study else ("", [])
        rows = self.rows(
            "select se.study, s.run_id, r.dataset, r.model, r.strategy, r.technique, r.seed, e.attack, e.mode, "
            "s.eval_id, s.idx, s.label, s.clean_pred, s.clean_correct, s.fooled_mask, s.first_fooled_eps, "
            "s.min_norm, e.epsilons, e.params as attack_params, r.config "
            "from samples s join evaluations e on e.id = s.eval_id join runs r on r.id = s.run_id "
            f"join study_evals se on se.eval_id = s.eval_id {where} "
            "order by se.study, r.dataset, r.model, r.strategy, r.technique, e.attack, s.eval_id, r.seed, s.idx",
            params,
        )
        for r in rows:
            self._unpack_config(r)
            r["attack_params"] = json.loads(r["attack_params"])
            r["epsilons"] = [float(x) for x in json.loads(r["epsilons"])]
            r["clean_correct"] = bool(r["clean_correct"])
        return rows

    def epoch_records(self, study: str | None = None) -> list[dict[str, Any]]:
        """One flat record per training epoch of every unit of a study (its runs and their sources), with the
        unit's axes and its strategy/technique parameters (sources have no strategy or technique)."""
        where, params = ("where sr.study = ?", [study]) if study else ("", [])
        runs = self.rows(
            "select distinct sr.study, 'run' as kind, r.id as unit_id, r.source_id, r.dataset, r.model, r.strategy, "
            "r.technique, r.seed, ep.epoch, ep.loss, ep.train_acc, ep.seconds, r.config "
            "from epochs ep join runs r on r.id = ep.unit_id join study_runs sr on sr.run_id = r.id "
            f"{where} order by sr.study, r.dataset, r.model, r.strategy, r.technique, r.seed, ep.epoch",
            params,
        )
        for r in runs:
            self._unpack_config(r)
        sources = self.rows(
            "select distinct sr.study, 'source' as kind, so.id as unit_id, so.id as source_id, so.dataset, "
            "so.model, so.seed, ep.epoch, ep.loss, ep.train_acc, ep.seconds "
            "from epochs ep join sources so on so.id = ep.unit_id join runs r on r.source_id = so.id "
            f"join study_runs sr on sr.run_id = r.id {where} "
            "order by sr.study, so.dataset, so.model, so.seed, ep.epoch",
            params,
        )
        for s in sources:
            s.update({"strategy": None, "technique": None, "strategy_params": {}, "technique_params": {}})
        return sources + runs

    @staticmethod
    def _unpack_config(r: dict[str, Any]) -> None:
        """Replace a row's `config` JSON by the run's strategy and technique parameters."""
        cfg = json.loads(r.pop("config"))
        r["strategy_params"] = cfg["strategy"]["params"]
        r["technique_params"] = cfg["technique"]["params"]

    def checks(self, run_id: str | None = None) -> list[dict[str, Any]]:
        if run_id:
            return self.rows('select * from checks where run_id = ? order by eval_id, "check"', (run_id,))
        return self.rows('select * from checks order by run_id, eval_id, "check"')

    def layers(self, run_id: str) -> list[dict[str, Any]]:
        """A run's stored layer analysis, input side first ([] when none is stored)."""
        if "layers" not in self.db.table_names():
            return []
        rows = self.rows("select * from layers where run_id = ? order by group_idx", (run_id,))
        for r in rows:
            r["group"] = r.pop("group_name")
            r["frozen"] = bool(r["frozen"])
        return rows

    def epochs(self, unit_id: str) -> list[dict[str, Any]]:
        return self.rows("select * from epochs where unit_id = ? order by epoch", (unit_id,))

    # ---- per-sample outcomes and confusions (analysis reads; SQL stays here) ----------------------------
    def eval_grids(self, eval_ids: Iterable[str]) -> dict[str, list[float]]:
        """The sorted epsilon grid of each evaluation: bit i of a sample's fooled_mask is grid[i]."""
        ids = list(dict.fromkeys(eval_ids))
        out: dict[str, list[float]] = {}
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            for r in self.rows(f"select id, epsilons from evaluations where id in ({marks})", chunk):
                grid = self._json(r["epsilons"], f"the epsilons of evaluation {r['id']}")
                out[r["id"]] = [float(e) for e in grid]
        return out

    def sample_masks(self, eval_ids: Iterable[str]) -> dict[str, tuple[list[bool], list[int]]]:
        """Per evaluation, its samples' clean-correct flags and fooled masks in test-sample order (what the
        per-sample worst case reads)."""
        out: dict[str, tuple[list[bool], list[int]]] = {}
        for chunk in _chunks(list(dict.fromkeys(eval_ids))):
            marks = ",".join("?" * len(chunk))
            for eid, cc, mask in self.conn.execute(
                f"select eval_id, clean_correct, fooled_mask from samples where eval_id in ({marks}) "
                "order by eval_id, idx",
                chunk,
            ):
                flags, masks = out.setdefault(eid, ([], []))
                flags.append(bool(cc))
                masks.append(int(mask or 0))
        return out

    def samples(self, eval_id: str) -> list[dict[str, Any]]:
        """Per-sample outcomes of one evaluation, in test-set order."""
        return self.rows(
            "select idx, label, clean_pred, clean_correct, fooled_mask, first_fooled_eps, min_norm "
            "from samples where eval_id = ? order by idx",
            (eval_id,),
        )

    def confusion(self, eval_ids: Iterable[str]) -> list[dict[str, Any]]:
        """(true, predicted-under-attack) counts of the given evaluations, every epsilon."""
        ids = list(dict.fromkeys(eval_ids))
        rows: list[dict[str, Any]] = []
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            rows += self.rows(
                f"select eval_id, eps, label, pred, count from confusion where eval_id in ({marks}) "
                "order by eval_id, eps, label, pred",
                chunk,
            )
        return rows

    def run_classes(self, run_ids: Iterable[str]) -> dict[str, list[str]]:
        """Class names of each run's target task (stored in runs.info when it was trained)."""
        ids = list(dict.fromkeys(run_ids))
        out: dict[str, list[str]] = {}
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            for r in self.rows(f"select id, info from runs where id in ({marks})", chunk):
                info = self._json(r["info"], f"the info of run {r['id']}") if r["info"] else {}
                if isinstance(info, dict) and info.get("classes"):
                    out[r["id"]] = [str(c) for c in info["classes"]]
        return out

    def forget_study(self, name: str) -> int:
        """Remove a study's registration; its runs stay when another study shares them. Returns runs dropped."""
        with self.conn:
            ids = [r[0] for r in self.conn.execute("select run_id from study_runs where study = ?", (name,))]
            self.conn.execute("delete from study_runs where study = ?", (name,))
            self.conn.execute("delete from study_evals where study = ?", (name,))
            self.conn.execute("delete from studies where name = ?", (name,))
            orphans = [
                rid
                for rid in ids
                if not self.conn.execute("select 1 from study_runs where run_id = ?", (rid,)).fetchone()
            ]
            tables = set(self.db.table_names())
            for rid in orphans:
                evals = [r[0] for r in self.conn.execute("select id from evaluations where run_id = ?", (rid,))]
                for t in ("metrics", "samples", "confusion", "checks", *(["audits"] if "audits" in tables else [])):
                    self.conn.executemany(f"delete from {t} where eval_id = ?", [(eval_id,) for eval_id in evals])
                self.conn.execute("delete from checks where run_id = ?", (rid,))
                self.conn.execute("delete from evaluations where run_id = ?", (rid,))
                self.conn.execute("delete from epochs where unit_id = ?", (rid,))
                self.conn.execute("delete from runs where id = ?", (rid,))
        return len(orphans)

    def eval_counts(self, study: str) -> dict[str, int]:
        """Done evaluations per run of a study (those it planned), in one query (the TUI polls this)."""
        rows = self.rows(
            "select e.run_id, count(*) as n from evaluations e join study_evals se on se.eval_id = e.id "
            "where se.study = ? and e.state = 'done' group by e.run_id",
            (study,),
        )
        return {r["run_id"]: r["n"] for r in rows}

    def last_unit_epochs(self, unit_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The latest epoch row of each of these units (a study's sources: they are not in study_runs)."""
        out: dict[str, dict[str, Any]] = {}
        for uid in unit_ids:
            rows = self.rows("select * from epochs where unit_id = ? order by epoch desc limit 1", (uid,))
            if rows:
                out[uid] = rows[0]
        return out

    def last_epochs(self, study: str) -> dict[str, dict[str, Any]]:
        """The latest epoch row of each run of a study (epoch, loss, train_acc, seconds)."""
        rows = self.rows(
            "select e.* from epochs e join study_runs sr on sr.run_id = e.unit_id where sr.study = ? "
            "and e.epoch = (select max(epoch) from epochs e2 where e2.unit_id = e.unit_id)",
            (study,),
        )
        return {r["unit_id"]: r for r in rows}


def _loose_json(text: str | None) -> Any:
    """A JSON column read where damage must not stop the command (a label): {} when it does not parse."""
    try:
        return json.loads(text) if text else {}
    except (TypeError, ValueError):
        return {}


def study_state(train_state: str, trained: bool, evals: list[tuple[str, str | None]]) -> tuple[str, str | None]:
    """A run's state for one study, from its own (training) state and the (state, error) of each evaluation the
    study planned on it; with the error to show where an evaluation of this study failed.

    Training decides until the run is trained; after that the study's own evaluations do: all stored is 'done',
    one failed is 'failed', else 'trained' (more to evaluate). A run 'running' an evaluation job for another
    study is 'done' here once this study's evaluations are all stored."""
    if not trained or train_state == "pending":
        return train_state, None
    errors = [e for st, e in evals if st == "failed"]
    if errors:
        return "failed", errors[0] or "an evaluation failed"
    if all(st == "done" for st, _ in evals):
        return "done", None
    if train_state == "failed":  # an older runner marked the run failed when one of its evaluations failed
        return "failed", None
    return ("running" if train_state == "running" else "trained"), None


def _summary(problems: list[str]) -> str:
    """SQLite's findings in one line: the first, and how many there are."""
    first = " ".join(problems[0].split())
    first = first if len(first) <= 120 else first[:117] + "..."
    return first if len(problems) == 1 else f"{len(problems)} problems, the first: {first}"


def _chunks(ids: list[str], size: int = 500) -> Iterator[list[str]]:
    """SQLite caps bound parameters per statement; query long id lists in slices."""
    for i in range(0, len(ids), size):
        yield ids[i : i + size]
