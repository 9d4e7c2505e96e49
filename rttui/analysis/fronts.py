"""Pareto fronts: standard vs adversarial test accuracy of a study's configurations at one attack and epsilon.

One point per configuration (mean over seeds, error bars of one seed standard deviation); a configuration is
Pareto-optimal when no other one has a mean clean accuracy and a mean adversarial accuracy at least as high, one of
them higher. Registers the `pareto` figure kind (`rttui plot pareto`), whose numbers are written beside the figure.
Never imports a face; matplotlib only when drawing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rttui.analysis.aggregate import cell_stats
from rttui.analysis.figures import _colors, _one_eps, _partial_note, _plt, _subtitle, _varying, figure
from rttui.analysis.records import CONFIG_AXES, config_label

PARETO_FIELDS = (
    "config",
    "dataset",
    "model",
    "strategy",
    "technique",
    "select",
    "attack",
    "eps",
    "seeds",
    "n",
    "clean_mean",
    "clean_std",
    "adv_mean",
    "adv_std",
    "pareto",
    "selected_epochs",
)


def pareto_optimal(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For each (clean, adv) point: whether no other point is at least as good on both and better on one."""
    return [
        not any(c2 >= c and a2 >= a and (c2 > c or a2 > a) for j, (c2, a2) in enumerate(points) if j != i)
        for i, (c, a) in enumerate(points)
    ]


def pareto_rows(data: dict[str, Any]) -> tuple[list[dict[str, Any]], Sequence[str]]:
    """One row per configuration at the figure's attack and eps: seed means and sds, and the Pareto flag."""
    recs, eps = _one_eps(data)
    axes = _varying(recs, CONFIG_AXES) or ["model"]
    cells: dict[str, list[dict[str, Any]]] = {}
    for r in recs:
        cells.setdefault(config_label(r, axes), []).append(r)  # select variants carry it in their technique
    rows = []
    for label, cell in cells.items():
        st = cell_stats(cell)
        first = cell[0]
        rows.append(
            {
                "config": label,
                **{a: first[a] for a in CONFIG_AXES},
                "select": first.get("select") or "last",
                "attack": first["attack"],
                "eps": eps,
                "seeds": st["clean"].n,
                "n": first["n"],
                "clean_mean": st["clean"].mean,
                "clean_std": st["clean"].std,
                "adv_mean": st["adv"].mean,
                "adv_std": st["adv"].std,
                "selected_epochs": sorted({r["selected_epoch"] for r in cell if r.get("selected_epoch") is not None}),
            }
        )
    for row, opt in zip(rows, pareto_optimal([(r["clean_mean"], r["adv_mean"]) for r in rows]), strict=True):
        row["pareto"] = opt
    return rows, PARETO_FIELDS


@figure(
    "pareto",
    "clean vs adversarial accuracy front at one attack and eps (a point per configuration, seed sd; Pareto-optimal "
    "ones marked, numbers in .json/.csv)",
    numbers=pareto_rows,
)
def fig_pareto(data: dict[str, Any]) -> Any:
    plt = _plt()
    rows, _ = pareto_rows(data)
    recs, eps = _one_eps(data)
    fig, ax = plt.subplots(figsize=(5.6, 4.4))
    colors = _colors(plt)
    for i, r in enumerate(rows):
        ax.errorbar(
            r["clean_mean"] * 100,
            r["adv_mean"] * 100,
            xerr=(r["clean_std"] or 0) * 100,
            yerr=(r["adv_std"] or 0) * 100,
            fmt="*" if r["pareto"] else "o",
            ms=11 if r["pareto"] else 6,
            mec="black" if r["pareto"] else None,
            color=colors[i % len(colors)],
            capsize=2,
            zorder=3 if r["pareto"] else 2,  # a Pareto point stays visible over a point it ties with
            label=r["config"] + (" (Pareto)" if r["pareto"] else ""),
        )
    front = sorted((r["clean_mean"] * 100, r["adv_mean"] * 100) for r in rows if r["pareto"])
    if len(front) > 1:
        ax.plot([p[0] for p in front], [p[1] for p in front], ls="--", color="black", lw=0.8)
    ax.plot([0, 100], [0, 100], ls=":", color="grey", lw=0.8)
    ax.set_xlabel("standard accuracy (%)")
    ax.set_ylabel(f"{recs[0]['attack'].upper()} accuracy (%)")
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.set_title(f"Clean vs adversarial front{_partial_note(data)}\n{_subtitle(recs, eps)}", loc="left")
    ax.legend(frameon=False, fontsize=7, loc="upper left")
    return fig
