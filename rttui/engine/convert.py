"""Convert a MadryLab `robustness` checkpoint to a plain safetensors file of the bare network's tensors.

MadryLab's robust ImageNet/CIFAR models are torch pickles `{'model' or 'state_dict': {'module.model.*',
'module.attacker.model.*', 'module.normalizer.*'}, 'epoch': ..., ...}`. The file is read with
`torch.load(weights_only=True)` (tensors and plain containers only: a pickle holding any other object is refused,
never run), the wrapper is stripped (keep `model.*`), and the result is written as safetensors, which a study's
`checkpoint` then loads into the timm model of the same architecture (resnet18, resnet50, ...).

Never writes OUT unless the whole conversion succeeded (a temporary file is renamed into place).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from rttui.errors import CheckpointError


def load_weights_only(path: Path, refused: str) -> Any:
    """`torch.load(weights_only=True)` on CPU: tensors and plain containers, or a one-line CheckpointError made from
    `refused` (its `{why}` replaced by the loader's first line) for anything else (custom classes, a saved
    module, a damaged file). The one weights-only reader of converted and RobustBench checkpoints."""
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, AttributeError, TypeError) as exc:
        why = (str(exc).strip().splitlines() or [""])[0][:140]
        raise CheckpointError(refused.replace("{why}", why)) from None  # not format: a path may hold braces


def _unwrap(obj: Any, path: Path) -> dict[str, Any]:
    """The state dict inside a robustness checkpoint: `model`, else `state_dict`, else the file itself."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a checkpoint dict; give a robustness .pt")
    for key in ("model", "state_dict"):
        inner = obj.get(key)
        if isinstance(inner, dict):
            return inner
    return obj


def strip_robustness(state: dict[str, Any]) -> dict[str, Any]:
    """`module.` (DataParallel) off, then of `model.*` / `attacker.model.*` / `normalizer.*` keep `model.*`."""
    state = {k[len("module.") :] if k.startswith("module.") else k: v for k, v in state.items()}
    if any(k.startswith("model.") for k in state):
        return {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
    return state


def convert_robustness_checkpoint(src: Path, dst: Path, force: bool = False) -> dict[str, Any]:
    """Write `dst` (safetensors) from the robustness checkpoint `src`; returns what was written (path, tensor
    count, parameter count, SHA-256, the keys dropped). Refuses a missing `src`, an existing `dst` without `force`,
    and any file weights-only loading refuses."""
    import torch
    from safetensors.torch import save_file

    from rttui.engine.models import sha256_file

    if not src.is_file():
        raise CheckpointError(f"{src} does not exist or is not a file; give the path of the robustness checkpoint")
    if dst.suffix != ".safetensors":
        raise CheckpointError(f"{dst}: the output must end in .safetensors; name it e.g. {dst.stem}.safetensors")
    if dst.exists() and not force:
        raise CheckpointError(f"{dst} already exists; choose another path, or pass --force to overwrite it")
    if not dst.parent.is_dir():
        raise CheckpointError(f"{dst.parent} is not a folder; create it first or choose another output path")
    obj = load_weights_only(
        src,
        f"{src} is not a weights-only checkpoint (loading refused it: {{why}}); rttui converts only files of "
        "tensors and plain containers (re-save the weights with torch.save(model.state_dict()))",
    )
    raw = _unwrap(obj, src)
    tensors = {k: v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{src} holds no tensors; give a robustness checkpoint (with 'model' or 'state_dict')")
    state = strip_robustness(tensors)
    out = {k: v.detach().contiguous().clone() for k, v in state.items()}
    tmp = dst.with_name(dst.name + ".tmp")
    try:
        save_file(out, str(tmp), metadata={"converted_from": src.name, "by": "rttui convert-checkpoint"})
        tmp.replace(dst)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CheckpointError(f"{dst} cannot be written ({exc.strerror or exc}); choose a writable path") from None
    return {
        "path": str(dst),
        "tensors": len(out),
        "parameters": int(sum(v.numel() for v in out.values())),
        "sha256": sha256_file(dst),
        "dropped": len(tensors) - len(out),  # the attacker's copy and the normalizer
        "source": str(src),
    }
