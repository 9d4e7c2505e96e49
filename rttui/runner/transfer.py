"""Transfer evaluations as the runner runs them: load the surrogate the plan names, keep the crafted images as
files, and hand both to the engine's transfer attack (`rttui.engine.attacks.transfer`).

Crafted once, used many times. The images of one epsilon are keyed by what determines them: the surrogate's
weights (SHA-256 of its checkpoint), the crafting parameters and the surrogate's seed (its random starts), the
test set (the target's data config and split; the file also records a digest of the clean test images, and a
file whose digest differs is crafted again, never used), the epsilon (with the smaller epsilons of the grid
when `warm_start` chains them) and `TRANSFER_REVISION`. Every target that shares the key reads the same file:
the three strategies of one (model, seed) share their source's images, and a rerun reads what the first run
wrote, so it recomputes nothing and gives the same numbers.

Files: `<artifacts>/transfer/<key>.safetensors` holding `x_adv` (float32, test-set order) and `score` (per
sample: the feature distance reached on the source, or 1.0 where the sibling surrogate was fooled), with the
key's inputs in the metadata. float32 because that is what the attack crafted and the target classifies:
uint8 would move each pixel by up to 1/510 (a few percent of eps = 0.01, and possibly out of the ball) and
float16 rounds the perturbation too, so either could change a prediction; exactness costs 4 bytes per pixel
(1.2 MB per epsilon for 300 images at 32x32). The key of each epsilon is stored in the evaluation's row
(`evaluations.crafted`), with the surrogate's unit id and hash. Not in SQLite: images are bulk data.

Never import a face here; torch only inside functions.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from rttui.study.plan import EvalPlan, config_hash

# Bump when the crafting algorithm changes: it joins every image key, so old files are never taken for new.
TRANSFER_REVISION = 1
CRAFT_KEYS = ("surrogate", "norm", "steps", "step_size", "rel_step_size", "random_start", "restarts", "warm_start")


def test_set_id(target: dict[str, Any]) -> str:
    """The identity of a target's test set as its config fixes it: data settings and image size, test split."""
    return config_hash({"target": target, "split": "test"}, 16)


def tensor_digest(x: Any, y: Any) -> str:
    """SHA-256 of the clean test images (float32) and labels: what the key's test-set id must stand for."""
    import numpy as np

    h = hashlib.sha256()
    h.update(np.ascontiguousarray(x.detach().float().cpu().numpy()).tobytes())
    h.update(np.ascontiguousarray(y.detach().cpu().numpy().astype("int64")).tobytes())
    return h.hexdigest()


class CraftedImages:
    """The engine's `CraftCache` on files: one safetensors file per image key (see the module doc)."""

    def __init__(self, folder: Path, base: dict[str, Any], digest: str, shape: tuple[int, ...]) -> None:
        self.folder = folder
        self.base = base
        self.digest = digest
        self.shape = shape
        self.keys: dict[float, str] = {}
        self.reused: list[float] = []
        self.crafted: list[float] = []

    def key(self, eps: float, prior: tuple[float, ...]) -> str:
        chain = [float(e) for e in prior] if self.base["params"].get("warm_start") else []
        return config_hash({**self.base, "eps": float(eps), "prior": chain}, 24)

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.safetensors"

    def load(self, eps: float, prior: tuple[float, ...]) -> Any:
        from safetensors import SafetensorError, safe_open

        key = self.key(eps, prior)
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                x_adv, score = f.get_tensor("x_adv"), f.get_tensor("score")
        except (SafetensorError, OSError, ValueError):
            return None  # a torn or foreign file: craft again (and overwrite it)
        if meta.get("test_digest") != self.digest or tuple(x_adv.shape) != self.shape:
            return None  # the key's test set is not these images (data changed on disk): never use them
        self.keys[float(eps)] = key
        self.reused.append(float(eps))
        return x_adv, score.double().numpy()

    def save(self, eps: float, prior: tuple[float, ...], x_adv: Any, score: Any) -> None:
        import torch
        from safetensors.torch import save_file

        key = self.key(eps, prior)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self._path(key)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")  # two workers crafting the same key write the same bytes
        meta = {
            "key": json.dumps({**self.base, "eps": float(eps), "prior": list(prior)}, sort_keys=True, default=str),
            "test_digest": self.digest,
        }
        tensors = {"x_adv": x_adv.float().contiguous(), "score": torch.as_tensor(score, dtype=torch.float64)}
        save_file(tensors, str(tmp), metadata=meta)
        tmp.replace(path)
        self.keys[float(eps)] = key
        self.crafted.append(float(eps))


def surrogate_model(spec: dict[str, Any], image_size: int, device: Any) -> Any:
    """The surrogate's model on `device`, from its checkpoint (hash checked): the source model as it was
    trained (its source head, if any, is never used), or the sibling run rebuilt as it was fine-tuned."""
    from rttui.engine import models
    from rttui.runner.tasks import build_target_model

    if spec["kind"] == "source":
        model = models.create_model(spec["model"], int(spec["num_classes"]), image_size, pretrained=False)
    else:
        model = build_target_model(spec["config"], spec["source"], int(spec["num_classes"]), device)
    models.load_checkpoint(model, Path(spec["checkpoint"]), spec["sha256"])
    return model.to(device).eval()


def evaluate_transfer(
    model: Any,
    test: Any,
    target: dict[str, Any],
    ep: EvalPlan,
    spec: dict[str, Any],
    artifacts: Path,
    clean_pred: Any,
    batch_size: int,
    on_progress: Any = None,
    *,
    num_classes: int | None = None,
    precision: str = "fp32",
    compile_model: bool = False,
    train_path: str | None = None,
    on_eps: Any = None,
) -> tuple[Any, dict[str, Any]]:
    """Run one transfer evaluation of `model` (the target) on its test split; returns the engine's
    AttackResult and the evaluation row's extra columns (surrogate id and hash, the image key per epsilon).
    `on_eps` is the engine's per-epsilon callback (`rttui.engine.evaluate.evaluate_attack`)."""
    from rttui.engine.attacks.transfer import Surrogate
    from rttui.engine.evaluate import evaluate_attack

    dev = next(model.parameters()).device
    sur_model = surrogate_model(spec, int(target["image_size"]), dev)
    params = {k: ep.params.get(k) for k in CRAFT_KEYS}
    base = {
        "v": TRANSFER_REVISION,
        "surrogate_sha256": spec["sha256"],
        "seed": int(spec["seed"]),
        "params": params,
        "test_set": test_set_id(target),
    }
    cache = CraftedImages(artifacts / "transfer", base, tensor_digest(test.x, test.y), tuple(test.x.shape))
    res = evaluate_attack(
        model,
        test.x,
        test.y,
        ep.attack,
        ep.params,
        list(ep.epsilons),
        mode=ep.mode,
        batch_size=batch_size,
        seed=int(spec["seed"]),
        clean_pred=clean_pred,
        on_progress=on_progress,
        num_classes=num_classes,
        precision=precision,
        compile_model=compile_model,
        train_path=train_path,
        surrogate=Surrogate(sur_model, str(spec["kind"]), int(spec["seed"]), cache),
        on_eps=on_eps,
    )
    del sur_model
    extra = {
        "surrogate_id": spec["id"],
        "surrogate_sha256": spec["sha256"],
        "crafted": json.dumps(
            {
                "keys": {f"{k:g}": v for k, v in sorted(cache.keys.items())},
                "crafted": cache.crafted,
                "reused": cache.reused,
            }
        ),
    }
    return res, extra
