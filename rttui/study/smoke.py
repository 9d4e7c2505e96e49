"""Smoke scale: the same study at a size that runs in minutes, so a broken path shows before a long run does.

`smoke_study` is a pure function of a `Study`: every block keeps its datasets, roots, classes, image size,
models, checkpoints, strategies, techniques and attacks (so a wrong path, a missing class, a checkpoint that does
not fit or an attack that crashes on the model fails here exactly as it would in the real run), and only the
amount of work shrinks:

- one seed (the first);
- training: at most one epoch, for sources and runs;
- data: two batches of every training split and one batch of every test split (the batch where an
  out-of-memory attack shows), through the datasets' own `train_size` / `test_size` caps (the loaders list files
  and labels, then decode only the capped images); fewer images than classes where the loader draws classes in
  turn (the study says `smoke = true`, which lets validation accept it), one per class where its split is
  stratified (digits);
- evaluation: two epsilons of the grid (its smallest positive one and its largest), every attack with its
  iteration counts cut (`steps`, DeepFool's `candidates`, PGD `restarts`), and `labels = "predicted"`: each test
  image is attacked away from the model's own prediction, so every attack runs on every capped image even on an
  untrained or randomly initialised model (an attack that only ever meets misclassified images never runs);
- the attack-strength audit: on at most two images per epsilon, its APGD-CE iterations cut the same way;
- techniques: their training attacks' `steps` cut the same way;
- optionally (`random_weights`) timm's pretrained weights replaced by a random init, for a machine that cannot
  download them (local checkpoints are still loaded and checked);
- optionally (`batch_cap`) every batch size capped: a CPU cannot test a GPU's memory anyway, and a full batch
  of a 224-pixel model is slow there. Without it each batch keeps the study's size, so an out-of-memory batch
  shows.

The result is a `Study` parsed from an explicit TOML (`raw`), so it validates like any study and a face can show
or save it. Its ids differ from the real study's (the config differs); the caller stores it in a database of its
own. Never import torch, the runner or a face here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rttui.study.catalog import stratified
from rttui.study.files import study_toml
from rttui.study.spec import Block, Choice, Study, parse_study

# Iteration counts an attack (or a technique's training attack) keeps at smoke scale.
CUT_PARAMS: dict[str, int] = {"steps": 2, "restarts": 1, "candidates": 3}
AUDIT_IMAGES = 2  # survivors the audit re-attacks per epsilon at smoke scale


@dataclass(frozen=True)
class SmokeScale:
    """How small a smoke run is: `batches` of every training split, `eval_batches` of every test split;
    `batch_cap` caps every batch size (None: the study's own)."""

    batches: int = 2
    eval_batches: int = 1
    batch_cap: int | None = None
    epsilons: int = 2
    steps: int = CUT_PARAMS["steps"]
    random_weights: bool = False

    def describe(self) -> str:
        """One line saying what the smoke scale keeps and cuts (for the run's summary)."""
        bs = f"batches capped at {self.batch_cap} images" if self.batch_cap else "the study's batch sizes"
        weights = (
            "random weights instead of timm's pretrained ones (not checked)"
            if self.random_weights
            else "the study's weights"
        )
        return (
            f"1 seed, <= 1 epoch, {self.batches} training batches and {self.eval_batches} test batch per split "
            f"({bs}), {self.epsilons} epsilons, "
            f"attack steps <= {self.steps}, predicted labels, {weights}"
        )


def _cap(value: Any, limit: int) -> int:
    return limit if value is None else min(int(value), limit)


def _classes(section: dict[str, Any]) -> int:
    """How many classes a split must hold one image of each (a stratified split refuses fewer images): the study's
    `classes` when it names them, else 10 (digits and CIFAR-10, the datasets that have a default class set)."""
    cls = section.get("classes")
    return cls if isinstance(cls, int) else len(cls) if isinstance(cls, list) else 10


def _sized(section: dict[str, Any], key: str, limit: int) -> int:
    """A smoke split size: the real one capped at `limit`; never below one image per class where the dataset's
    split is stratified (digits), while a dataset that draws classes in turn keeps just `limit` images (a
    100-class task's smoke run attacks one batch, not 100 images; the run's input checks still list every
    class's files)."""
    size, real = _cap(section[key], limit), section[key]
    if not stratified(str(section["dataset"])):
        return size
    return max(size, _classes(section) if real is None else min(_classes(section), int(real)))


def _batch(bs: Any, scale: SmokeScale) -> int:
    return _cap(bs, scale.batch_cap) if scale.batch_cap else int(bs)


def _cut(params: dict[str, Any], scale: SmokeScale) -> dict[str, Any]:
    """Iteration counts cut to the smoke scale; everything else as it was."""
    limits = {**CUT_PARAMS, "steps": scale.steps}
    return {k: (min(int(v), limits[k]) if k in limits and isinstance(v, int) else v) for k, v in params.items()}


def _grid(eps: list[float], n: int) -> list[float]:
    """`n` epsilons of the grid: its smallest positive one and its largest (then the next largest, ...)."""
    pos = [e for e in eps if e > 0] or list(eps)
    pick = [pos[0], *reversed(pos[1:])][:n] if n > 1 else pos[-1:]
    return sorted(set(pick))


def _audit(ev: dict[str, Any], scale: SmokeScale) -> dict[str, Any]:
    """The attack-strength audit at smoke scale: its code path runs (the reference APGD-CE on this model, at
    each epsilon) on a handful of images with its iterations cut like the attacks'; off stays off."""
    audit = dict(ev.get("audit") or {})
    if audit.get("enabled", True) is False:
        return audit
    cut = {"max_samples": AUDIT_IMAGES, "min_samples": 1, "min_iters": scale.steps, "apgd_iters_factor": 1}
    return {**audit, **cut, **({"restarts": 1, "steps_factor": 1} if audit.get("pgd") else {})}


def _choice(c: Choice, params: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": c.name, **(c.params if params is None else params)}


def _smoke_block(b: Block, scale: SmokeScale) -> dict[str, Any]:
    train_bs = _batch(b.train["batch_size"], scale)
    eval_bs = _batch(b.eval["batch_size"], scale)
    src_bs = _batch(b.source["batch_size"], scale)
    source = {
        **b.source,
        "epochs": min(int(b.source["epochs"]), 1),
        "batch_size": src_bs,
        "train_size": _sized(b.source, "train_size", scale.batches * src_bs),
        "test_size": _sized(b.source, "test_size", scale.eval_batches * eval_bs),
    }
    if scale.random_weights:
        source["pretrained"] = False
    target = {
        **b.target,
        "train_size": _sized(b.target, "train_size", scale.batches * train_bs),
        "test_size": _sized(b.target, "test_size", scale.eval_batches * eval_bs),
    }
    train = {**b.train, "epochs": min(int(b.train["epochs"]), 1), "batch_size": train_bs}
    grid = _grid(list(b.eval["epsilons"]), scale.epsilons)
    ev = {**b.eval, "epsilons": grid, "batch_size": eval_bs, "labels": "predicted", "audit": _audit(b.eval, scale)}
    if ev.get("report_eps") not in grid:
        ev["report_eps"] = None
    models = []
    for m in b.models:
        params = dict(m.params)
        if scale.random_weights and params.get("pretrained"):
            params["pretrained"] = False
        models.append(_choice(m, params))
    return {
        "name": b.name,
        "models": models,
        "strategies": [_choice(c) for c in b.strategies],
        "techniques": [_choice(c, _cut(dict(c.params), scale)) for c in b.techniques],
        "attacks": [_choice(c, _cut(dict(c.params), scale)) for c in b.attacks],
        "source": source,
        "target": target,
        "train": train,
        "eval": ev,
    }


def smoke_study(study: Study, scale: SmokeScale | None = None) -> Study:
    """The study at smoke scale (see the module doc); `study` itself is left as it was."""
    scale = scale or SmokeScale()
    head = {
        "name": study.name,
        "description": f"smoke run of {study.name}: {scale.describe()}",
        "seeds": [study.seeds[0]],
        "smoke": True,  # its splits may hold fewer images than classes (spec.parse_study)
    }
    if study.raw.get("study", {}).get("allow_large"):
        head["allow_large"] = True
    raw = {"study": head, "grid": [_smoke_block(b, scale) for b in study.blocks]}
    return parse_study(study_toml(raw), f"{study.path or study.name} (smoke)", study.path)


def with_blocks(study: Study, indices: list[int]) -> Study:
    """The same study holding only the blocks at `indices` (a smoke run skips blocks whose inputs failed)."""
    raw = dict(study.raw)
    raw["grid"] = [g for i, g in enumerate(study.raw["grid"]) if i in set(indices)]
    return parse_study(study_toml(raw), f"{study.path or study.name}", study.path)


def block_study(study: Study, index: int) -> Study:
    """One block as a study of its own, for checking (and reporting) blocks one at a time."""
    return with_blocks(study, [index])
