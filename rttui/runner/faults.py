"""Fault injection for tests: make real failures happen at a chosen, reproducible point.

Set `RTTUI_FAULTS` to a JSON list of rules; each rule has `unit` (matched against the unit's id, label or kind,
or "*") and one action:

- `{"kill_after_epoch": N}`: the process running the unit sends itself SIGKILL right after epoch N is saved
  (a worker dies, or the whole runner when it runs in-process);
- `{"sleep_after_epoch": N, "seconds": S}`: pause, so a test can act while a runner is busy;
- `{"oom_above_batch": B}`: raise `torch.cuda.OutOfMemoryError` when the unit trains with a batch larger than B;
- `{"nan": true}`: put a NaN into the unit's training images (the loss then really becomes NaN);
- `{"fail_attack": NAME}`: the unit's evaluation of attack NAME raises (an evaluation that fails on its own).

Rules fire only on a unit's first attempt in a runner (a memory limit on every attempt), so a retry shows
what recovery does. Unset, this module
does nothing. It is a test hook, never a feature: nothing here changes results when the variable is absent.
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any


def _rules(kind: str, uid: str, label: str, attempt: int) -> list[dict[str, Any]]:
    raw = os.environ.get("RTTUI_FAULTS")
    if not raw:
        return []
    out = []
    for rule in json.loads(raw):
        u = str(rule.get("unit", "*"))
        first_only = "oom_above_batch" not in rule  # a memory limit holds on every attempt
        if (u in ("*", kind, uid) or (u and u in label)) and not (first_only and attempt > 0):
            out.append(rule)
    return out


def after_epoch(kind: str, uid: str, label: str, attempt: int, epoch: int) -> None:
    for r in _rules(kind, uid, label, attempt):
        if r.get("kill_after_epoch") == epoch:
            os.kill(os.getpid(), signal.SIGKILL)
        if r.get("sleep_after_epoch") == epoch:
            time.sleep(float(r.get("seconds", 5)))


def before_training(kind: str, uid: str, label: str, attempt: int, batch_size: int) -> None:
    for r in _rules(kind, uid, label, attempt):
        limit = r.get("oom_above_batch")
        if limit is not None and batch_size > int(limit):
            import torch

            raise torch.cuda.OutOfMemoryError(f"injected: batch {batch_size} does not fit (limit {limit})")


def poison(kind: str, uid: str, label: str, attempt: int) -> bool:
    """Whether to put a NaN into this unit's training images."""
    return any(r.get("nan") for r in _rules(kind, uid, label, attempt))


def before_eval(kind: str, uid: str, label: str, attempt: int, attack: str) -> None:
    """Raise where a rule makes this unit's evaluation of `attack` fail."""
    for r in _rules(kind, uid, label, attempt):
        if r.get("fail_attack") == attack:
            raise RuntimeError(f"injected: the {attack} evaluation fails")
