"""Mean +- std over seeds. Works on the flat records `Store.records()` returns (one per run, attack, eps)."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

CONFIG_AXES = ("dataset", "model", "strategy", "technique")


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


def group(records: Iterable[dict[str, Any]], keys: Sequence[str]) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    out: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        out[tuple(r[k] for k in keys)].append(r)
    return dict(out)


def summarize(
    records: Iterable[dict[str, Any]], keys: Sequence[str] = (*CONFIG_AXES, "attack", "eps")
) -> list[dict[str, Any]]:
    """One row per key combination: clean, adv and drop (clean - adv) as Stat over the seeds present."""
    rows = []
    for key, recs in sorted(group(records, keys).items(), key=lambda kv: tuple(map(str, kv[0]))):
        by_seed = {r["seed"]: r for r in recs}  # one value per seed (duplicates across studies collapse)
        clean = [r["clean_acc"] for r in by_seed.values()]
        adv = [r["adv_acc"] for r in by_seed.values()]
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "clean": Stat.of(clean),
                "adv": Stat.of(adv),
                "drop": Stat.of([c - a for c, a in zip(clean, adv, strict=True)]),
                "seeds": sorted(by_seed),
                "params": params_label(recs[0]),
            }
        )
    return rows


def params_label(r: dict[str, Any]) -> str:
    """The attack and the parameters a number came from, in one short string (e.g. for a table title)."""
    p = r.get("attack_params") or {}
    parts = [f"{k}={v}" for k, v in sorted(p.items()) if v is not None]
    return f"{r['attack']} " + " ".join(parts) + f" mode={r['mode']}"
