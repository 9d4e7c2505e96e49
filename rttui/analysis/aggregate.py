"""Mean +- std over seeds: the one aggregation every table, figure, end-of-run summary and screen uses.

`cell_stats` turns the records of one configuration (already selected and labelled by `analysis.records`)
into statistics over its seeds, one value per seed; `summarize` is the flat per-(configuration, attack, eps)
view of it. Pure functions over the flat records `Store.records()` returns; no SQL, no I/O, no UI.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rttui.analysis.records import AXES, group, normalize, one_per_seed, params_label


@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation (ddof=1) of n values; std is None for n = 1."""

    mean: float
    std: float | None
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat:
        vals = [float(v) for v in values]
        if not vals:
            return cls(math.nan, None, 0)
        return cls(statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else None, len(vals))

    def fmt(self, scale: float = 100.0, digits: int = 1) -> str:
        if self.n == 0:
            return "-"
        m = f"{self.mean * scale:.{digits}f}"
        return m if self.std is None else f"{m}±{self.std * scale:.{digits}f}"

    def as_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "n": self.n}


def auc_by_run(records: Iterable[dict[str, Any]]) -> dict[tuple[str, str], float]:
    """Area under the accuracy-vs-eps curve of each (run, attack), from eps = 0 (clean accuracy) to the
    largest evaluated eps, divided by that eps: the mean accuracy over the attack's range (trapezoid rule)."""
    curves: dict[tuple[str, str], dict[float, dict[str, Any]]] = defaultdict(dict)
    for r in records:
        curves[(r["run_id"], r["attack"])][float(r["eps"])] = r
    out = {}
    for key, pts in curves.items():
        es = sorted(pts)
        xs, ys = [0.0], [float(pts[es[0]]["clean_acc"])]
        for e in es:
            if e > 0:
                xs.append(e)
                ys.append(float(pts[e]["adv_acc"]))
            else:
                ys[0] = float(pts[e]["adv_acc"])
        if xs[-1] <= 0:
            out[key] = ys[0]
            continue
        area = sum((xs[i + 1] - xs[i]) * (ys[i] + ys[i + 1]) / 2 for i in range(len(xs) - 1))
        out[key] = area / xs[-1]
    return out


def success_rate(r: dict[str, Any]) -> float | None:
    """The share of the clean-correct test images the attack fooled (the record's own `attack_success_rate`
    where the store computed it from counts, else 1 - adv / clean); None with no clean-correct image. Asked for
    beside adversarial accuracy by transfer-attack users: it does not move with clean accuracy."""
    if r.get("attack_success_rate") is not None:
        return float(r["attack_success_rate"])
    clean, adv = float(r["clean_acc"]), float(r["adv_acc"])
    return (clean - adv) / clean if clean > 0 else None


def cell_stats(recs: list[dict[str, Any]], aucs: dict[tuple[str, str], float] | None = None) -> dict[str, Any]:
    """Every metric of one cell as a Stat over its seeds (one value per seed, first run wins)."""
    rs = one_per_seed(recs)
    clean = [float(r["clean_acc"]) for r in rs]
    adv = [float(r["adv_acc"]) for r in rs]
    drop = [c - a for c, a in zip(clean, adv, strict=True)]
    rel = [d / c for d, c in zip(drop, clean, strict=True) if c > 0]
    asr = [success_rate(r) for r in rs]
    out: dict[str, Any] = {
        "clean": Stat.of(clean),
        "adv": Stat.of(adv),
        "drop": Stat.of(drop),
        "rel_drop": Stat.of(rel),
        "asr": Stat.of([a for a in asr if a is not None]),
        "seeds": [r["seed"] for r in rs],
        "run_ids": [r["run_id"] for r in rs],
        "eval_ids": [r.get("eval_id") for r in rs],
        "values": {"clean": clean, "adv": adv, "drop": drop, "asr": asr},
        "duplicates": len(recs) - len(rs),
    }
    if aucs is not None:
        out["auc"] = Stat.of([aucs[(r["run_id"], r["attack"])] for r in rs if (r["run_id"], r["attack"]) in aucs])
    out["clean_sd"] = out["clean"]
    out["adv_sd"] = out["adv"]
    return out


def summarize(records: Iterable[dict[str, Any]], keys: Sequence[str] = AXES) -> list[dict[str, Any]]:
    """One row per key combination of the normalised records (variants labelled, as `compare` labels them):
    clean, adv and drop (clean - adv) as Stat over the seeds present, through `cell_stats`."""
    rows = []
    groups = group(normalize(records), keys)
    for key, recs in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        stats = cell_stats(recs)
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "clean": stats["clean"],
                "adv": stats["adv"],
                "drop": stats["drop"],
                "seeds": stats["seeds"],
                "params": params_label(recs[0]),
            }
        )
    return rows
