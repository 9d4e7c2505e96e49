"""Throughput rows at real sizes: how fast rttui attacks and fine-tunes a model, against what the device could do.

For each model (`--models resnet50,vit_base_patch16_224,densenet121`, random weights: throughput does not depend
on them) at `--image-size` on `--device`, two rows:

- `pgd10_sweep`: rttui's PGD-10 (`evaluate_attack`, step 0.25 eps, random start) over the paper's epsilon grid,
  every image attacked at every epsilon (independent mode, the model's own predictions as labels), so
  `img_per_s` is PGD-10 attacks of one image at one epsilon per second: the unit of the issue's FLOP bound.
- `finetune`: rttui's training loop (`train.fit`, full fine-tuning, Adam) on a dataset in its real on-disk format
  (an ImageFolder of JPEGs at ImageNet's typical 500x375, or CIFAR-10 batches), read lazily through DataLoader
  workers with rttui's default loader settings, as a training set too large for memory is; `img_per_s` is
  training images per second.

Each row has `flops_per_img` (counted with torch.utils.flop_counter.FlopCounterMode on the very same calls:
matmuls and convolutions, 2 FLOPs per multiply-add), `frac_of_peak` (achieved FLOP/s over the device's peak for
the precision that ran, from PEAK_TFLOPS; null where no peak is known, e.g. on CPU), `bound_img_per_s` (the
peak over flops_per_img) and `data_wait_frac` (the share of the loop's time spent waiting for its next batch:
decoding, resizing, copying to the device).

On CUDA the PGD row also runs in bf16 autocast and prints whether its per-epsilon accuracy agrees with fp32
within max(3 samples, 1%) on the benchmark's images; bf16 is used for the timed rows only where it agrees
(`--precision auto`, the default). Channels-last (NHWC) weights: the attack path always uses them for
convolutional models (measured 1.7x on CPU); `--channels-last on|off` decides for training. `--compile` wraps the
attacked model in torch.compile.

    python benchmarks/run.py --models resnet50 --image-size 64 --device cpu --json
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from rttui.engine.data import Split, load_task
from rttui.engine.evaluate import evaluate_attack, predict
from rttui.engine.models import create_model
from rttui.engine.strategies import apply_strategy
from rttui.engine.train import fit, seed_everything

EPS = [0.01, 0.03, 0.05, 0.07, 0.09]
PGD = {"steps": 10, "rel_step_size": 0.25, "random_start": True}

# Dense peak TFLOP/s (no structured sparsity) per GPU, by a substring of torch.cuda.get_device_name(); the first
# match wins, so more specific names come first. fp32 is the CUDA-core rate; TF32 tensor cores (cuDNN's default
# for fp32 convolutions) can exceed it, so an fp32 frac_of_peak above 1 means TF32 ran.
# Sources: NVIDIA H200 datasheet (2024: same GH100 compute as H100 SXM), H100 datasheet (SXM5 / PCIe, BF16
# 1,979 / 1,513 with sparsity), A100 datasheet (BF16 312, FP32 19.5), L40S datasheet (BF16 362.05 dense),
# Ada Lovelace architecture whitepaper v1.1 appendix (RTX 4090: BF16 with FP32 accumulate 165.2, FP32 82.6),
# V100 datasheet (SXM2: FP32 15.7; Volta has no bf16).
PEAK_TFLOPS: dict[str, dict[str, float | None]] = {
    "H200": {"bf16": 989.4, "fp32": 66.9},
    "H100 PCIe": {"bf16": 756.5, "fp32": 51.2},
    "H100": {"bf16": 989.4, "fp32": 66.9},
    "A100": {"bf16": 312.0, "fp32": 19.5},
    "L40S": {"bf16": 362.05, "fp32": 91.6},
    "RTX 4090": {"bf16": 165.2, "fp32": 82.6},
    "V100": {"bf16": None, "fp32": 15.7},
}


def peak_for(dev: torch.device, precision: str) -> tuple[float | None, str]:
    """(peak TFLOP/s, which table entry) for the device and precision; (None, why) when unknown."""
    if dev.type != "cuda":
        return None, f"no peak known for {dev.type}"
    name = torch.cuda.get_device_name(dev)
    for key, peaks in PEAK_TFLOPS.items():
        if key in name:
            p = peaks.get(precision)
            return p, f"{key} {precision}" if p else f"{key} has no {precision} peak"
    return None, f"{name!r} is not in PEAK_TFLOPS"


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


class _GlobalOnly:
    """Stands in for FlopCounterMode's ModuleTracker: its backward hooks break `torch.autograd.grad` on a leaf
    input ("A leaf node was passed to _will_engine_execute_node"), which is how every attack takes its gradient.
    Only the total is used here, so every op counts under "Global"."""

    parents = frozenset({"Global"})
    is_bw = False

    def __enter__(self) -> _GlobalOnly:
        return self

    def __exit__(self, *args: Any) -> None:
        return None


def counted_flops(fn: Any) -> int:
    """FLOPs of one call of `fn`, counted by torch's FlopCounterMode (matmul / conv / attention ops)."""
    fc = FlopCounterMode(display=False)
    fc.mod_tracker = _GlobalOnly()  # type: ignore[assignment]
    with fc:
        fn()
    return int(fc.get_total_flops())


def _row(img_per_s: float, flops_per_img: int, dev: torch.device, precision: str) -> dict[str, Any]:
    peak, which = peak_for(dev, precision)
    achieved = img_per_s * flops_per_img
    return {
        "img_per_s": round(img_per_s, 3),
        "flops_per_img": flops_per_img,
        "achieved_tflops": round(achieved / 1e12, 4),
        "peak_tflops": peak,
        "peak": which,
        "frac_of_peak": round(achieved / (peak * 1e12), 4) if peak else None,
        "bound_img_per_s": round(peak * 1e12 / flops_per_img, 1) if peak else None,
        "bound_img_per_s_at_800_tflops": round(800e12 / flops_per_img, 1),
    }


def pgd_counts(m, x, eps, bs, precision: str, compile_model: bool) -> tuple[list[int], float, float]:
    """Per-eps robust counts, seconds and data seconds of rttui's PGD-10 on every image at every eps."""
    dev = next(m.parameters()).device
    _sync(dev)
    t = time.perf_counter()
    res = evaluate_attack(
        m,
        x,
        torch.zeros(len(x), dtype=torch.long),
        "pgd",
        PGD,
        eps,
        mode="independent",
        batch_size=bs,
        seed=0,
        precision=precision,
        compile_model=compile_model,
        labels="predicted",
    )
    _sync(dev)
    return [r["n_adv_correct"] for r in res.metrics()], time.perf_counter() - t, res.data_seconds


def bf16_agreement(m, x, eps, bs) -> dict[str, Any]:
    """fp32 vs bf16-autocast PGD on the same images: agree within max(3 samples, 1%) at every eps?"""
    dev = next(m.parameters()).device
    if dev.type != "cuda":
        return {"applicable": False, "why": "bf16 autocast runs on CUDA only; CPU rows are fp32"}
    fp32, _, _ = pgd_counts(m, x, eps, bs, "fp32", False)
    bf16, _, _ = pgd_counts(m, x, eps, bs, "bf16", False)
    tol = max(3, int(np.ceil(0.01 * len(x))))
    diff = max(abs(a - b) for a, b in zip(fp32, bf16, strict=True))
    return {"applicable": True, "fp32": fp32, "bf16": bf16, "max_diff": diff, "tolerance": tol, "agrees": diff <= tol}


def bench_pgd(m, x, dev, bs: int, precision: str, compile_model: bool) -> dict[str, Any]:
    agreement = bf16_agreement(m, x, EPS, bs)
    if precision == "auto":
        precision = "bf16" if agreement.get("agrees") else "fp32"
    pgd_counts(m, x[: min(len(x), 2)], EPS[:1], bs, precision, compile_model)  # warm-up (kernels, allocator)
    counts, seconds, data_s = pgd_counts(m, x, EPS, bs, precision, compile_model)
    pairs = len(x) * len(EPS)
    flops = counted_flops(lambda: pgd_counts(m, x[:2], EPS[:1], bs, precision, False)) // 2
    return {
        **_row(pairs / seconds, flops, dev, precision),
        "data_wait_frac": round(data_s / seconds, 4),
        "precision": precision,
        "mode": "independent (every image at every eps)",
        "eps": EPS,
        "n_images": len(x),
        "batch_size": bs,
        "seconds": round(seconds, 2),
        "robust_counts": counts,
        "compiled": compile_model,
        "channels_last": any(isinstance(mod, torch.nn.Conv2d) for mod in m.modules()),
        "bf16_agreement": agreement,
    }


def _dataset(kind: str, root: Path, image_size: int, n_train: int) -> Any:
    """A task read from files in their real format, its training split lazy (as a full-size one is)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: the tests' data writers
    from tests.datafiles import write_cifar10, write_jpeg_folder

    if kind == "imagefolder":
        write_jpeg_folder(root, classes=4, per_class=max(1, n_train // 4))
        cfg: dict[str, Any] = {"dataset": "imagefolder", "root": str(root), "test_size": 8}
    else:
        write_cifar10(root, per_batch=max(10, n_train // 5), n_test=20)
        cfg = {"dataset": "cifar10", "root": str(root), "test_size": 8}
    old = os.environ.get("RTTUI_INMEMORY_MB")
    os.environ["RTTUI_INMEMORY_MB"] = "0"  # lazy, as a 50,000-image training set at 224 pixels is
    try:
        task = load_task(cfg, image_size)
    finally:
        if old is None:
            os.environ.pop("RTTUI_INMEMORY_MB")
        else:
            os.environ["RTTUI_INMEMORY_MB"] = old
    task.train.workers = None  # the default a full-size lazy split gets (small ones decode in-process)
    return task


def bench_finetune(name: str, task: Any, image_size: int, dev: torch.device, bs: int, precision: str, nhwc: bool):
    seed_everything(0)
    m = create_model({"name": name}, task.num_classes, image_size).to(dev)
    if nhwc:
        m = m.to(memory_format=torch.channels_last)
    cfg = {"epochs": 1, "lr": 1e-4, "batch_size": bs, "optimizer": "adam"}
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if precision == "bf16" and dev.type == "cuda" else nullcontext()
    warm = Split(task.train.head(bs)[0], task.train.y[:bs])
    with amp:
        fit(m, warm, cfg, 0, apply_strategy(m, {"name": "full", "params": {}}))  # warm-up, not timed
        timing: dict[str, float] = {}
        _sync(dev)
        fit(m, task.train, cfg, 0, apply_strategy(m, {"name": "full", "params": {}}), timing=timing)
        _sync(dev)

    def step() -> None:
        xb, yb = task.train.head(2)
        m.train()
        with amp:
            torch.nn.functional.cross_entropy(m(xb.to(dev)), yb.to(dev)).backward()
        m.zero_grad(set_to_none=True)

    flops = counted_flops(step) // 2
    return {
        **_row(timing["images"] / timing["seconds"], flops, dev, precision if dev.type == "cuda" else "fp32"),
        "data_wait_frac": round(timing["data_seconds"] / timing["seconds"], 4),
        "precision": precision if dev.type == "cuda" else "fp32",
        "n_images": int(timing["images"]),
        "batch_size": bs,
        "seconds": round(timing["seconds"], 2),
        "loader_workers": task.train.workers,
        "channels_last": nhwc,
    }


def main(a: Any) -> int:
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    n_attack = a.images or (512 if cuda else 8)
    n_train = a.train_images or (2048 if cuda else 32)
    bs_attack = a.batch_size or (256 if cuda else 8)
    bs_train = a.train_batch_size or (64 if cuda else 8)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{torch.get_num_threads()} torch threads, device {dev}"
        + (f" ({torch.cuda.get_device_name(dev)})" if cuda else "")
        + f"; images {a.image_size}x{a.image_size}, random weights; load average {os.getloadavg()[0]:.1f}",
        file=sys.stderr,
    )
    out: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        task = _dataset(a.data, Path(tmp) / a.data, a.image_size, n_train)
        print(f"wrote and listed {len(task.train)} {a.data} training images in {time.perf_counter() - t:.1f} s")
        for name in a.models:
            seed_everything(0)
            m = create_model({"name": name}, 10, a.image_size).to(dev).eval()
            x = torch.rand(n_attack, 3, a.image_size, a.image_size, generator=torch.Generator().manual_seed(0))
            predict(m, x[:1])
            key = f"{name}@{a.image_size}"
            out[f"{key}:pgd10_sweep"] = {"model": name, **bench_pgd(m, x, dev, bs_attack, a.precision, a.compile)}
            del m
            nhwc = a.channels_last == "on"
            prec = "bf16" if a.precision == "bf16" else "fp32"
            if a.precision == "auto" and out[f"{key}:pgd10_sweep"]["bf16_agreement"].get("agrees"):
                prec = "bf16"
            out[f"{key}:finetune"] = {
                "model": name,
                "data": a.data,
                **bench_finetune(name, task, a.image_size, dev, bs_train, prec, nhwc),
            }
    print(
        f"{'row':<34} {'img/s':>9} {'GFLOP/img':>10} {'TFLOP/s':>8} {'peak':>7} {'frac':>6} {'data wait':>9} "
        f"{'prec':>5}"
    )
    for k, r in out.items():
        frac = "n/a" if r["frac_of_peak"] is None else f"{r['frac_of_peak']:.3f}"
        print(
            f"{k:<34} {r['img_per_s']:>9.2f} {r['flops_per_img'] / 1e9:>10.2f} {r['achieved_tflops']:>8.4f} "
            f"{r['peak_tflops'] or '-':>7} {frac:>6} {r['data_wait_frac']:>9.3f} {r['precision']:>5}"
        )
    for k, r in out.items():
        ag = r.get("bf16_agreement")
        if ag is not None:
            if not ag["applicable"]:
                print(f"{k}: bf16 agreement not applicable ({ag['why']})")
            else:
                verdict = "agrees" if ag["agrees"] else "DISAGREES: bf16 stays off"
                print(
                    f"{k}: bf16 vs fp32 robust counts per eps {ag['bf16']} vs {ag['fp32']}: max diff {ag['max_diff']}"
                    f" (tolerance {ag['tolerance']}) -> {verdict}"
                )
    if a.json:
        print(json.dumps(out))
    return 0
