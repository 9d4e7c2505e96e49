"""On-demand layer analysis of a finished run: its starting model (source + seeded new head) against its
trained checkpoint, on the same fixed batch a layer-freezing run uses. Plain records out; the caller stores them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rttui.runner.tasks import build_target_model


def analyze_run(
    config: dict[str, Any],
    source: dict[str, Any],
    trained: dict[str, Any],
    n_images: int = 128,
    device: str | None = None,
) -> list[dict[str, Any]]:
    """Gradient flow (at the start of fine-tuning and after it) and CKA per depth group of one run."""
    from rttui.engine import data, layers, models, train

    dev = train.pick_device(device)
    task = data.load_task(config["target"], config["target"]["image_size"])
    x, y, batch = layers.fixed_batch(*task.train.head(n_images), n_images)
    x, y = x.to(dev), y.to(dev)
    start = build_target_model(config, source, task.num_classes, dev)
    before = layers.snapshot(start, x, y)
    del start
    end = models.create_model(config["model"], trained["num_classes"], config["target"]["image_size"]).to(dev)
    models.load_checkpoint(end, Path(trained["checkpoint"]), trained["sha256"])
    after = layers.snapshot(end, x, y)
    info = trained.get("info") or {}
    if isinstance(info, str):
        info = json.loads(info or "{}")
    return layers.analyze(end, before, after, int(info.get("frozen_groups", 0)), len(y), batch).rows()
