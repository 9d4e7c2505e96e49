"""Models: timm factory, the normalization wrapper, and safe checkpoints (safetensors + SHA-256).

Images enter every model in [0, 1]; `Normalized` applies the pretrained config's mean/std inside the model,
so attacks and epsilons always live in pixel space.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
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
        self.weights_info: dict[str, Any] = {"kind": "random"}  # where the starting weights came from
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


@lru_cache(maxsize=1)
def known_model_names() -> frozenset[str]:
    import timm

    return frozenset(timm.list_models())


def create_model(model_cfg: dict[str, Any], num_classes: int, image_size: int, pretrained: bool = False) -> Normalized:
    """Create a timm model by name, sized for the task, wrapped with its own normalization.

    `model_cfg` may name a local `checkpoint` (loaded with `load_weights`, replacing timm's pretrained
    weights) and `mean`/`std` (else the model's pretrained config gives them). What was loaded, with its
    SHA-256, is left on the returned wrapper as `weights_info` so the caller can store it with the unit.
    """
    if model_cfg.get("robustbench"):
        return _create_robustbench(model_cfg, num_classes)
    import timm

    name = model_cfg["name"]
    kwargs = dict(model_cfg.get("kwargs") or {})
    checkpoint = model_cfg.get("checkpoint")
    use_hub = bool(pretrained) and not checkpoint
    unreachable = ""
    try:
        with _cache_only_when_hub_unreachable(use_hub) as unreachable:
            try:
                # Size-aware models (ViT, Swin, ...) take the task's image size; others ignore spatial size.
                model = timm.create_model(
                    name, pretrained=use_hub, num_classes=num_classes, **{"img_size": image_size, **kwargs}
                )
            except TypeError:
                if "img_size" in kwargs:
                    raise
                model = timm.create_model(name, pretrained=use_hub, num_classes=num_classes, **kwargs)
    except RuntimeError as exc:
        if "Unknown model" in str(exc):
            raise CheckpointError(f"unknown timm model {name!r}; run `rttui validate` for close names") from None
        if use_hub:
            raise _hub_error(name, exc, unreachable) from None
        raise
    except TypeError as exc:
        raise CheckpointError(f"model {name!r} rejects its kwargs ({exc}); fix [models.{name}] kwargs") from None
    except Exception as exc:
        if use_hub:
            raise _hub_error(name, exc, unreachable) from None
        raise
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    for key in ("mean", "std"):
        v = model_cfg.get(key)
        if v is not None and (
            len(v) != 3 or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in v)
        ):
            raise CheckpointError(
                f"{key} {v!r} for model {name!r} is not three numbers; write e.g. {key} = [0.5, 0.5, 0.5]"
            )
    mean = tuple(model_cfg.get("mean") or cfg.get("mean", (0.5, 0.5, 0.5)))
    std = tuple(model_cfg.get("std") or cfg.get("std", (0.5, 0.5, 0.5)))
    wrapped = Normalized(model, mean, std)
    if checkpoint:
        wrapped.weights_info = load_weights(
            wrapped, weights_path(checkpoint), keep_normalization=bool(model_cfg.get("mean"))
        )
    elif use_hub:
        wrapped.weights_info = _hub_weights_info(cfg)
    else:
        wrapped.weights_info = {"kind": "random"}
    return wrapped


def _create_robustbench(model_cfg: dict[str, Any], num_classes: int) -> Normalized:
    """A RobustBench zoo model: its weights from RobustBench's layout under `model_dir` when given (a source),
    random otherwise (a target run then loads its source's checkpoint). RobustBench models take [0, 1] images and
    normalize themselves, so the wrapper's mean/std are the identity unless the study sets them."""
    from rttui.engine import robustbench

    rb = model_cfg["robustbench"]
    name, dataset, threat = model_cfg["name"], rb["dataset"], rb["threat_model"]
    folder = model_cfg.get("model_dir")
    model_dir = weights_path(folder) if folder else None
    net = robustbench.create(name, dataset, threat, num_classes, model_dir)
    mean = tuple(model_cfg.get("mean") or (0.0, 0.0, 0.0))
    std = tuple(model_cfg.get("std") or (1.0, 1.0, 1.0))
    wrapped = Normalized(net, mean, std)
    if model_dir is not None:
        path = robustbench.checkpoint_path(name, dataset, threat, model_dir)
        wrapped.weights_info = {
            "kind": "robustbench",
            "name": name,
            "dataset": dataset,
            "threat_model": threat,
            "file": str(path.resolve()),
            "sha256": sha256_file(path),
            "robustbench": robustbench.version(),
            "published": robustbench.published(name, dataset, threat),
        }
    return wrapped


def model_skeleton(model_cfg: dict[str, Any], image_size: int) -> Normalized | None:
    """The model built on the meta device: no memory, no weights, no download, a fraction of a second even for
    a large ViT. A study's check builds it so that kwargs the model does not take, or a freeze depth it does not
    have, are refused before anything runs (a TypeError of the constructor names the keyword), and runs one
    meta-device forward pass of `image_size` images (shapes only, no arithmetic), so kwargs that cannot work at
    that size (a ViT's patch_size of 0 or above the image, an img_size other than the study's) are refused too,
    not found by every unit at run time. None when the model cannot be built or run on the meta device for a
    reason of the meta device itself (a real build would say which)."""
    rb = model_cfg.get("robustbench")
    if rb:
        from rttui.engine import robustbench

        try:
            net = robustbench.skeleton(model_cfg["name"], rb["dataset"], rb["threat_model"])
        except CheckpointError:
            raise
        except Exception:  # the meta device's limits (data-dependent builders): the real build will say
            return None
        return Normalized(net, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    import timm

    name = model_cfg["name"]
    kwargs = dict(model_cfg.get("kwargs") or {})
    fix = f"fix [models.{name}] kwargs (see the model's timm signature)"
    try:
        with torch.device("meta"):
            try:
                model = timm.create_model(name, pretrained=False, num_classes=2, **{"img_size": image_size, **kwargs})
            except TypeError:
                if "img_size" in kwargs:
                    raise
                model = timm.create_model(name, pretrained=False, num_classes=2, **kwargs)
    except TypeError as exc:
        raise CheckpointError(f"model {name!r} rejects its kwargs ({exc}); {fix}") from None
    except Exception as exc:
        if _meta_only(exc):  # the meta device's own limit: the real build at run time will say whether it works
            return None
        raise CheckpointError(f"model {name!r} cannot be built with its kwargs ({_first_line(exc)}); {fix}") from None
    was_training = model.training
    try:
        model.eval()  # batch norm in training mode refuses a batch of one; eval checks the same shapes
        with torch.no_grad():
            model(torch.empty(1, 3, image_size, image_size, device="meta"))
    except Exception as exc:
        if not _meta_only(exc):
            raise CheckpointError(
                f"model {name!r} cannot take the study's {image_size}x{image_size} images with its kwargs "
                f"({_first_line(exc)}); {fix}, or change [target] image_size"
            ) from None
    finally:
        model.train(was_training)
    return Normalized(model, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def _meta_only(exc: BaseException) -> bool:
    """Whether an error is the meta device's own (data-dependent code such as `.item()` cannot run on shapes
    alone), not the model's: such a model is simply not checked here."""
    text = str(exc).lower()
    return "meta" in text or isinstance(exc, NotImplementedError)


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def weights_path(spec: str) -> Path:
    """A checkpoint path as a study writes it: `~` and `$VARS` expanded, `$RTTUI_DATA` defaulting to ./data
    (as for datasets), so a study can name files under the data folder on any machine."""
    home = os.environ.get("RTTUI_DATA") or "data"  # datasets.common.data_home, without importing the loaders
    spec = spec.replace("${RTTUI_DATA}", "$RTTUI_DATA").replace("$RTTUI_DATA", home)
    return Path(os.path.expandvars(spec)).expanduser()


def _hub_error(name: str, exc: BaseException, unreachable: str = "") -> CheckpointError:
    first = str(exc).strip().splitlines()[0].split(". ")[0] if str(exc).strip() else ""
    why = f"{type(exc).__name__}: {first[:160]}"
    if unreachable:  # read from the cache only: a cache miss says so in words, anything else as it is
        missing = type(exc).__name__ in ("LocalEntryNotFoundError", "OfflineModeIsEnabled")
        why = f"{unreachable} could not be reached, and " + (
            "they are not in the Hugging Face cache" if missing else f"reading the cache failed ({why})"
        )
    return CheckpointError(
        f"pretrained weights for {name!r} could not be loaded ({why}); "
        f"on a machine without internet put them in the Hugging Face cache ($HF_HOME) or point at a local file "
        f'with [models.{name}] checkpoint = "/path/to/weights.safetensors"'
    )


PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy")


@lru_cache(maxsize=4)
def _unreachable_host(endpoint: str, timeout: float = 3.0) -> str:
    """The hub's host when it cannot be reached (name lookup or a TCP connect within `timeout` s), else "".
    Asked once per process: a study loads several models, and the network does not come back mid-run."""
    import socket
    from urllib.parse import urlsplit

    u = urlsplit(endpoint)
    host, port = u.hostname or "", u.port or (80 if u.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError:
        return host or endpoint
    return ""


@contextmanager
def _cache_only_when_hub_unreachable(use_hub: bool) -> Iterator[str]:
    """Offline, huggingface_hub asks the hub for each file five times with back-off (about 50 s and a line per
    try) before it looks in its cache. When the hub's host cannot be reached, read the cache only, at once, as
    HF_HUB_OFFLINE=1 would; yields that host (or "" when the hub is reachable, offline mode is already on, or
    a proxy is set: the proxy decides what is reachable, so huggingface_hub is left to ask it)."""
    if not use_hub:
        yield ""
        return
    import huggingface_hub.constants as hub

    if hub.is_offline_mode() or any(os.environ.get(v) for v in PROXY_VARS):
        yield ""
        return
    host = _unreachable_host(hub.ENDPOINT)
    if not host:
        yield ""
        return
    saved = hub.HF_HUB_OFFLINE
    hub.HF_HUB_OFFLINE = True
    try:
        yield host
    finally:
        hub.HF_HUB_OFFLINE = saved


def _hub_weights_info(cfg: dict[str, Any]) -> dict[str, Any]:
    """Where timm's pretrained weights came from and, when the cached file can be found, its SHA-256."""
    info: dict[str, Any] = {"kind": "timm", "tag": cfg.get("architecture", "") + "." + str(cfg.get("tag", ""))}
    hub_id = cfg.get("hf_hub_id")
    if hub_id:
        info["hf_hub_id"] = hub_id
        try:
            from huggingface_hub import try_to_load_from_cache

            for fname in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
                found = try_to_load_from_cache(hub_id, fname)
                if isinstance(found, str):
                    info["file"], info["sha256"] = found, sha256_file(Path(found))
                    break
        except Exception:  # the record is best effort; the weights loaded already
            pass
    elif cfg.get("url"):
        info["url"] = cfg["url"]
    return info


CLASSIFIER_FALLBACK = ("fc", "head", "classifier", "head.fc", "last_linear")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file or a PyTorch file loaded with `weights_only=True` (never arbitrary pickle).

    timm's reader unwraps the usual containers ('state_dict', 'model', EMA) and DDP/compile prefixes.
    """
    from timm.models import load_state_dict

    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder; give the path of a .safetensors or .pth file in it")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; give the path of a .safetensors or .pth file")
    try:
        state = load_state_dict(str(path), use_ema=False, weights_only=True)
    except Exception as exc:  # safetensors, pickle and zip errors all mean: not a readable weights file
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise CheckpointError(
            f"checkpoint {path} cannot be read as weights ({type(exc).__name__}: {first}); "
            "save it with safetensors or torch.save(model.state_dict())"
        ) from None
    if not isinstance(state, dict) or not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"checkpoint {path} holds no tensors; save it with torch.save(model.state_dict())")
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def _strip_robustness_wrapper(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """MadryLab `robustness` checkpoints hold `model.*`, `attacker.model.*` and `normalizer.*`; keep `model.*`."""
    if any(k.startswith("attacker.") for k in state) and any(k.startswith("model.") for k in state):
        return {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
    return state


def load_weights(model: Normalized, path: Path, keep_normalization: bool = False) -> dict[str, Any]:
    """Load a user's checkpoint into a (wrapped) timm model; the one loader for sources and robust sources.

    Accepts the bare timm/torchvision state dict, an rttui checkpoint (wrapper with `mean`/`std`) or a
    MadryLab robustness checkpoint. Classifier weights whose shape does not fit the model's head are skipped
    (transfer replaces the head anyway); any other missing, unexpected or misshapen tensor is a
    CheckpointError, and the model is left untouched. Returns what was loaded, with the file's SHA-256.
    """
    state = read_state_dict(path)
    own_wrapped = (
        "mean" in state and "std" in state and all(k in ("mean", "std") or k.startswith("model.") for k in state)
    )
    if own_wrapped:
        target: nn.Module = model
        if keep_normalization:
            state = {k: v for k, v in state.items() if k not in ("mean", "std")}
    else:
        target = model.model
        state = _strip_robustness_wrapper(state)
    prefix = "model." if own_wrapped else ""
    head_names = {str(getattr(model.model, "pretrained_cfg", {}).get("classifier") or ""), *CLASSIFIER_FALLBACK}
    heads = tuple(f"{prefix}{h}." for h in head_names if h)
    own = target.state_dict()
    skipped = [k for k, v in state.items() if k.startswith(heads) and (k not in own or own[k].shape != v.shape)]
    state = {k: v for k, v in state.items() if k not in skipped}
    bad = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    unexpected = [k for k in state if k not in own]
    missing = [
        k
        for k in own
        if k not in state
        and not k.endswith("num_batches_tracked")
        and not k.startswith(heads)
        and not (own_wrapped and keep_normalization and k in ("mean", "std"))
    ]
    if bad or unexpected or missing:
        if bad:
            what = f"{bad[0]} is {tuple(state[bad[0]].shape)} in the file but {tuple(own[bad[0]].shape)} in the model"
        elif unexpected:
            what = f"{len(unexpected)} tensors the model does not have, e.g. {unexpected[0]}"
        else:
            what = f"{len(missing)} tensors of the model are missing, e.g. {missing[0]}"
        raise CheckpointError(
            f"checkpoint {path} does not fit model {_arch(model)} ({what}); "
            "name the model the checkpoint was trained as, or give a checkpoint of this model"
        )
    target.load_state_dict(state, strict=False)
    return {
        "kind": "checkpoint",
        "file": str(path.resolve()),
        "sha256": sha256_file(path),
        "format": "safetensors" if path.suffix == ".safetensors" else "torch",
        "skipped_head": sorted(skipped),
    }


def _arch(model: Normalized) -> str:
    cfg = getattr(model.model, "pretrained_cfg", {}) or {}
    return repr(cfg.get("architecture") or type(model.model).__name__)


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

    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder, not rttui's weights file; move it away and re-run")
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
