"""Checks of everything a study reads from disk, run before any run starts and before the database opens.

A missing dataset folder, a malformed label file, an undecodable image, a checkpoint that does not fit its
model or pretrained weights that cannot be fetched each fail here, as one-line errors, so a bad input never
leaves failed rows behind. Never writes anything.
"""

from __future__ import annotations

import json
from typing import Any

from rttui.runner.tasks import source_needs_data, source_weights
from rttui.study.plan import Plan


def _key(*parts: Any) -> str:
    return json.dumps(parts, sort_keys=True, default=str)


def check_inputs(plan: Plan) -> None:
    """Load every distinct dataset and starting weights the plan uses once (raises DataError/CheckpointError)."""
    from rttui.engine import data, models

    seen: set[str] = set()
    for sp in plan.sources.values():
        cfg = sp.config
        weights = source_weights(cfg)
        if weights or cfg["pretrained"]:
            k = _key("weights", cfg["model"], weights, cfg["pretrained"], cfg["image_size"])
            if k not in seen:
                seen.add(k)
                models.create_model({**cfg["model"], **weights}, 0, cfg["image_size"], cfg["pretrained"])
        if source_needs_data(cfg):
            k = _key("data", cfg["data"], cfg["image_size"])
            if k not in seen:
                seen.add(k)
                data.check_task(data.load_task(cfg["data"], cfg["image_size"]))
    for rp in plan.runs:
        target = rp.config["target"]
        k = _key("data", target, target["image_size"])
        if k not in seen:
            seen.add(k)
            data.check_task(data.load_task(target, target["image_size"]))
