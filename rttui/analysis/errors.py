"""Error analysis: which classes an attack turns into which, summed over seeds, with class names.

Pure functions over the stored confusion rows (eval_id, eps, label, pred, count) and the flat records.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from rttui.analysis.records import AXES, EPS_TOL


def confusions(
    records: list[dict[str, Any]],
    confusion_rows: list[dict[str, Any]],
    classes: dict[str, list[str]],
    top: int = 5,
) -> list[dict[str, Any]]:
    """One group per (dataset, model, strategy, technique, attack, eps) of the given records: the confusion
    matrix under attack summed over seeds (rows true class, columns prediction) and the `top` off-diagonal
    class pairs with counts and the share of that true class's images they hold."""
    by_eval: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in confusion_rows:
        by_eval[c["eval_id"]].append(c)
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[tuple(r[a] for a in AXES)].append(r)
    out = []
    for key, recs in groups.items():
        names = next((classes[r["run_id"]] for r in recs if r["run_id"] in classes), None)
        k = len(names) if names else 0
        for r in recs:
            for c in by_eval.get(r["eval_id"], []):
                k = max(k, int(c["label"]) + 1, int(c["pred"]) + 1)
        if not k:
            continue
        names = names if names and len(names) >= k else [str(i) for i in range(k)]
        matrix = [[0] * k for _ in range(k)]
        seeds = []
        for r in recs:
            rows = [c for c in by_eval.get(r["eval_id"], []) if abs(float(c["eps"]) - float(r["eps"])) < EPS_TOL]
            if rows:
                seeds.append(r["seed"])
            for c in rows:
                matrix[int(c["label"])][int(c["pred"])] += int(c["count"])
        if not seeds:
            continue
        totals = [sum(row) for row in matrix]
        pairs = [
            {
                "true": i,
                "pred": j,
                "true_name": names[i],
                "pred_name": names[j],
                "count": matrix[i][j],
                "share": matrix[i][j] / totals[i] if totals[i] else 0.0,
            }
            for i in range(k)
            for j in range(k)
            if i != j and matrix[i][j] > 0
        ]
        pairs.sort(key=lambda p: (-p["count"], p["true"], p["pred"]))
        out.append(
            {
                **dict(zip(AXES, key, strict=True)),
                "classes": names,
                "matrix": matrix,
                "seeds": sorted(seeds, key=str),
                "n_images": sum(totals),
                "params": recs[0].get("attack_params"),
                "pairs": pairs[:top],
            }
        )
    return out
