"""What rttui pushes to an experiment tracker (MLflow, Weights & Biases), and the checks made before any push.

A stored run becomes one `TrackedRun`: its config as params, its per-epoch training rows as step metrics, one
metric per (attack, eps, number) named `<attack>/eps_<eps>/<field>`, the audit flag and provenance as tags. A
study becomes one more `TrackedRun` (kind "study") that holds its figures. Each is found again by its stable
key (the run id, a config hash), so pushing twice updates the tracker's run instead of adding one.

Built from plain rows (what `Store` returns); no SQL here. The tracker libraries are imported only by
`tracking_mlflow` / `tracking_wandb`, and only when a push runs; `check_target` needs neither.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import netrc
import os
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rttui.errors import RttuiError

TRACKERS = ("mlflow", "wandb")
WANDB_MODES = ("online", "offline")
# Per record: the numbers `rttui export --format json` holds, each one tracker metric.
RECORD_METRICS = ("clean_acc", "adv_acc", "attack_success_rate", "n", "n_clean_correct", "n_adv_correct")
EPOCH_METRICS = ("loss", "train_acc", "seconds")
PROBE_TIMEOUT_S = 5.0


class TrackerError(RttuiError):
    """A tracker that cannot be used as asked (package missing, server unreachable, no credentials)."""


@dataclass(frozen=True)
class TrackerTarget:
    """Where runs go: `to` is mlflow or wandb; the other fields belong to one of them."""

    to: str
    tracking_uri: str | None = None  # mlflow: default $MLFLOW_TRACKING_URI, else MLflow's own default
    experiment: str | None = None  # mlflow: default the study's name
    project: str | None = None  # wandb: default "rttui"
    mode: str | None = None  # wandb: online or offline; default $WANDB_MODE, else online

    @classmethod
    def from_table(cls, table: dict[str, Any]) -> TrackerTarget:
        """A study's resolved `[track]` table."""
        return cls(**{k: table.get(k) for k in ("to", "tracking_uri", "experiment", "project", "mode")})

    def wandb_mode(self) -> str:
        return self.mode or os.environ.get("WANDB_MODE") or "online"


@dataclass
class TrackedRun:
    """One tracker run, as plain data. `steps` maps a metric to its (step, value) points; `metrics` are single
    values (logged at step 0); `artifacts` maps a folder of the tracker run (figures, study) to the files put there."""

    key: str  # the stable identity: an rttui run id, or "study:<name>"
    kind: str  # "run" or "study"
    name: str
    study: str
    params: dict[str, str] = field(default_factory=dict)
    steps: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, list[Path]] = field(default_factory=dict)
    timestamp_ms: int = 0  # when the run finished: every point carries it, so a second push writes the same points


# ---- names ------------------------------------------------------------------------------------------------
def eps_text(eps: float) -> str:
    return format(float(eps), ".6g")


def metric_name(attack: str, eps: float, what: str) -> str:
    """`pgd/eps_0.03/adv_acc`: the attack as the study names it, the epsilon, the number."""
    return f"{attack}/eps_{eps_text(eps)}/{what}"


def wandb_id(key: str) -> str:
    """W&B run ids allow letters, digits, - and _: an rttui run id as is, a study by a hash of its name."""
    if key.startswith("study:"):
        return "rttui-study-" + hashlib.sha256(key.encode()).hexdigest()[:12]
    return f"rttui-{key}"


# ---- building tracked runs from stored rows ----------------------------------------------------------------
def _flat(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for k in sorted(value):
            _flat(f"{prefix}.{k}" if prefix else str(k), value[k], out)
    else:
        out[prefix] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def run_params(run: dict[str, Any]) -> dict[str, str]:
    """A run's config, flattened to `section.key` strings (what made its id)."""
    out: dict[str, str] = {}
    for k in ("dataset", "model", "strategy", "technique", "seed"):
        _flat(k, run.get(k), out)
    cfg = run.get("config") or {}
    if isinstance(cfg, dict):
        _flat("", {k: v for k, v in cfg.items() if k not in ("version", "seed")}, out)
    for k in ("model.name", "strategy.name", "technique.name"):  # the same as model, strategy, technique
        out.pop(k, None)
    out["run_id"] = str(run["id"])
    return out


def provenance_tags(env: dict[str, Any] | None) -> dict[str, str]:
    """Where a run's numbers were computed (`rttui provenance`), the scalar fields as `rttui.env.<field>` tags."""
    out: dict[str, str] = {}
    for k, v in sorted((env or {}).items()):
        if isinstance(v, dict) and k == "packages":
            for p, ver in sorted(v.items()):
                out[f"rttui.env.packages.{p}"] = str(ver)
        elif not isinstance(v, dict | list):
            out[f"rttui.env.{k}"] = str(v)
    return out


def _metric_prefixes(records: list[dict[str, Any]]) -> dict[str, str]:
    """eval id -> the attack name its metrics go under; the eval id joins the name where two evaluations of one
    run share it (a study that ran the same attack twice with other parameters)."""
    by_attack: dict[str, set[str]] = defaultdict(set)
    for r in records:
        by_attack[str(r["attack"])].add(str(r["eval_id"]))
    return {
        str(r["eval_id"]): (
            str(r["attack"]) if len(by_attack[str(r["attack"])]) == 1 else f"{r['attack']}@{r['eval_id']}"
        )
        for r in records
    }


def record_metrics(records: list[dict[str, Any]]) -> dict[str, float]:
    """One run's records as metrics: `<attack>/eps_<eps>/<number>` for each number of `RECORD_METRICS`."""
    prefixes = _metric_prefixes(records)
    out: dict[str, float] = {}
    for r in records:
        for what in RECORD_METRICS:
            v = r.get(what)
            if isinstance(v, int | float) and not isinstance(v, bool):
                out[metric_name(prefixes[str(r["eval_id"])], float(r["eps"]), what)] = float(v)
    return out


def audit_tags(records: list[dict[str, Any]]) -> dict[str, str]:
    """`rttui.audit`: flagged (an attack's accuracy was found overstated by a stronger one), passed, or not run;
    `rttui.audit.flagged` names the flagged cells."""
    audited = [r for r in records if isinstance(r.get("audit"), dict)]
    flagged = sorted(
        {f"{r['attack']} eps={eps_text(r['eps'])}" for r in audited if r["audit"].get("flagged")},
    )
    state = "flagged" if flagged else ("passed" if audited else "not run")
    tags = {"rttui.audit": state}
    if flagged:
        tags["rttui.audit.flagged"] = "; ".join(flagged)
    return tags


def tracked_runs(
    study: str,
    runs: Iterable[dict[str, Any]],
    records: list[dict[str, Any]],
    epochs: list[dict[str, Any]],
) -> list[TrackedRun]:
    """One `TrackedRun` per stored run of a study (its `Store.runs` row), from the study's records (as `rttui
    export` reads them) and epoch rows (`Store.epoch_records`): the run's own epochs as `train/<field>`, its
    source's as `source/<field>`."""
    recs_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        recs_of[str(r["run_id"])].append(r)
    out = []
    for run in runs:
        rid = str(run["id"])
        recs = recs_of.get(rid, [])
        steps: dict[str, list[tuple[int, float]]] = defaultdict(list)
        source_id = (run.get("config") or {}).get("source_id")
        for e in epochs:
            mine = e["kind"] == "run" and e["unit_id"] == rid
            theirs = e["kind"] == "source" and source_id is not None and e["unit_id"] == source_id
            if not (mine or theirs):
                continue
            for what in EPOCH_METRICS:
                v = e.get(what)
                if isinstance(v, int | float) and not isinstance(v, bool):
                    steps[f"{'train' if mine else 'source'}/{what}"].append((int(e["epoch"]), float(v)))
        metrics = record_metrics(recs)
        if isinstance(run.get("clean_acc"), int | float):
            metrics["clean_acc"] = float(run["clean_acc"])
        env = next((r["env"] for r in recs if isinstance(r.get("env"), dict)), None)
        tags = {
            "rttui.kind": "run",
            "rttui.run_id": rid,
            "rttui.study": study,
            "rttui.state": str(run.get("state")),
            **audit_tags(recs),
            **provenance_tags(env),
        }
        finished = run.get("finished") or run.get("started") or 0
        label = f"{run.get('model')} {run.get('strategy')} {run.get('technique')} seed {run.get('seed')}"
        out.append(
            TrackedRun(
                key=rid,
                kind="run",
                name=label,
                study=study,
                params=run_params(run),
                steps={k: sorted(v) for k, v in steps.items()},
                metrics=metrics,
                tags=tags,
                timestamp_ms=int(float(finished) * 1000),
            )
        )
    return out


def study_run(study: str, figures: list[Path], spec_file: Path | None = None) -> TrackedRun:
    """The study itself as a tracker run: its figures (and its study file, when given) as artifacts."""
    artifacts = {"figures": list(figures)}
    if spec_file is not None:
        artifacts["study"] = [spec_file]
    return TrackedRun(
        key=f"study:{study}",
        kind="study",
        name=study,
        study=study,
        tags={"rttui.kind": "study", "rttui.study": study, "rttui.run_id": f"study:{study}"},
        artifacts=artifacts,
        params={"study": study},
        metrics={},
        steps={},
        timestamp_ms=0,
    )


# ---- checks before any push -----------------------------------------------------------------------------------
def _missing(*modules: str) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


def check_target(target: TrackerTarget, where: str = "--to") -> None:
    """Refuse, in one line naming the fix, a target that cannot work: an unknown tracker, a missing extra, an MLflow
    server that does not answer, W&B online without credentials. Makes no write and no call to a tracker
    library (the server probe is one plain HTTP request with a short timeout)."""
    if target.to not in TRACKERS:
        raise TrackerError(f"{where} {target.to!r}: not a tracker; use one of {', '.join(TRACKERS)}")
    if target.to == "mlflow":
        for opt, value in (("project", target.project), ("mode", target.mode)):
            if value:
                raise TrackerError(f"{opt} {value!r} is a W&B setting; drop it for mlflow (or use --to wandb)")
        _check_mlflow(target)
    else:
        for opt, value in (("tracking_uri", target.tracking_uri), ("experiment", target.experiment)):
            if value:
                raise TrackerError(f"{opt} {value!r} is an MLflow setting; drop it for wandb (or use --to mlflow)")
        _check_wandb(target)


def mlflow_uri(target: TrackerTarget) -> str | None:
    return target.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or None


def _check_mlflow(target: TrackerTarget) -> None:
    if _missing("mlflow"):
        raise TrackerError("--to mlflow needs mlflow (the mlflow extra); pip install 'rttui[mlflow]'")
    uri = mlflow_uri(target)
    scheme = urllib.parse.urlparse(uri).scheme if uri else ""
    database = scheme.startswith("sqlite") or scheme in ("postgresql", "mysql", "mssql")
    if database and _missing("sqlalchemy", "alembic"):
        raise TrackerError(
            f"tracking URI {uri}: a database store needs sqlalchemy and alembic; pip install 'rttui[mlflow]'"
        )
    if scheme == "sqlite":
        path = uri.split("sqlite:///", 1)[1] if uri and "sqlite:///" in uri else ""
        if path and path != ":memory:" and not Path(path).parent.is_dir():
            raise TrackerError(
                f"tracking URI {uri}: folder {Path(path).parent} does not exist; create it or point at another file"
            )
    if scheme in ("http", "https"):
        _probe(str(uri))


def _probe(uri: str) -> None:
    """One GET of the server's /health with a short timeout, so a wrong URI fails in seconds (MLflow's own client
    retries for minutes). Any HTTP answer counts as reachable; the push reports what the server then says."""
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S):  # the user's own tracking URI
            return
    except urllib.error.HTTPError:
        return
    except OSError as exc:  # URLError, a timeout, a refused connection
        reason = getattr(exc, "reason", exc)
        raise TrackerError(
            f"tracking URI {uri}: no MLflow server answers ({reason}); start one (mlflow server) or pass a reachable "
            "--tracking-uri, e.g. sqlite:///mlflow.db"
        ) from None


def _check_wandb(target: TrackerTarget) -> None:
    if _missing("wandb"):
        raise TrackerError("--to wandb needs wandb (the wandb extra); pip install 'rttui[wandb]'")
    mode = target.wandb_mode()
    if mode not in WANDB_MODES:
        raise TrackerError(f"mode {mode!r}: W&B runs online or offline; pass --mode online or --mode offline")
    if mode == "online" and not wandb_credentials():
        raise TrackerError(
            "W&B online mode needs credentials (no WANDB_API_KEY, no W&B entry in ~/.netrc); run `wandb login`, "
            "or pass --mode offline and `wandb sync` the runs later"
        )


def wandb_credentials() -> bool:
    """Whether W&B has an API key without asking for one: $WANDB_API_KEY, or a netrc entry for its host (what
    `wandb login` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urllib.parse.urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname or ""
    path = os.environ.get("NETRC") or str(Path.home() / ".netrc")
    try:
        auth = netrc.netrc(path).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return False
    return bool(auth and auth[2])


# ---- pushing ------------------------------------------------------------------------------------------------
def push(target: TrackerTarget, runs: list[TrackedRun], study: str) -> dict[str, Any]:
    """Push `runs` (a study's `TrackedRun`s, the study run among them) to the target: {"created", "updated",
    "runs": {key: tracker run id}, "where"}. Call `check_target` first."""
    if target.to == "mlflow":
        from rttui.analysis.tracking_mlflow import MlflowSink

        sink: Any = MlflowSink(target, study)
    else:
        from rttui.analysis.tracking_wandb import WandbSink

        sink = WandbSink(target, study)
    created = updated = 0
    ids: dict[str, str] = {}
    parent = next((r for r in runs if r.kind == "study"), None)
    order = ([parent] if parent else []) + [r for r in runs if r is not parent]
    for r in order:
        new, tid = sink.push(r, parent=ids.get(parent.key) if parent and r is not parent else None)
        ids[r.key] = tid
        created += new
        updated += not new
    return {"created": created, "updated": updated, "runs": ids, "where": sink.where()}
