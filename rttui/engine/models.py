"""Models: timm factory, the normalization wrapper, and safe checkpoints (safetensors + SHA-256).

Images enter every model in [0, 1]; `Normalized` applies the pretrained config's mean/std inside the model,
so attacks and epsilons always live in pixel space.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rttui.errors import CheckpointError


class Normalized(nn.Module):
    """Wraps a timm model so it takes [0, 1] images and normalizes them itself."""

    def __init__(self, model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


@lru_cache(maxsize=1)
def known_model_names() -> frozenset[str]:
    import timm

    return frozenset(timm.list_models())


def create_model(model_cfg: dict[str, Any], num_classes: int, image_size: int, pretrained: bool = False) -> Normalized:
    """Create a timm model by name, sized for the task, wrapped with its own normalization."""
    import timm

    name = model_cfg["name"]
    kwargs = dict(model_cfg.get("kwargs") or {})
    try:
        try:
            # Size-aware models (ViT, Swin, ...) take the task's image size; others ignore spatial size.
            model = timm.create_model(
                name, pretrained=pretrained, num_classes=num_classes, **{"img_size": image_size, **kwargs}
            )
        except TypeError:
            if "img_size" in kwargs:
                raise
            model = timm.create_model(name, pretrained=pretrained, num_classes=num_classes, **kwargs)
    except RuntimeError as exc:
        if "Unknown model" in str(exc):
            raise CheckpointError(f"unknown timm model {name!r}; run `rttui validate` for close names") from None
        raise
    except TypeError as exc:
        raise CheckpointError(f"model {name!r} rejects its kwargs ({exc}); fix [models.{name}] kwargs") from None
    except Exception as exc:
        if pretrained:
            raise CheckpointError(
                f"pretrained weights for {name!r} could not be loaded ({type(exc).__name__}: {exc}); "
                "put them in the timm/Hugging Face cache or set pretrained = false"
            ) from None
        raise
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    mean = tuple(cfg.get("mean", (0.5, 0.5, 0.5)))
    std = tuple(cfg.get("std", (0.5, 0.5, 0.5)))
    return Normalized(model, mean, std)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(model: nn.Module, path: Path, metadata: dict[str, Any] | None = None) -> str:
    """Write the model's weights as safetensors (never pickle) and return the file's SHA-256."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {"rttui": json.dumps(metadata or {}, sort_keys=True, default=str)}
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(path)
    return sha256_file(path)


def load_checkpoint(model: nn.Module, path: Path, sha256: str | None = None, strict: bool = True) -> None:
    """Load safetensors weights into `model`, refusing a file whose hash or shapes do not match."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is missing; re-run the study to retrain it")
    if sha256 is not None and sha256_file(path) != sha256:
        raise CheckpointError(f"checkpoint {path} does not match its recorded SHA-256; delete it and re-run")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} is not a valid safetensors file ({exc}); re-create it") from None
    own = model.state_dict()
    bad = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    missing = [k for k in own if k not in state]
    if bad or (strict and missing):
        what = f"shape mismatch at {bad[0]}" if bad else f"missing {missing[0]}"
        raise CheckpointError(f"checkpoint {path} does not fit the model ({what}); check the model name and classes")
    model.load_state_dict(state, strict=strict)
