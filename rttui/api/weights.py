"""Weights files from elsewhere: converting a MadryLab `robustness` checkpoint to safetensors.

Imports torch only inside the call, so `rttui --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def convert_checkpoint(src: str | Path, dst: str | Path, force: bool = False) -> dict[str, Any]:
    """Convert a MadryLab robustness checkpoint (weights-only pickle) to a plain safetensors file; see
    `rttui.engine.convert`. Returns the path, tensor and parameter counts and the SHA-256 written."""
    from rttui.engine.convert import convert_robustness_checkpoint

    return convert_robustness_checkpoint(Path(src), Path(dst), force=force)
