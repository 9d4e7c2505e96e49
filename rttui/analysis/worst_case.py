"""The per-sample worst case over every attack a study evaluated: the number a reviewer accepts.

For each run, epsilon and norm, a test image counts as robust only if it is clean-correct and survived every
white-box attack the study evaluated on it at that epsilon and norm (FGSM, PGD, DeepFool, AutoAttack, `ta:`
attacks) and the audit's stronger attack where it re-attacked the image. RobustBench reports robust accuracy
this way (per-sample worst case over an ensemble). Transfer attacks are a black-box threat model and are left
out; the record names the attacks it covers.

Derived at read time from the stored per-sample outcomes (`samples.fooled_mask`) and audit rows (`fooled_ids`),
so it always covers exactly the study's own planned evaluations (see `Store.records`), and adding an attack to a
study tightens it without recomputing anything. Pure functions over plain data: no SQL, no I/O, no UI.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

WORST_CASE = "worst-case"
EPS_TOL = 1e-9
# Attacks whose examples the worst case does not take: another threat model (the attacker cannot see the target).
EXCLUDED = ("transfer",)

# eval ids -> {eval id: (clean_correct flags, fooled masks), both in test-sample order}
SampleReader = Callable[[Iterable[str]], dict[str, tuple[list[bool], list[int]]]]


def worst_case_records(
    records: list[dict[str, Any]],
    read_samples: SampleReader,
    grids: dict[str, list[float]],
) -> list[dict[str, Any]]:
    """One `worst-case` record per (study, run, eps, norm) the records cover, shaped like the others: `n_adv_correct`
    the images that survived everything, `broken_by` {attack: images it was the first to break (in the order of
    `covers`)}, `attack_params` {"covers": [...], "norm"}, `exact` false where an audit re-attacked only a sample of
    the survivors (the worst case is then an upper bound on robust accuracy; escalation of a flagged eps re-attacks
    every survivor)."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r.get("attack_name", r["attack"]) in EXCLUDED or r["attack"] == WORST_CASE:
            continue
        groups[(r.get("study"), r["run_id"], str(r.get("norm") or "linf"), round(float(r["eps"]), 12))].append(r)
    if not groups:
        return []
    samples = read_samples({r["eval_id"] for rs in groups.values() for r in rs})
    out = []
    for (_study, run_id, norm, eps), recs in groups.items():
        recs = [r for r in recs if r["eval_id"] in samples]
        if not recs:
            continue
        recs.sort(key=lambda r: (str(r["attack"]), str(r["eval_id"])))
        clean = samples[recs[0]["eval_id"]][0]
        robust = [bool(c) for c in clean]
        broken: dict[str, int] = {}
        exact = True
        for r in recs:
            _, masks = samples[r["eval_id"]]
            grid = grids.get(r["eval_id"], [])
            bit = next((i for i, e in enumerate(grid) if abs(float(e) - eps) < EPS_TOL), None)
            if bit is None or len(masks) != len(robust):
                continue
            hit = 0
            for j, m in enumerate(masks):
                if robust[j] and (m >> bit) & 1:
                    robust[j] = False
                    hit += 1
            broken[str(r["attack"])] = broken.get(str(r["attack"]), 0) + hit
            a = r.get("audit")
            if a:
                label = f"audit of {r['attack']}"
                hit = 0
                for j in a.get("fooled_ids") or []:
                    if 0 <= int(j) < len(robust) and robust[int(j)]:
                        robust[int(j)] = False
                        hit += 1
                broken[label] = broken.get(label, 0) + hit
                done = a.get("reattacked")
                every = bool(a.get("escalated")) or (done is not None and int(done) >= int(a.get("survivors") or 0))
                if not every:  # survivors it never re-attacked may fall to it too: an upper bound
                    exact = False
        first = recs[0]
        n = len(robust)
        n_adv = sum(robust)
        n_clean = sum(bool(c) for c in clean)
        out.append(
            {
                **{k: first.get(k) for k in ("study", "run_id", "dataset", "model", "strategy", "technique", "seed")},
                **{
                    k: first.get(k)
                    for k in ("strategy_params", "technique_params", "source", "selected_epoch", "select")
                },
                "attack": WORST_CASE,
                "attack_name": WORST_CASE,
                "norm": norm,
                "eps": eps,
                "steps": None,
                "step_size": None,
                "restarts": None,
                "random_start": False,
                "n": n,
                "n_clean_correct": n_clean,
                "n_adv_correct": n_adv,
                "clean_acc": first["clean_acc"],
                "adv_acc": n_adv / n if n else 0.0,
                "attack_success_rate": 1 - n_adv / n_clean if n_clean else None,
                "mode": "per-sample",
                "precision": None,
                "path": None,
                "max_perturbation": None,
                "eval_id": f"{WORST_CASE}:{_study}:{run_id}:{norm}",
                "attack_params": {"covers": sorted({str(r["attack"]) for r in recs}), "norm": norm},
                "broken_by": broken,
                "exact": exact,
                "audit": None,
                "env": first.get("env"),  # the environment of what it covers (mixed ones are warned of per attack)
                "env_id": first.get("env_id"),
                "peak_gpu_mem": first.get("peak_gpu_mem"),  # the run's
                "surrogate_id": None,
            }
        )
    return out
