"""Pushes `TrackedRun`s to Weights & Biases (online, or offline for a later `wandb sync`), idempotently.

Each rttui run is one W&B run whose id derives from the rttui run id (`wandb.init(id=..., resume="allow")`), so
a second push resumes it: the config and summary are set again, the per-epoch rows go to steps the run already
holds (W&B keeps the first row of a step and drops later ones). Offline there is no server to resume from, so a
second push replaces the run's earlier unsynced local copy instead of leaving two to sync. Imported only when a
push to W&B runs.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from rttui.analysis.tracking import TrackedRun, TrackerTarget, wandb_id

DEFAULT_PROJECT = "rttui"


class WandbSink:
    def __init__(self, target: TrackerTarget, study: str) -> None:
        self.project = target.project or DEFAULT_PROJECT
        self.mode = target.wandb_mode()
        self.study = study

    def where(self) -> str:
        where = f"W&B project {self.project!r}"
        return f"{where} (offline, in {self._root()}; `wandb sync` uploads them)" if self.mode == "offline" else where

    @staticmethod
    def _root() -> Path:
        """Where W&B keeps local run folders: $WANDB_DIR/wandb, else ./wandb."""
        return Path(os.environ.get("WANDB_DIR") or ".") / "wandb"

    def _local_copies(self, wid: str) -> list[Path]:
        """This run's offline folders not yet synced (W&B marks a synced one with a .synced file)."""
        root = self._root()
        if not root.is_dir():
            return []
        return [d for d in root.glob(f"offline-run-*-{wid}") if d.is_dir() and not any(d.glob("*.wandb.synced"))]

    def push(self, tr: TrackedRun, parent: str | None = None) -> tuple[bool, str]:
        import wandb

        wid = wandb_id(tr.key)
        earlier = self._local_copies(wid) if self.mode == "offline" else []
        had_copy = bool(earlier)
        tags = [f"study:{tr.study}", f"kind:{tr.kind}"]
        if "rttui.audit" in tr.tags:
            tags.append(f"audit:{tr.tags['rttui.audit']}")
        config: dict[str, Any] = dict(tr.params)
        config["rttui"] = dict(tr.tags)  # provenance and the audit in full (W&B tags are short labels)
        run = wandb.init(
            project=self.project,
            id=wid,
            resume="allow",
            name=tr.name,
            group=tr.study,
            job_type=tr.kind,
            tags=tags,
            config=config,
            mode=self.mode,
            dir=str(self._root().parent),  # where _local_copies looks, whatever W&B read from the environment before
            reinit="create_new",
            allow_val_change=True,
            settings=wandb.Settings(silent=True, console="off", x_disable_stats=True, save_code=False),
        )
        try:
            created = not run.resumed
            by_step: dict[int, dict[str, float]] = {}
            for k, pts in tr.steps.items():
                for step, v in pts:
                    by_step.setdefault(step, {})[k] = v
            for step in sorted(by_step):
                run.log(by_step[step], step=step)
            run.summary.update(tr.metrics)
            for (
                name,
                paths,
            ) in tr.artifacts.items():  # copied into the run's folder: W&B links files saved from elsewhere
                folder = Path(run.dir) / name
                folder.mkdir(parents=True, exist_ok=True)
                for p in paths:
                    dest = folder / Path(p).name
                    shutil.copyfile(p, dest)
                    run.save(str(dest), base_path=run.dir, policy="now")
        finally:
            run.finish()
        here = Path(run.dir).parent.resolve()  # a push within the same second writes into the same folder
        earlier = [d for d in earlier if d.resolve() != here]
        for d in earlier:  # superseded by the copy just written
            shutil.rmtree(d, ignore_errors=True)
        return created and not had_copy, wid
