"""Significance tests between configurations: paired over seeds (t-test or Wilcoxon), Holm correction,
Cohen's d_z, Levene/Brown-Forsythe for equal variances, and McNemar on per-sample outcomes.

Every statistic comes from scipy; a test that is undefined (too few pairs, no variance) returns None for
its statistic and p-value, never a made-up number. Pure functions over plain values: no SQL, no I/O.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from rttui.analysis.aggregate import Stat
from rttui.analysis.records import AXES, CONFIG_AXES, AnalysisError, group, one_per_seed, select

TESTS = ("t", "wilcoxon")
TEST_METRICS = ("adv_acc", "clean_acc", "drop")
# Metrics that do not depend on the attack or epsilon: tested once per configuration, so Holm counts each once.
ATTACK_FREE_METRICS = ("clean_acc",)


def _num(x: Any) -> float | None:
    """A finite float, or None (scipy reports undefined results as nan)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def paired_test(a: Sequence[float], b: Sequence[float], test: str = "t", confidence: float = 0.95) -> dict[str, Any]:
    """Paired comparison of a against b (differences a - b): mean difference, t-based confidence interval,
    t, p (of `test`), Cohen's d_z = mean / sd of the differences, n pairs, and a plain warning when n is
    too small for the test to mean much."""
    from scipy import stats

    if test not in TESTS:
        raise AnalysisError(f"--test {test!r} is unknown; use t or wilcoxon")
    if len(a) != len(b):
        raise ValueError("paired samples need equal lengths")
    n = len(a)
    d = [float(x) - float(y) for x, y in zip(a, b, strict=True)]
    out: dict[str, Any] = {
        "test": test,
        "n": n,
        "mean_a": sum(map(float, a)) / n if n else None,
        "mean_b": sum(map(float, b)) / n if n else None,
        "mean_diff": sum(d) / n if n else None,
        "sd_diff": None,
        "ci_low": None,
        "ci_high": None,
        "t": None,
        "w": None,
        "p": None,
        "dz": None,
        "warning": None,
    }
    if n >= 2:
        mean = out["mean_diff"]
        sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
        out["sd_diff"] = sd
        if sd > 0:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                res = stats.ttest_rel(a, b)
                ci = res.confidence_interval(confidence)
            out.update(t=_num(res.statistic), dz=mean / sd, ci_low=_num(ci.low), ci_high=_num(ci.high))
            if test == "t":
                out["p"] = _num(res.pvalue)
        else:
            out["ci_low"] = out["ci_high"] = mean  # every pair differs by exactly the same amount
        if test == "wilcoxon" and any(x != 0 for x in d):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                w = stats.wilcoxon(d)
            out.update(w=_num(w.statistic), p=_num(w.pvalue))
    out["warning"] = small_n_warning(n, test, out["sd_diff"])
    return out


def small_n_warning(n: int, test: str, sd: float | None) -> str | None:
    if n < 2:
        return f"n={n} pair(s): no test is possible; run more seeds"
    if sd == 0:
        return f"n={n}: every pair differs by the same amount (no variance): the test is undefined, p is null"
    if test == "wilcoxon" and n < 6:
        smallest = 2 / 2**n
        return f"n={n} pairs: the smallest two-sided Wilcoxon p is {smallest:.3g}, so it can never reach 0.05"
    if n < 5:
        return f"n={n} pairs ({n - 1} degrees of freedom): only very large effects can reach significance"
    return None


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1); None stays None and does not
    count towards the number of tests."""
    idx = [i for i, p in enumerate(pvalues) if p is not None]
    m = len(idx)
    order = sorted(idx, key=lambda i: pvalues[i])  # type: ignore[arg-type,return-value]
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(order):
        adj = min(1.0, (m - rank) * float(pvalues[i]))  # type: ignore[arg-type]
        running = max(running, adj)
        out[i] = running
    return out


def levene(a: Sequence[float], b: Sequence[float], center: str = "median") -> dict[str, Any]:
    """Equal-variance test between two groups of seeds; center='median' is Brown-Forsythe's robust form.
    p is None when it is undefined: a group with fewer than 2 values, or, for Brown-Forsythe, fewer than 3 (two
    values sit at equal distances from their median, so the test's within-group spread is zero by construction
    and scipy's p of 0 would be an artefact, not evidence)."""
    from scipy import stats

    out: dict[str, Any] = {
        "test": "brown-forsythe" if center == "median" else "levene",
        "center": center,
        "sd_a": _sd(a),
        "sd_b": _sd(b),
        "n_a": len(a),
        "n_b": len(b),
        "statistic": None,
        "p": None,
    }
    need = 3 if center == "median" else 2
    if len(a) >= need and len(b) >= need:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = stats.levene(a, b, center=center)
        out.update(statistic=_num(res.statistic), p=_num(res.pvalue))
    return out


def _sd(x: Sequence[float]) -> float | None:
    if len(x) < 2:
        return None
    m = sum(x) / len(x)
    return math.sqrt(sum((v - m) ** 2 for v in x) / (len(x) - 1))


def mcnemar(b: int, c: int) -> dict[str, Any]:
    """Exact McNemar test on the discordant counts (b: only A correct, c: only B correct): a two-sided
    binomial test of b against b + c at 1/2. p is None when no sample is discordant."""
    from scipy import stats

    p = _num(stats.binomtest(b, b + c, 0.5).pvalue) if b + c else None
    return {"b": b, "c": c, "discordant": b + c, "p": p}


def outcome_bits(samples: list[dict[str, Any]], grid: list[float], eps: float, metric: str) -> dict[int, bool]:
    """Per test image (idx), the binary outcome the metric counts: adv_acc -> correct under attack at eps,
    clean_acc -> correct without attack, drop -> correct clean but fooled at eps."""
    i = next((k for k, e in enumerate(grid) if abs(e - eps) < 1e-9), None)
    if i is None:
        raise ValueError(f"eps {eps} not in grid {grid}")
    out = {}
    for s in samples:
        cc = bool(s["clean_correct"])
        fooled = bool((int(s["fooled_mask"] or 0) >> i) & 1)
        out[int(s["idx"])] = (
            cc if metric == "clean_acc" else (cc and not fooled if metric == "adv_acc" else cc and fooled)
        )
    return out


def comparisons(
    records: list[dict[str, Any]],
    axis: str,
    a: str,
    b: str,
    *,
    metric: str = "adv_acc",
    attack: str | None = None,
    eps: float | None = None,
    where: Sequence[str] | dict[str, Any] | None = None,
    test: str = "t",
    variance: bool = False,
) -> list[dict[str, Any]]:
    """One paired comparison of `axis=a` against `axis=b` per combination of every other axis (dataset,
    model, ..., attack, eps), pairing runs by seed. p_holm is Holm-corrected over all comparisons returned.
    A metric that does not depend on the attack (clean accuracy) is compared once per configuration: its rows
    carry no attack or eps, and Holm counts each configuration once, not once per attack and epsilon.
    `pairs` lists the (seed, run, evaluation) pairs, so per-sample tests can follow."""
    if metric not in TEST_METRICS:
        raise AnalysisError(f"--metric {metric!r} is unknown; use one of {', '.join(TEST_METRICS)}")
    if axis not in CONFIG_AXES:
        raise AnalysisError(f"--axis {axis!r} cannot be paired over; use one of {', '.join(CONFIG_AXES)}")
    if test not in TESTS:
        raise AnalysisError(f"--test {test!r} is unknown; use t or wilcoxon")
    recs = select(records, attack, eps, where)
    values = sorted({str(r[axis]) for r in recs})
    for v in (a, b):
        if v not in values and v not in {x.split("[", 1)[0] for x in values}:
            raise AnalysisError(f"--axis {axis} has no value {v!r} in these results; it has {', '.join(values)}")
    if a == b:
        raise AnalysisError(f"--a and --b are both {a!r}; give two different values of {axis}")
    attack_free = metric in ATTACK_FREE_METRICS
    others = [x for x in AXES if x != axis and not (attack_free and x in ("attack", "eps"))]
    side: dict[tuple[Any, ...], dict[str, dict[Any, dict[str, Any]]]] = defaultdict(lambda: {"a": {}, "b": {}})
    for r in sorted(recs, key=lambda r: (str(r["seed"]), r["run_id"])):
        v = str(r[axis])
        which = "a" if v == a or v.split("[", 1)[0] == a else "b" if v == b or v.split("[", 1)[0] == b else None
        if which is None:
            continue
        side[tuple(r[x] for x in others)][which].setdefault(r["seed"], r)
    out = []
    for key in sorted(side, key=lambda k: tuple(str(x) for x in k)):
        ga, gb = side[key]["a"], side[key]["b"]
        if not ga or not gb:
            continue
        seeds = sorted(set(ga) & set(gb), key=str)
        va = [_metric(ga[s], metric) for s in seeds]
        vb = [_metric(gb[s], metric) for s in seeds]
        res = paired_test(va, vb, test)
        row: dict[str, Any] = {
            **dict(zip(others, key, strict=True)),
            "axis": axis,
            "a": a,
            "b": b,
            "metric": metric,
            **res,
            "seeds": seeds,
            "unpaired_seeds": sorted(set(ga) ^ set(gb), key=str),
            "values_a": va,
            "values_b": vb,
            "params": None if attack_free else next(iter(ga.values())).get("attack_params"),
            "pairs": [
                {
                    "seed": s,
                    "run_a": ga[s]["run_id"],
                    "run_b": gb[s]["run_id"],
                    "eval_a": ga[s]["eval_id"],
                    "eval_b": gb[s]["eval_id"],
                }
                for s in seeds
            ],
        }
        if variance:
            row["variance"] = levene(
                [_metric(r, metric) for r in ga.values()], [_metric(r, metric) for r in gb.values()]
            )
        out.append(row)
    for row, p in zip(out, holm([r["p"] for r in out]), strict=True):
        row["p_holm"] = p
    return out


def _metric(r: dict[str, Any], metric: str) -> float:
    if metric == "drop":
        return float(r["clean_acc"]) - float(r["adv_acc"])
    return float(r[metric])


def add_mcnemar(
    rows: list[dict[str, Any]],
    samples_of: Any,
    grids: dict[str, list[float]],
) -> None:
    """Attach an exact McNemar test per comparison, pooling the discordant images over its seed pairs
    (same test images, same seed). `samples_of(eval_id)` returns that evaluation's per-sample rows."""
    for row in rows:
        b = c = 0
        notes: list[str] = []
        used = 0
        for pair in row["pairs"]:
            ea, eb = pair["eval_a"], pair["eval_b"]
            sa, sb = samples_of(ea), samples_of(eb)
            if not sa or not sb:
                notes.append(f"seed {pair['seed']}: no per-sample outcomes stored")
                continue
            la = {int(s["idx"]): int(s["label"]) for s in sa}
            lb = {int(s["idx"]): int(s["label"]) for s in sb}
            if la != lb:
                notes.append(f"seed {pair['seed']}: the two runs were tested on different images; skipped")
                continue
            # Clean accuracy has no eps (any of the grid reads the same clean outcome).
            oa = outcome_bits(sa, grids[ea], float(row.get("eps", grids[ea][0])), row["metric"])
            ob = outcome_bits(sb, grids[eb], float(row.get("eps", grids[eb][0])), row["metric"])
            b += sum(1 for i in oa if oa[i] and not ob[i])
            c += sum(1 for i in oa if ob[i] and not oa[i])
            used += 1
        row["mcnemar"] = {**mcnemar(b, c), "seed_pairs": used, "notes": notes}


def stability(
    records: list[dict[str, Any]], attack: str | None, eps: float | None, where: Any = None
) -> list[dict[str, Any]]:
    """Per configuration (and attack, eps): the spread of standard and adversarial accuracy over seeds."""
    groups = group(select(records, attack, eps, where), AXES)
    out = []
    for key in sorted(groups, key=lambda k: tuple(str(x) for x in k)):
        rs = one_per_seed(groups[key])
        clean = Stat.of([r["clean_acc"] for r in rs])
        adv = Stat.of([r["adv_acc"] for r in rs])
        out.append(
            {
                **dict(zip(AXES, key, strict=True)),
                "n": len(rs),
                "clean_mean": clean.mean,
                "clean_sd": clean.std,
                "clean_range": max(r["clean_acc"] for r in rs) - min(r["clean_acc"] for r in rs),
                "adv_mean": adv.mean,
                "adv_sd": adv.std,
                "adv_range": max(r["adv_acc"] for r in rs) - min(r["adv_acc"] for r in rs),
            }
        )
    return out
