"""Per-epoch training checkpoints, so a crash costs at most one epoch and a resumed run equals an uninterrupted one.

What is saved after each epoch: the model's weights (safetensors) and, in `state.pt`, the optimizer state, the
data-order generator, any other generator training draws from (the adversarial examples' subsets and random
starts) and the global RNG states. `state.pt` is read with `torch.load(weights_only=True)`, which refuses
anything but tensors and plain containers: nothing is ever unpickled. Both files are written to a temporary
name and renamed, and `state.pt` records the weights' SHA-256, so a crash mid-write leaves the previous epoch.
This module never decides where checkpoints live; the caller passes the folder.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rttui.engine import models


class EpochCheckpoint:
    """The training state of one unit in `folder`; `fingerprint` guards against resuming a different setup."""

    def __init__(
        self,
        folder: Path,
        fingerprint: str,
        on_start: Callable[[int, list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.fingerprint = fingerprint
        self.on_start = on_start  # told the epoch training starts after (0: fresh) and the restored history
        # (epoch, weights SHA-256) of an earlier epoch whose weights file is kept: the selected epoch (select)
        self._kept: tuple[int, str] | None = None

    @property
    def state(self) -> Path:
        return self.folder / "state.pt"

    def restore(
        self,
        model: nn.Module,
        opt: torch.optim.Optimizer,
        gen: torch.Generator,
        extra: dict[str, torch.Generator] | None = None,
    ) -> tuple[int, list]:
        """Load the last saved epoch into model/optimizer/generators/RNGs; (0, []) when there is nothing usable.

        `extra` names the generators besides the data order's (as `save` got them). A state that lacks one of
        them (saved by a version that did not keep it) is not usable: the run could not continue as it would have.
        """
        extra = extra or {}
        start, history = 0, []
        if self.state.is_file():
            try:
                st = torch.load(self.state, map_location="cpu", weights_only=True)
            except Exception:  # a torn or foreign file: start fresh rather than trust it
                st = None
            usable = st is not None and st.get("fingerprint") == self.fingerprint
            usable = usable and set(extra) <= set(st.get("generators", {}))
            weights = self.folder / str(st["weights_file"]) if usable else self.folder
            if usable and (not weights.is_file() or models.sha256_file(weights) != st["weights_sha256"]):
                usable = False  # weights missing or changed: do not trust this state
            kept = st.get("kept") if usable else None
            if kept:
                f = self.folder / f"model-{int(kept[0])}.safetensors"
                usable = f.is_file() and models.sha256_file(f) == kept[1]  # the selected epoch's weights, intact
            if usable:
                models.load_checkpoint(model, weights, st["weights_sha256"])
                opt.load_state_dict(st["optimizer"])
                gen.set_state(st["generator"])
                for name, g in extra.items():
                    g.set_state(st["generators"][name])
                torch.set_rng_state(st["torch_rng"])
                if torch.cuda.is_available() and st.get("cuda_rng"):
                    torch.cuda.set_rng_state_all(st["cuda_rng"])
                np_state = st["numpy_rng"]
                np.random.set_state((np_state[0], st["numpy_keys"].numpy().astype(np.uint32), *np_state[1:]))
                random.setstate(st["python_rng"])
                start, history = int(st["epoch"]), list(st["history"])
                self._kept = (int(kept[0]), str(kept[1])) if kept else None
        if self.on_start is not None:
            self.on_start(start, history)
        return start, history

    def save(
        self,
        model: nn.Module,
        opt: torch.optim.Optimizer,
        gen: torch.Generator,
        epoch: int,
        history: list,
        extra: dict[str, torch.Generator] | None = None,
        keep: int | None = None,
    ) -> None:
        """Save epoch `epoch`; `keep` names an epoch (this one or an earlier kept one) whose weights stay on disk
        beside it: the epoch training selects so far, which a resumed run needs at its end."""
        self.folder.mkdir(parents=True, exist_ok=True)
        # One weights file per epoch: the previous epoch stays valid until the new state.pt points past it.
        weights = self.folder / f"model-{epoch}.safetensors"
        sha = models.save_checkpoint(model, weights, {"kind": "epoch", "epoch": epoch})
        if keep is None:
            kept = None
        elif keep == epoch:
            kept = (epoch, sha)
        elif self._kept is not None and self._kept[0] == keep:
            kept = self._kept
        else:
            raise RuntimeError(f"epoch {keep}'s weights were not kept; cannot keep them now")
        np_state = np.random.get_state()
        st = {
            "fingerprint": self.fingerprint,
            "epoch": epoch,
            "history": history,
            "weights_file": weights.name,
            "weights_sha256": sha,
            "optimizer": opt.state_dict(),
            "generator": gen.get_state(),
            "generators": {name: g.get_state() for name, g in (extra or {}).items()},
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy_rng": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
            "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "python_rng": random.getstate(),
            "kept": [kept[0], kept[1]] if kept else None,
        }
        tmp = self.state.with_suffix(".tmp")
        torch.save(st, tmp)
        tmp.replace(self.state)
        self._kept = kept
        keep_names = {weights.name} | ({f"model-{kept[0]}.safetensors"} if kept else set())
        for old in self.folder.glob("model-*.safetensors"):
            if old.name not in keep_names:
                old.unlink(missing_ok=True)

    def kept_weights(self, epoch: int | None) -> dict[str, torch.Tensor]:
        """The kept weights of `epoch` (see `save(keep=...)`), read back after `restore`."""
        from safetensors.torch import load_file

        if epoch is None or self._kept is None or self._kept[0] != epoch:
            raise RuntimeError(f"no kept weights of epoch {epoch} in {self.folder}")
        f = self.folder / f"model-{epoch}.safetensors"
        if models.sha256_file(f) != self._kept[1]:
            raise RuntimeError(f"{f} does not match its recorded SHA-256")
        return load_file(str(f))

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
