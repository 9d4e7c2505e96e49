"""Units of work as a worker runs them: train a source, fine-tune and evaluate a run.

They talk to the world only through `emit(event)` and the checkpoint files they write, so the same functions
run in-process, in a worker process or as a Ray task.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rttui.engine.attacks.names import variant_label
from rttui.runner import events as ev
from rttui.runner import faults, provenance
from rttui.study.plan import EvalPlan, RunPlan, SourcePlan

Emit = Callable[[ev.Event], None]


@dataclass(frozen=True)
class TaskOptions:
    """How the runner wants a unit run this time: batch scale after an out-of-memory, attempt number, resume."""

    batch_scale: float = 1.0
    attempt: int = 0
    resume: bool = True
    label: str = ""
    # Called before every forward pass of the unit's model; it raises to stop the unit at once (an in-process
    # cancel), so a long batch (a slow attack, a big training batch) is never waited out.
    check: Callable[[], None] | None = None


def _scaled_batch(batch_size: int, opts: TaskOptions) -> int:
    """A batch size scaled down after an out-of-memory (never below 1)."""
    if opts.batch_scale == 1.0:
        return batch_size
    return max(1, int(int(batch_size) * opts.batch_scale))


def _scaled(cfg: dict[str, Any], opts: TaskOptions) -> dict[str, Any]:
    """A config whose batch_size is scaled down after an out-of-memory (never below 1)."""
    if opts.batch_scale == 1.0 or "batch_size" not in cfg:
        return cfg
    return {**cfg, "batch_size": _scaled_batch(cfg["batch_size"], opts)}


def reset_peak_gpu_mem(dev: Any) -> None:
    """Start counting a unit's peak GPU memory afresh (a worker runs units one after another)."""
    import torch

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)


def peak_gpu_mem(dev: Any) -> int | None:
    """Bytes of GPU memory the unit's tensors peaked at (PyTorch's allocator, since `reset_peak_gpu_mem`);
    None on a CPU or other device, where there is nothing to measure. The one record of it is the unit's
    `peak_gpu_mem` column: a source's at its end (UnitTrained), a run's training peak at UnitTrained and its whole
    job's (training and evaluation) at UnitFinished."""
    import torch

    return int(torch.cuda.max_memory_allocated(dev)) if dev.type == "cuda" else None


def _training_hooks(
    kind: str, uid: str, artifacts: Path, train_cfg: dict[str, Any], emit: Emit, opts: TaskOptions
) -> tuple[Any, Callable[[dict[str, Any]], None]]:
    """The per-epoch checkpoint (resume) and the epoch callback (event + fault hook) of one unit's training."""
    from rttui.engine.resume import EpochCheckpoint

    bs = int(train_cfg["batch_size"])
    faults.before_training(kind, uid, opts.label, opts.attempt, bs)
    ckpt = EpochCheckpoint(
        artifacts / f"{kind}s" / uid / "resume",
        fingerprint=json.dumps({"batch_size": bs, "epochs": train_cfg.get("epochs")}, sort_keys=True),
        on_start=lambda start, hist: emit(ev.TrainingStarted(kind, uid, start, hist, bs)),
    )
    if not opts.resume:
        ckpt.clear()

    def on_epoch(rec: dict[str, Any]) -> None:
        emit(ev.EpochDone(kind, uid, rec))
        faults.after_epoch(kind, uid, opts.label, opts.attempt, int(rec["epoch"]))

    return ckpt, on_epoch


def _stop_on_forward(model: Any, opts: TaskOptions, compiled: bool = False) -> None:
    """Run `opts.check` before each forward pass of `model` (of the model itself, not of every layer): the one
    place every training step, clean pass and attack iteration (rttui's or torchattacks') goes through. Where
    the model will be compiled the hook is kept out of torch.compile's graphs (`compiled`; that imports
    TorchDynamo, seconds, so only then). The model lives as long as the unit, so the hook needs no removal."""
    if opts.check is None:
        return
    check = opts.check

    def hook(module: Any, args: Any) -> None:
        check()

    if compiled:
        import torch

        hook = torch.compiler.disable(hook)
    model.register_forward_pre_hook(hook)


def _maybe_poison(kind: str, uid: str, split: Any, opts: TaskOptions) -> None:
    if faults.poison(kind, uid, opts.label, opts.attempt):
        split.x = split.x.clone()
        split.x[0] = float("nan")


def _progress(emit: Emit, kind: str, uid: str, phase: str, every: float = 0.25) -> Callable[[int, int], None]:
    """A progress callback that emits at most every `every` seconds (and always at the end)."""
    last = [0.0]

    def cb(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= every or done >= total:
            last[0] = now
            emit(ev.Progress(kind, uid, phase, done, total))

    return cb


def _eps_stream(emit: Emit, run_id: str, ep: EvalPlan) -> Callable[[float, int, int], None]:
    """The engine's per-epsilon callback of one evaluation: each finished epsilon becomes an `EpsDone` event
    (one per epsilon, so the rate is bounded by the grid, never by batches)."""
    label = variant_label(ep.attack, ep.params)
    grid = sorted(float(e) for e in ep.epsilons)

    def on_eps(eps: float, n_adv_correct: int, n: int) -> None:
        emit(
            ev.EpsDone(
                run_id=run_id,
                eval_id=ep.id,
                attack=ep.attack,
                label=label,
                eps=eps,
                n_adv_correct=n_adv_correct,
                n=n,
                epsilons=grid,
            )
        )

    return on_eps


def is_oom(exc: BaseException) -> bool:
    """CUDA ran out of memory: the scheduler halves the batch and retries, so it is never an evaluation's failure."""
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or "CUDA out of memory" in str(exc)


def _first_line(exc: BaseException) -> str:
    from rttui.errors import RttuiError

    msg = str(exc) if isinstance(exc, RttuiError) else f"{type(exc).__name__}: {exc}"
    return msg.splitlines()[0] if msg.strip() else type(exc).__name__


def _detail(exc: BaseException) -> str:
    import traceback

    return "".join(traceback.format_exception(exc))[-4000:]


def _clean_acc(model: Any, split: Any, batch: int = 500) -> tuple[float, Any]:
    from rttui.engine.evaluate import predict

    pred = predict(model, split.x, batch)
    y = split.y.numpy()
    return (float((pred == y).mean()) if len(y) else 0.0), pred


def train_source(
    sp: SourcePlan, artifacts: Path, emit: Emit, device: str | None = None, opts: TaskOptions | None = None
) -> None:
    """Pretrain (or just load) the source model once; its checkpoint is what every target run starts from."""
    import torch

    from rttui.engine import data, models, train

    t0 = time.perf_counter()
    cfg = sp.config
    seed = cfg["seed"] or 0
    dev = train.pick_device(device)
    reset_peak_gpu_mem(dev)
    train.seed_everything(seed)
    # A source that only supplies weights (pretrained or a checkpoint, no epochs) needs no source data: it
    # keeps no head (num_classes 0), since every target run puts its own head on it.
    task = data.load_task(cfg["data"], cfg["image_size"]) if source_needs_data(cfg) else None
    model_cfg = {**cfg["model"], **source_weights(cfg)}
    num_classes = task.num_classes if task is not None else 0
    model = models.create_model(model_cfg, num_classes, cfg["image_size"], cfg["pretrained"]).to(dev)
    adv = cfg.get("adversarial")
    info: dict[str, Any] = {"classes": task.classes if task is not None else []}
    opts = opts or TaskOptions()
    _stop_on_forward(model, opts)
    train_cfg = _scaled(cfg["train"], opts)
    ckpt, on_epoch = _training_hooks("source", sp.id, artifacts, train_cfg, emit, opts)
    acc, n_test = None, 0
    timing: dict[str, float] = {}
    if task is not None:
        from rttui.engine.techniques import adversarial_transform

        _maybe_poison("source", sp.id, task.train, opts)
        train.fit(
            model,
            task.train,
            train_cfg,
            seed,
            on_epoch=on_epoch,
            on_progress=_progress(emit, "source", sp.id, "train"),
            resume=ckpt,
            batch_transform=adversarial_transform(adv, seed) if adv else None,
            timing=timing,
        )
    if task is not None:
        if adv:
            info["robust_acc"] = _robust_acc(model, task.test, adv, seed)
        acc, _ = _clean_acc(model, task.test)
        n_test = len(task.test)
    path = artifacts / "sources" / sp.id / "model.safetensors"
    sha = models.save_checkpoint(model, path, {"kind": "source", "id": sp.id, "config": cfg})
    weights_info = model.weights_info
    peak = peak_gpu_mem(dev)
    del model
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    emit(
        ev.UnitTrained(
            kind="source",
            unit_id=sp.id,
            checkpoint=str(path),
            sha256=sha,
            num_classes=num_classes,
            clean_acc=acc,
            n_test=n_test,
            seconds=time.perf_counter() - t0,
            peak_gpu_mem=peak,
            info={
                **info,
                "batch_size": train_cfg.get("batch_size"),
                "weights": weights_info,
                "data_wait_frac": train.data_wait_frac(timing),
            },
            env=provenance.collect(),
        )
    )
    ckpt.clear()  # the final checkpoint is stored; the per-epoch state is no longer needed


def _robust_acc(model: Any, split: Any, adv: dict[str, Any], seed: int) -> float:
    """PGD-10 accuracy at the training eps on the source test set: evidence the source is robust."""
    import torch

    from rttui.engine.attacks.pgd import pgd
    from rttui.engine.evaluate import predict

    eps = float(adv.get("eps", 0.03))
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    dev = next(model.parameters()).device
    x, y = split.x.to(dev), split.y.to(dev)
    correct = 0
    for i in range(0, len(y), 500):
        xa = pgd(model, x[i : i + 500], y[i : i + 500], eps, 10, 0.25 * eps, gen=gen if dev.type == "cpu" else None)
        correct += int((torch.as_tensor(predict(model, xa, 500)) == y[i : i + 500].cpu()).sum())
    return correct / max(1, len(y))


def source_needs_data(cfg: dict[str, Any]) -> bool:
    """A source trains on its dataset when it has epochs or is adversarially pretrained, unless a robust
    checkpoint stands in for the adversarial pretraining (then the checkpoint is the source, as it is)."""
    adv = cfg.get("adversarial")
    if adv and adv.get("checkpoint"):
        return False
    return int(cfg["train"]["epochs"]) > 0 or bool(adv)


def source_weights(cfg: dict[str, Any]) -> dict[str, Any]:
    """The local weights a source starts from ([source] / [models.NAME] `checkpoint`, `mean`, `std`); the
    adversarial-pretraining `checkpoint` replaces the checkpoint, loaded by the same `models.load_weights`."""
    weights = dict(cfg.get("weights") or {})
    adv = cfg.get("adversarial") or {}
    if adv.get("checkpoint"):
        weights["checkpoint"] = adv["checkpoint"]
    return weights


def build_target_model(config: dict[str, Any], source: dict[str, Any], num_classes: int, device: Any) -> Any:
    """The source model with a fresh head for the target classes (seeded), on `device`."""
    import torch

    from rttui.engine import models, strategies

    image_size = config["target"]["image_size"]
    model = models.create_model(config["model"], source["num_classes"], image_size, pretrained=False)
    models.load_checkpoint(model, Path(source["checkpoint"]), source["sha256"])
    torch.manual_seed(config["seed"])
    strategies.inner(model).reset_classifier(num_classes)
    strategies.add_adapters(model, config["strategy"])  # before a trained run's checkpoint is loaded
    return model.to(device)


def _start_layer_analysis(model: Any, strategy: dict[str, Any], train_split: Any) -> Any:
    """Layer-freezing runs (freeze-depth sweeps included) carry a layer analysis; it also resolves "auto"."""
    if strategy["name"] != "layer_freezing":
        return None
    from rttui.engine.layers import ANALYSIS_IMAGES, RunAnalysis

    return RunAnalysis(model, strategy, *train_split.head(ANALYSIS_IMAGES))  # a lazy split decodes only these


def _stored_train_path(trained: dict[str, Any]) -> str | None:
    """How a stored run was trained (recorded in its info since cached-feature training exists)."""
    import json

    info = trained.get("info")
    try:
        return (json.loads(info) if isinstance(info, str) else info or {}).get("train_path")
    except ValueError:
        return None


def _probe(model: Any, task: Any, train_cfg: dict[str, Any]) -> Any:
    """The per-epoch validation of a run (rttui.engine.validation.Probe), None when it has none."""
    probe = train_cfg.get("probe")
    if task.val is None or not probe or probe.get("enabled", True) is False:
        return None
    from rttui.engine.validation import Probe

    return Probe(model, task.val, probe, n_train=len(task.train))


def _stored_info(trained: dict[str, Any]) -> dict[str, Any]:
    info = trained.get("info")
    try:
        out = json.loads(info) if isinstance(info, str) else info or {}
    except ValueError:
        return {}
    return out if isinstance(out, dict) else {}


def run_target(
    rp: RunPlan,
    source: dict[str, Any],
    evals: list[EvalPlan],
    trained: dict[str, Any] | None,
    artifacts: Path,
    emit: Emit,
    device: str | None = None,
    opts: TaskOptions | None = None,
    *,
    surrogates: dict[str, dict[str, Any]] | None = None,
    stored: dict[str, list[dict[str, Any]]] | None = None,
) -> None:
    """Fine-tune a run from its source (unless `trained` gives its checkpoint) and run the missing evaluations.

    `surrogates` gives each transfer evaluation its surrogate (eval id -> spec; a spec without a checkpoint is
    this run itself); `stored` the run's stored FGSM/PGD rows, for the cross-attack checks of an evaluation-only
    job."""
    from rttui.engine import data, features, models, sanity, strategies, techniques, train, validation
    from rttui.engine.attacks import audit_settings
    from rttui.engine.evaluate import evaluate_attack
    from rttui.runner.transfer import evaluate_transfer

    t0 = time.perf_counter()
    cfg = rp.config
    seed = cfg["seed"]
    dev = train.pick_device(device)
    reset_peak_gpu_mem(dev)
    train.seed_everything(seed)
    task = data.load_task(cfg["target"], cfg["target"]["image_size"])
    model = build_target_model(cfg, source, task.num_classes, dev)
    opts = opts or TaskOptions()
    _stop_on_forward(model, opts, compiled=any(ep.compile for ep in evals))
    train_path = None
    training_checks: list[dict[str, Any]] = []
    if trained is None:
        analysis = _start_layer_analysis(model, cfg["strategy"], task.train)
        strategy = analysis.strategy if analysis is not None else cfg["strategy"]
        state = strategies.apply_strategy(model, strategy)
        tech = techniques.apply_technique(model, state, cfg["technique"], seed)
        train_cfg = _scaled(cfg["train"], opts)
        ckpt, on_epoch = _training_hooks("run", rp.id, artifacts, train_cfg, emit, opts)
        _maybe_poison("run", rp.id, task.train, opts)
        timing: dict[str, float] = {}
        probe = _probe(model, task, cfg["train"])
        select = cfg["train"].get("select", "last")
        # Cached backbone features where that gives the plain loop's answer (feature extraction); see features.py.
        history, train_path = features.fit_auto(
            model,
            task.train,
            train_cfg,
            seed,
            state,
            on_epoch=on_epoch,
            on_progress=_progress(emit, "run", rp.id, "train"),
            resume=ckpt,
            batch_transform=tech.batch_transform,
            timing=timing,
            validate=probe,
            select=select,
        )
        overfit = sanity.check_robust_overfitting(history)
        training_checks = [overfit] if overfit else []
        acc, clean_pred = _clean_acc(model, task.test)
        path = artifacts / "runs" / rp.id / "model.safetensors"
        sha = models.save_checkpoint(model, path, {"kind": "run", "id": rp.id, "config": cfg})
        emit(
            ev.UnitTrained(
                kind="run",
                unit_id=rp.id,
                checkpoint=str(path),
                sha256=sha,
                num_classes=task.num_classes,
                clean_acc=acc,
                n_test=len(task.test),
                seconds=time.perf_counter() - t0,
                peak_gpu_mem=peak_gpu_mem(dev),  # training's; UnitFinished gives the whole job's
                info={
                    **state.info(),
                    **(analysis.info if analysis is not None else {}),
                    **tech.info,
                    "warnings": tech.warnings,
                    "classes": task.classes,
                    "batch_size": train_cfg.get("batch_size"),
                    "train_path": train_path,
                    "data_wait_frac": train.data_wait_frac(timing),
                    # the epoch whose weights were saved (and are attacked), by the training config's `select`
                    "select": select,
                    "selected_epoch": validation.pick_epoch(history, select),
                    "val_n": len(task.val) if task.val is not None else None,
                    "training_checks": training_checks,
                },
                env=provenance.collect(),
            )
        )
        if analysis is not None:
            emit(ev.LayersDone(rp.id, analysis.finish(model, state.frozen_groups).rows()))
        ckpt.clear()
        own = {"checkpoint": str(path), "sha256": sha}
    else:
        models.load_checkpoint(model, Path(trained["checkpoint"]), trained["sha256"])
        acc, clean_pred = _clean_acc(model, task.test)
        train_path = _stored_train_path(trained)
        training_checks = _stored_info(trained).get("training_checks") or []
        own = {"checkpoint": trained["checkpoint"], "sha256": trained["sha256"]}
    model.eval()
    results: dict[str, list[dict[str, Any]]] = {}  # attack -> the rows this job stored of it last
    by_eval: dict[str, dict[str, list[dict[str, Any]]]] = {}  # attack -> eval id -> rows, for the pair checks
    for attack, rows in (stored or {}).items():
        for r in rows:
            by_eval.setdefault(attack, {}).setdefault(str(r.get("eval_id") or ""), []).append(r)

    def evaluate(ep: EvalPlan) -> None:
        faults.before_eval("run", rp.id, opts.label, opts.attempt, ep.attack)
        if ep.surrogate is not None:  # a transfer attack: crafted on its surrogate, classified here
            spec = {**(surrogates or {})[ep.id]}
            if spec["kind"] == "sibling" and spec["id"] == rp.id:  # its own surrogate: its checkpoint, read back
                spec.update(own, num_classes=task.num_classes)
            res, extra = evaluate_transfer(
                model,
                task.test,
                cfg["target"],
                ep,
                spec,
                artifacts,
                clean_pred,
                _scaled_batch(ep.batch_size, opts),
                _progress(emit, "run", rp.id, f"eval:{ep.attack}"),
                num_classes=task.num_classes,
                precision=ep.precision,
                compile_model=ep.compile,
                train_path=train_path,
                on_eps=_eps_stream(emit, rp.id, ep),
            )
            rows = res.metrics()
            label = variant_label(ep.attack, ep.params)
            wb = sanity.check_transfer(label, rows, results.get("pgd") or (stored or {}).get("pgd") or [])
            emit(
                ev.EvalDone(
                    run_id=rp.id,
                    eval_id=ep.id,
                    attack=ep.attack,
                    params=ep.params,
                    epsilons=list(res.epsilons),
                    mode=res.mode,
                    n=len(res.labels),
                    seconds=res.seconds,
                    metrics=rows,
                    samples=res.samples(),
                    confusion=res.confusion(),
                    checks=sanity.check_eval(label, rows)
                    + ([wb] if wb else [])
                    + sanity.check_audit(label, None, audit_settings.not_audited(ep.attack)),
                    extra=extra,
                    env=provenance.collect(),
                )
            )
            return
        res = evaluate_attack(
            model,
            task.test.x,
            task.test.y,
            ep.attack,
            ep.params,
            list(ep.epsilons),
            mode=ep.mode,
            batch_size=_scaled_batch(ep.batch_size, opts),
            seed=seed,
            clean_pred=clean_pred,
            on_progress=_progress(emit, "run", rp.id, f"eval:{ep.attack}"),
            num_classes=task.num_classes,
            precision=ep.precision,
            compile_model=ep.compile,
            train_path=train_path,
            labels=ep.config.get("labels", "true"),
            on_eps=_eps_stream(emit, rp.id, ep),
        )
        rows = res.metrics()
        results[ep.attack] = rows
        by_eval.setdefault(ep.attack, {})[ep.id] = rows
        audit = None
        if ep.audit is not None:  # was the attack strong enough? (rttui.engine.attacks.audit)
            import torch

            from rttui.engine.attacks.audit import audit_attack

            # The labels the audited attack attacked: a smoke run's are the model's own predictions.
            predicted = ep.config.get("labels", "true") == "predicted"
            audit = audit_attack(
                model,
                task.test.x,
                torch.as_tensor(clean_pred, dtype=torch.long) if predicted else task.test.y,
                res.fooled,
                res.clean_correct,
                list(res.epsilons),
                ep.attack,
                res.params,
                norm=res.params.get("norm", "linf"),
                seed=seed,
                settings=ep.audit,
                batch_size=_scaled_batch(ep.batch_size, opts),
            )
        emit(
            ev.EvalDone(
                run_id=rp.id,
                eval_id=ep.id,
                attack=ep.attack,
                # The plan's parameters plus what the engine recorded running them (AutoAttack: implementation
                # and budgets); the evaluation id stays the plan's.
                params={**res.params, **ep.params},
                epsilons=list(res.epsilons),
                mode=res.mode,
                n=len(res.labels),
                seconds=res.seconds,
                metrics=rows,
                samples=res.samples(),
                confusion=res.confusion(),
                checks=sanity.check_eval(ep.attack, rows)
                + sanity.check_audit(ep.attack, audit, None if audit else audit_settings.not_audited(ep.attack))
                + sanity.check_reference_warnings(ep.attack, res.params),
                env=provenance.collect(),
                audit=audit,
            )
        )

    for ep in evals:
        # An evaluation that fails is that evaluation's failure (stored as such): the run's training, and the other
        # evaluations of this job, are not touched. Out of memory goes up to the scheduler, which halves the batch.
        try:
            evaluate(ep)
        except Exception as exc:
            from rttui.errors import StoreError

            if isinstance(exc, StoreError) or is_oom(exc):
                raise
            emit(ev.EvalFailed(rp.id, ep.id, ep.attack, ep.params, list(ep.epsilons), _first_line(exc), _detail(exc)))
    # Run-level checks replace the stored ones, so the technique's checks (deterministic) ride along each time.
    run_checks = techniques.technique_checks(model, cfg["technique"]) + training_checks
    # PGD not weaker than FGSM, per pair of evaluations (what this job evaluated and what is stored), each check
    # naming its pair ("pgd id+fgsm id"): a study is shown the checks of pairs it planned both halves of.
    for pgd_id, pgd_rows in by_eval.get("pgd", {}).items():
        for fgsm_id, fgsm_rows in by_eval.get("fgsm", {}).items():
            pair = sanity.check_pair("pgd", pgd_rows, "fgsm", fgsm_rows)
            run_checks.append({**pair, "eval_id": f"{pgd_id}+{fgsm_id}" if pgd_id and fgsm_id else ""})
    if evals:
        run_checks.append(sanity.check_gradients(model, task.test.x, task.test.y))
        run_checks.append(sanity.check_reference_model(model, task.test.x, task.test.y))
    if run_checks:
        emit(ev.RunChecks(rp.id, run_checks))
    emit(ev.UnitFinished("run", rp.id, time.perf_counter() - t0, peak_gpu_mem=peak_gpu_mem(dev)))
