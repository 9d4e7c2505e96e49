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

from rttui.analysis.aggregate import Stat, params_label
from rttui.errors import RttuiError

FIGURE_SUFFIXES = (".png", ".svg", ".pdf")


def _strategy_label(strategy: str, params: dict[str, Any]) -> str:
    if strategy == "layer_freezing":
        return f"freeze={params.get('freeze')}"
    return strategy


def pick_attack_eps(records: list[dict[str, Any]], attack: str | None, eps: float | None) -> tuple[str, float]:
    """The attack (default: pgd if present, else the first) and epsilon (default: 0.03, else the smallest > 0)."""
    attacks = sorted({r["attack"] for r in records})
    if not attacks:
        raise RttuiError("no evaluations stored for these runs; run the study first (rttui run STUDY)")
    if attack is None:
        attack = "pgd" if "pgd" in attacks else attacks[0]
    elif attack not in attacks:
        raise RttuiError(f"--attack {attack!r} has no results here; use one of {', '.join(attacks)}")
    grid = sorted({r["eps"] for r in records if r["attack"] == attack})
    if eps is None:
        eps = 0.03 if 0.03 in grid else next((e for e in grid if e > 0), grid[0])
    match = [e for e in grid if abs(e - eps) < 1e-9]
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
    cells: dict[tuple[Any, ...], dict[int, dict[str, Any]]] = defaultdict(dict)
    params = ""
    for r in records:
        if r["attack"] != attack or abs(r["eps"] - eps) > 1e-9:
            continue
        i = info.get(r["run_id"], {})
        if "frozen_groups" not in i:
            continue
        params = params or params_label(r)
        key = (
            r["dataset"],
            r["model"],
            r["technique"],
            r["strategy"],
            json.dumps(r.get("strategy_params") or {}, sort_keys=True),
        )
        cells[key][r["seed"]] = {**r, "frozen_groups": i["frozen_groups"], "n_groups": i.get("n_groups")}
    rows = []
    for (dataset, model, technique, strategy, sparams), by_seed in cells.items():
        recs = list(by_seed.values())
        depths = sorted({r["frozen_groups"] for r in recs})
        rows.append(
            {
                "dataset": dataset,
                "model": model,
                "technique": technique,
                "strategy": _strategy_label(strategy, json.loads(sparams)),
                "depth": sum(r["frozen_groups"] for r in recs) / len(recs),
                "depths": depths,
                "n_groups": recs[0]["n_groups"],
                "clean": Stat.of([r["clean_acc"] for r in recs]),
                "adv": Stat.of([r["adv_acc"] for r in recs]),
                "seeds": sorted(by_seed),
                "n": recs[0]["n"],
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


def register_figure() -> None:
    """Offer the depth figure as `rttui plot depth` (the analysis figure registry)."""
    from rttui.analysis import figures

    @figures.figure("depth", "accuracy and robustness against freeze depth, one line per architecture (sweeps)")
    def fig_depth(data: dict[str, Any]) -> Any:
        recs = data["records"]
        if data.get("where"):
            from rttui.analysis.compare import apply_where, parse_where

            recs = apply_where(recs, parse_where(data["where"]))
        table = depth_rows(recs, data.get("runs") or [], data.get("attack"), data.get("eps"))
        return build_depth_figure(table, data.get("study") or "")
