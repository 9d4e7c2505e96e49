"""Time rttui's fast paths against the obvious baseline on the same model, data, seed and sample mask.

- pgd_sweep: rttui's PGD-10 epsilon sweep vs torchattacks PGD run at every epsilon on every clean-correct image;
- fgsm_sweep: one gradient for the whole grid, clean pass shared, vs torchattacks FGSM per epsilon;
- deepfool: batched DeepFool (L2, 50 steps) vs torchattacks' DeepFool (per image, L2 only); per-eps accuracy of
  both after projecting onto each eps-ball and re-checking, as rttui stores it. deepfool_linf times rttui's L-inf
  DeepFool against the same torchattacks run (torchattacks has no L-inf DeepFool, so speed only);
- feature_extraction: 10 epochs on cached backbone features vs full forward passes every epoch.

Prints a table; with --json the last line is one JSON object {name: {"speedup", "max_acc_diff", "n", ...}}.
A disagreement beyond one sample (randomized attacks) or any at all (deterministic ones) is printed loudly.

    python benchmarks/run.py [--quick] [--json] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from typing import Any

import numpy as np
import torch

from rttui.engine import features
from rttui.engine.attacks.deepfool import deepfool, project_and_check
from rttui.engine.data import load_task
from rttui.engine.evaluate import evaluate_attack, predict
from rttui.engine.models import create_model
from rttui.engine.strategies import apply_strategy
from rttui.engine.train import fit, seed_everything

EPS = [0.01, 0.03, 0.05, 0.07, 0.09]
L2_EPS = [0.1, 0.25, 0.5, 1.0, 2.0]


def timed(fn: Any) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def projected_counts(model, x, y, x_adv, grid, norm) -> list[int]:
    """Correct-after-projection counts per eps, a sample fooled at a smaller eps staying fooled (as rttui counts)."""
    fooled = torch.zeros(len(y), dtype=torch.bool)
    out = []
    for eps in grid:
        _, p = project_and_check(model, x, x_adv, eps, norm)
        fooled |= p.cpu() != y
        out.append(int((~fooled).sum()))
    return out


def bench_pgd(m, x, y, cc, seed) -> dict[str, Any]:
    import torchattacks

    ours, t_ours = timed(lambda: evaluate_attack(m, x, y, "pgd", {"steps": 10}, EPS, seed=seed))

    def baseline() -> list[int]:
        pred = predict(m, x)
        mask = pred == y.numpy()
        counts = []
        torch.manual_seed(seed)
        for eps in EPS:
            atk = torchattacks.PGD(m, eps=eps, alpha=eps / 4, steps=10, random_start=True)
            xa = torch.cat([atk(x[mask][i : i + 250], y[mask][i : i + 250]) for i in range(0, int(mask.sum()), 250)])
            counts.append(int((predict(m, xa) == y[mask].numpy()).sum()))
        return counts

    base, t_base = timed(baseline)
    mine = [r["n_adv_correct"] for r in ours.metrics()]
    return {"ours": mine, "base": base, "t_ours": t_ours, "t_base": t_base, "n": len(y), "randomized": True}


def bench_fgsm(m, x, y, cc, seed) -> dict[str, Any]:
    import torchattacks

    ours, t_ours = timed(lambda: evaluate_attack(m, x, y, "fgsm", {}, EPS, seed=seed))

    def baseline() -> list[int]:
        pred = predict(m, x)
        mask = pred == y.numpy()
        counts = []
        for eps in EPS:
            atk = torchattacks.FGSM(m, eps=eps)
            xa = torch.cat([atk(x[mask][i : i + 250], y[mask][i : i + 250]) for i in range(0, int(mask.sum()), 250)])
            counts.append(int((predict(m, xa) == y[mask].numpy()).sum()))
        return counts

    base, t_base = timed(baseline)
    mine = [r["n_adv_correct"] for r in ours.metrics()]
    return {"ours": mine, "base": base, "t_ours": t_ours, "t_base": t_base, "n": len(y), "randomized": False}


def bench_deepfool(m, x, y, cc, n_df: int) -> tuple[dict[str, Any], dict[str, Any]]:
    import torchattacks

    idx = np.flatnonzero(cc)[:n_df]
    dev = next(m.parameters()).device
    xs, ys = x[idx].to(dev), y[idx].to(dev)
    (xa, _), t_ours = timed(lambda: deepfool(m, xs, ys, steps=50, overshoot=0.02, norm="l2"))
    _, t_linf = timed(lambda: deepfool(m, xs, ys, steps=50, overshoot=0.02, norm="linf"))
    ref, t_base = timed(lambda: torchattacks.DeepFool(m, steps=50, overshoot=0.02)(xs, ys))
    m.zero_grad(set_to_none=True)  # torchattacks leaves gradients on the weights
    with torch.no_grad():
        ours = projected_counts(m, xs, ys.cpu(), xa, L2_EPS, "l2")
        base = projected_counts(m, xs, ys.cpu(), ref, L2_EPS, "l2")
    l2 = {"ours": ours, "base": base, "t_ours": t_ours, "t_base": t_base, "n": len(idx), "randomized": False}
    linf = {"ours": None, "base": None, "t_ours": t_linf, "t_base": t_base, "n": len(idx), "randomized": False}
    return l2, linf


def bench_features(task, model_cfg, image_size, seed, epochs: int, dev: torch.device) -> dict[str, Any]:
    cfg = {"epochs": epochs, "lr": 3e-3, "batch_size": 32}

    def run(cached: bool):
        seed_everything(seed)
        m = create_model(model_cfg, task.num_classes, image_size).to(dev)
        st = apply_strategy(m, {"name": "feature_extraction", "params": {}})
        if cached:
            _, path = features.fit_auto(m, task.train, cfg, seed, st)
            assert path == features.CACHED, path
        else:
            fit(m, task.train, cfg, seed, st)
        return int((predict(m, task.test.x) == task.test.y.numpy()).sum())

    ours, t_ours = timed(lambda: run(True))
    base, t_base = timed(lambda: run(False))
    return {
        "ours": [ours],
        "base": [base],
        "t_ours": t_ours,
        "t_base": t_base,
        "n": len(task.test),
        "randomized": False,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller run (same targets), within 5 minutes on 2 cores")
    ap.add_argument("--json", action="store_true", help="end with one JSON line of the results")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    size = 16 if a.quick else 32
    n_df = 40 if a.quick else 80
    dev = torch.device(a.device)
    seed_everything(a.seed)
    task = load_task({"dataset": "digits", "test_size": 500, "split_seed": 0}, size)
    model_cfg = {"name": "test_resnet"}
    m = create_model(model_cfg, task.num_classes, size).to(dev)
    fit(m, task.train, {"epochs": 4, "lr": 3e-3, "batch_size": 32}, a.seed)
    m.eval()
    x, y = task.test.x, task.test.y
    cc = predict(m, x) == y.numpy()
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"device {dev}; model test_resnet at {size}x{size}, digits 0-9, {len(y)} test images "
        f"(clean {cc.mean():.3f}), seed {a.seed}",
        file=sys.stderr,
    )
    res: dict[str, dict[str, Any]] = {}
    res["pgd_sweep"] = bench_pgd(m, x, y, cc, a.seed)
    res["fgsm_sweep"] = bench_fgsm(m, x, y, cc, a.seed)
    res["deepfool"], res["deepfool_linf"] = bench_deepfool(m, x, y, cc, n_df)
    res["feature_extraction"] = bench_features(task, model_cfg, size, a.seed, 10, dev)

    targets = {"pgd_sweep": 2.5, "fgsm_sweep": 2.5, "deepfool": 15, "deepfool_linf": 15, "feature_extraction": 5}
    out: dict[str, dict[str, Any]] = {}
    loud = []
    print(f"{'benchmark':<20} {'rttui s':>8} {'base s':>8} {'speedup':>8} {'target':>7} {'max acc diff':>13} {'n':>5}")
    for name, r in res.items():
        speed = r["t_base"] / r["t_ours"]
        if r["ours"] is None:
            diff, diff_s = None, "(speed only)"
        else:
            d = max(abs(a_ - b_) for a_, b_ in zip(r["ours"], r["base"], strict=True))
            diff = d / r["n"]
            diff_s = f"{diff:.4f} ({d})"
            if d > (1 if r["randomized"] else 0):
                loud.append(f"!!! {name}: accuracy differs by {d} samples: rttui {r['ours']} vs baseline {r['base']}")
        ok = "" if speed >= targets[name] else "  BELOW TARGET"
        print(
            f"{name:<20} {r['t_ours']:>8.2f} {r['t_base']:>8.2f} {speed:>7.1f}x {targets[name]:>6}x {diff_s:>13} "
            f"{r['n']:>5}{ok}"
        )
        out[name] = {
            "speedup": round(speed, 2),
            "max_acc_diff": diff,
            "n": r["n"],
            "ours": r["ours"],
            "base": r["base"],
        }
    for line in loud:
        print(line)
    if a.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
