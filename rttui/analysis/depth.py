"""Accuracy and robustness against freeze depth: the table and the figure of a freeze-depth sweep.

A run's depth is the number of depth groups its strategy froze, as the run recorded it (`frozen_groups` in the
run's info): 0 for full fine-tuning, all groups for feature extraction, the resolved number for layer freezing
("half", fractions and "auto" included). Works on the plain records `Store.records()` gives and the run rows
of `Store.runs()`; never reads the database itself.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from rttui.analysis.aggregate import cell_stats
from rttui.analysis.records import (
    EPS_TOL,
    at_eps,
    dedupe,
    default_attack,
    default_eps,
    group,
    one_per_seed,
    params_label,
    resolve_attack,
)
from rttui.errors import RttuiError

FIGURE_SUFFIXES = (".png", ".svg", ".pdf")
# One row per configuration and strategy variant (its parameters as JSON); its seeds are averaged.
DEPTH_KEYS = ("dataset", "model", "technique", "strategy", "sparams")


def _strategy_label(strategy: str, params: dict[str, Any]) -> str:
    if strategy == "layer_freezing":
        return f"freeze={params.get('freeze')}"
    return strategy


def pick_attack_eps(records: list[dict[str, Any]], attack: str | None, eps: float | None) -> tuple[str, float]:
    """The attack and epsilon of the robustness column (defaults: `default_attack`, `default_eps`)."""
    attacks = sorted({r["attack"] for r in records})
    if not attacks:
        raise RttuiError("no evaluations stored for these runs; run the study first (rttui run STUDY)")
    if attack is not None and not any(a.split("[", 1)[0] == attack.split("[", 1)[0] for a in attacks):
        raise RttuiError(f"--attack {attack!r} has no results here; use one of {', '.join(attacks)}")
    # `transfer` means the study's one transfer variant, when it has one
    attack = default_attack(attacks) or attacks[0] if attack is None else resolve_attack(attack, attacks)
    grid = sorted({r["eps"] for r in records if r["attack"] == attack})
    if eps is None:
        eps = default_eps(grid)
    match = [e for e in grid if abs(e - eps) < EPS_TOL]
    if not match:
        raise RttuiError(f"--eps {eps:g} is not in the {attack} grid; use one of {', '.join(f'{e:g}' for e in grid)}")
    return attack, match[0]


def depth_rows(
    records: list[dict[str, Any]], runs: list[dict[str, Any]], attack: str | None = None, eps: float | None = None
) -> dict[str, Any]:
    """Mean ± std over seeds of clean and adversarial accuracy per (dataset, model, technique, strategy), by depth.

    Returns {"attack", "eps", "params", "rows"}; rows sorted by dataset, model, technique and depth.
    """
    attack, eps = pick_attack_eps(records, attack, eps)
    info = {r["id"]: json.loads(r["info"] or "{}") for r in runs}
    picked = []
    for r in at_eps(dedupe(records), eps):
        i = info.get(r["run_id"], {})
        if r["attack"] != attack or "frozen_groups" not in i:
            continue
        sparams = json.dumps(r.get("strategy_params") or {}, sort_keys=True)
        picked.append({**r, "frozen_groups": i["frozen_groups"], "n_groups": i.get("n_groups"), "sparams": sparams})
    params = params_label(picked[0]) if picked else ""
    rows = []
    for (dataset, model, technique, strategy, sparams), recs in group(picked, DEPTH_KEYS).items():
        stats = cell_stats(recs)
        per_seed = one_per_seed(recs)
        rows.append(
            {
                "dataset": dataset,
                "model": model,
                "technique": technique,
                "strategy": _strategy_label(strategy, json.loads(sparams)),
                "depth": sum(r["frozen_groups"] for r in per_seed) / len(per_seed),
                "depths": sorted({r["frozen_groups"] for r in per_seed}),
                "n_groups": per_seed[0]["n_groups"],
                "clean": stats["clean"],
                "adv": stats["adv"],
                "seeds": stats["seeds"],
                "n": per_seed[0]["n"],
            }
        )
    rows.sort(key=lambda r: (r["dataset"], r["model"], r["technique"], r["depth"], r["strategy"]))
    return {"attack": attack, "eps": eps, "params": params, "rows": rows}


def depth_json(table: dict[str, Any]) -> dict[str, Any]:
    """The same table with plain numbers (Stat -> {mean, std, n}) for --format json."""
    return {
        **{k: v for k, v in table.items() if k != "rows"},
        "rows": [{**r, "clean": r["clean"].as_dict(), "adv": r["adv"].as_dict()} for r in table["rows"]],
    }


def build_depth_figure(table: dict[str, Any], title: str = "") -> Any:
    """Clean and adversarial accuracy (mean ± std over seeds) against freeze depth, one line per architecture.

    Built with matplotlib's object API (a `Figure`, no pyplot state, no global backend).
    """
    from matplotlib.figure import Figure

    if not table["rows"]:
        raise RttuiError("no runs with a recorded freeze depth to plot; run a study with freeze_depths first")
    lines: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in table["rows"]:
        lines[(r["dataset"], r["model"], r["technique"])].append(r)
    multi_ds = len({k[0] for k in lines}) > 1
    multi_tech = len({k[2] for k in lines}) > 1
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    axes = fig.subplots(1, 2, sharex=True)
    eps_label = f"{table['attack'].upper()} ε={table['eps']:g}"
    for ax, metric, ylabel in (
        (axes[0], "clean", "clean accuracy (%)"),
        (axes[1], "adv", f"adversarial accuracy (%), {eps_label}"),
    ):
        for (dataset, model, technique), rows in lines.items():
            label = model + (f" [{dataset}]" if multi_ds else "") + (f" ({technique})" if multi_tech else "")
            xs = [r["depth"] for r in rows]
            ys = [100 * r[metric].mean for r in rows]
            es = [100 * (r[metric].std or 0.0) for r in rows]
            ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=label)
        ax.set_xlabel("frozen depth groups (0 = full fine-tuning, all = feature extraction)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    seeds = sorted({s for r in table["rows"] for s in r["seeds"]})
    axes[0].legend(fontsize="small")
    fig.suptitle(
        (title + ": " if title else "") + f"accuracy vs freeze depth, mean ± std over {len(seeds)} seed(s); "
        f"{table['params']}",
        fontsize="medium",
    )
    return fig


def depth_figure(table: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """Write `build_depth_figure` as PNG, SVG or PDF (by the file's suffix)."""
    out = Path(path)
    if out.suffix.lower() not in FIGURE_SUFFIXES:
        raise RttuiError(f"{out}: unknown figure type {out.suffix!r}; end the file name in .png, .svg or .pdf")
    fig = build_depth_figure(table, title)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    return out
