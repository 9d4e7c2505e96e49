"""Publication figures (matplotlib, Agg backend, PNG and SVG), drawn from plain data.

A registry maps each figure kind to a draw function and the data it needs, so another analysis (a
freeze-depth sweep, say) adds a kind with `@figure("name", needs=(...))` and `rttui plot` offers it.
Matplotlib is imported only when a figure is drawn; importing this module stays cheap.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rttui.analysis.aggregate import cell_stats
from rttui.analysis.records import (
    CONFIG_AXES,
    EPS_TOL,
    AnalysisError,
    apply_where,
    attack_label,
    config_label,
    default_attack,
    default_eps,
    parse_where,
    select,
)

FORMATS = ("png", "svg", "pdf")


@dataclass(frozen=True)
class FigureKind:
    name: str
    description: str
    draw: Callable[[dict[str, Any]], Any]  # data -> matplotlib Figure (or a list of (suffix, Figure))
    needs: tuple[str, ...] = ("records",)
    # data -> (rows, csv columns): the figure's numbers, written beside it as <stem>.json and <stem>.csv
    numbers: Callable[[dict[str, Any]], tuple[list[dict[str, Any]], Sequence[str]]] | None = None


FIGURES: dict[str, FigureKind] = {}


def figure(
    name: str,
    description: str,
    needs: tuple[str, ...] = ("records",),
    numbers: Callable[[dict[str, Any]], tuple[list[dict[str, Any]], Sequence[str]]] | None = None,
) -> Callable[[Any], Any]:
    """Register a figure kind: the decorated function takes the data dict and returns a Figure; `numbers`, when
    given, returns the figure's numbers, which `draw` writes beside it (JSON and CSV)."""

    def deco(fn: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
        FIGURES[name] = FigureKind(name, description, fn, needs, numbers)
        return fn

    return deco


def get(kind: str) -> FigureKind:
    if kind not in FIGURES:
        raise AnalysisError(f"figure kind {kind!r} is unknown; use one of {', '.join(FIGURES)} (or all)")
    return FIGURES[kind]


# One style for every figure: matplotlib's colour-blind-safe Tableau palette, one marker per configuration too (so
# a figure printed in grey still tells them apart), and the audit's dagger where a number is flagged.
STYLE = "tableau-colorblind10"
MARKERS = "osD^v<>pP*Xh"
FLAG_NOTE = "† flagged by the attack-strength audit: a stronger attack fooled more (see the worst case)"


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.style.use(STYLE)
    plt.rcParams.update(
        {
            "font.size": 9,
            "axes.titlesize": 9,
            "axes.labelsize": 9,
            "legend.fontsize": 8,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "svg.hashsalt": "rttui",  # stable SVG ids: the same data gives the same file
            "savefig.dpi": 200,
        }
    )
    return plt


def draw(kind: str, data: dict[str, Any], out: Path, formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    """Draw `kind` and save it in each format. `out` is a folder (files named after the kind) or a file
    name such as fig1.png (then every format is written beside it)."""
    for f in formats:
        if f not in FORMATS:
            raise AnalysisError(f"figure format {f!r} is unknown; use some of {', '.join(FORMATS)}")
    fk = get(kind)
    plt = _plt()
    stem = output_stem(out, kind)
    result = fk.draw(data)
    figs = result if isinstance(result, list) else [("", result)]
    written = []
    for suffix, fig in figs:
        for f in formats:
            p = stem.with_name(f"{stem.name}{suffix}.{f}")
            fig.savefig(p, bbox_inches="tight", metadata={"Date": None} if f == "svg" else None)
            written.append(p)
        plt.close(fig)
    if fk.numbers is not None:
        written += write_numbers(*fk.numbers(data), stem)
    return written


def output_stem(out: Path, kind: str) -> Path:
    """Where a figure's files go: `out` is a folder (files named after `kind`) or a file name such as fig1.png
    (its stem; every format beside it). Creates the folder."""
    if out.suffix.lstrip(".") in FORMATS:
        stem = out.with_suffix("")
        stem.parent.mkdir(parents=True, exist_ok=True)
        return stem
    out.mkdir(parents=True, exist_ok=True)
    return out / kind


def write_numbers(rows: list[dict[str, Any]], fields: Sequence[str], stem: Path) -> list[Path]:
    """A figure's numbers beside it: `<stem>.json` (every field) and `<stem>.csv` (`fields`; lists joined by
    spaces)."""
    import csv
    import json

    pj, pc = stem.with_name(f"{stem.name}.json"), stem.with_name(f"{stem.name}.csv")
    pj.write_text(json.dumps(rows, indent=2, default=str) + "\n", encoding="utf-8")
    with open(pc, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(fields), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: " ".join(map(str, v)) if isinstance(v, list) else v for k, v in r.items()})
    return [pj, pc]


def _colors(plt: Any) -> list[str]:
    """The style's colour cycle (colour-blind safe)."""
    return list(plt.rcParams["axes.prop_cycle"].by_key()["color"])


def _flagged(recs: Sequence[dict[str, Any]]) -> bool:
    """Whether the audit flagged any evaluation behind these records (the tables' † rule)."""
    return any((r.get("audit") or {}).get("flagged") for r in recs)


def _varying(recs: list[dict[str, Any]], axes: Sequence[str]) -> list[str]:
    return [a for a in axes if len({r[a] for r in recs}) > 1]


def _subtitle(recs: list[dict[str, Any]], eps: float | None, width: int = 70) -> str:
    seeds = sorted({r["seed"] for r in recs}, key=str)
    label = (
        attack_label(recs[0])
        if len({r["attack"] for r in recs}) == 1
        else "attacks: " + ", ".join(sorted({r["attack"] for r in recs}))
    )
    eps_note = f", ε={eps:g}" if eps is not None else ""
    return textwrap.fill(f"{label}{eps_note}, n={len(seeds)} seed(s), {recs[0]['n']} test images", width)


def _one_eps(data: dict[str, Any]) -> tuple[list[dict[str, Any]], float]:
    """The records of one attack (asked for, else PGD if evaluated, else the first) at one epsilon."""
    attack = data.get("attack") or default_attack(data["records"])
    recs = select(data["records"], attack, None, data.get("where"))
    eps = data.get("eps")
    if eps is None:
        eps = default_eps(recs)
    sel = [r for r in recs if abs(float(r["eps"]) - float(eps)) < EPS_TOL]
    if not sel:
        grid = ", ".join(f"{e:g}" for e in sorted({float(r["eps"]) for r in recs}))
        raise AnalysisError(f"epsilon {eps:g} was not evaluated here; use --eps with one of {grid}")
    return sel, float(eps)


def _partial_note(data: dict[str, Any]) -> str:
    runs = data.get("runs") or []
    todo = [r for r in runs if r.get("state") != "done"]
    return f" [PARTIAL: {len(todo)} of {len(runs)} runs not done]" if todo else ""


@figure("strategies", "Figure 1: adversarial accuracy per fine-tuning strategy and dataset (bars, seed sd)")
def fig_strategies(data: dict[str, Any]) -> Any:
    plt = _plt()
    recs, eps = _one_eps(data)
    groups_axes = [a for a in ("dataset", "model", "technique") if a in _varying(recs, CONFIG_AXES)] or ["dataset"]
    groups = list(dict.fromkeys(config_label(r, groups_axes) for r in recs))
    strategies = list(dict.fromkeys(r["strategy"] for r in recs))
    width = 0.8 / max(1, len(strategies))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(groups) * max(1, len(strategies)) * 0.6 + 2), 3.2))
    colors = _colors(plt)
    any_flag = False
    for si, strat in enumerate(strategies):
        means, sds, labels = [], [], []
        for g in groups:
            cell = [r for r in recs if r["strategy"] == strat and config_label(r, groups_axes) == g]
            st = cell_stats(cell)["adv"] if cell else None
            means.append(st.mean * 100 if st and st.n else float("nan"))
            sds.append((st.std or 0) * 100 if st and st.n else 0)
            flag = _flagged(cell)
            any_flag |= flag
            labels.append("" if not (st and st.n) else f"{st.mean * 100:.1f}{'†' if flag else ''}")
        xs = [i + (si - (len(strategies) - 1) / 2) * width for i in range(len(groups))]
        color = colors[si % len(colors)]
        bars = ax.bar(xs, means, width, yerr=sds, capsize=3, label=strat, color=color, edgecolor="black", lw=0.4)
        # Every bar says its value, and a bar at 0% is drawn as a line in its colour: never an empty slot.
        ax.bar_label(bars, labels=labels, padding=2, fontsize=7)
        zero = [(x, w) for x, m in zip(xs, means, strict=True) if m == m and m < 0.5 for w in [width]]
        for x, w in zero:
            ax.hlines(0.4, x - 0.45 * w, x + 0.45 * w, colors=color, lw=2.5, zorder=3)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, rotation=0 if len(groups) < 5 else 30, ha="center" if len(groups) < 5 else "right")
    ax.set_ylabel(f"{recs[0]['attack'].upper()} accuracy (%)")
    ax.set_ylim(0, 108)
    ax.set_yticks(range(0, 101, 20))
    ax.set_title(f"Adversarial accuracy by strategy{_partial_note(data)}\n{_subtitle(recs, eps)}", loc="left")
    ax.legend(title="strategy", frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if any_flag:
        fig.text(0.01, -0.02, FLAG_NOTE, fontsize=7, ha="left", va="top")
    return fig


@figure("tradeoff", "Figure 2: standard vs adversarial accuracy per technique (scatter, seed sd)")
def fig_tradeoff(data: dict[str, Any]) -> Any:
    plt = _plt()
    recs, eps = _one_eps(data)
    axes_v = [a for a in ("dataset", "model", "strategy", "technique") if a in _varying(recs, CONFIG_AXES)]
    configs = list(dict.fromkeys(config_label(r, axes_v) for r in recs)) if axes_v else [""]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    colors = _colors(plt)
    any_flag = False
    # Each configuration its own colour and marker; points sit inside padded limits, never clipped by an axis.
    for ci, cfg in enumerate(configs):
        cell = [r for r in recs if not axes_v or config_label(r, axes_v) == cfg]
        st = cell_stats(cell)
        c, a = st["clean"], st["adv"]
        flag = _flagged(cell)
        any_flag |= flag
        ax.errorbar(
            c.mean * 100,
            a.mean * 100,
            xerr=(c.std or 0) * 100,
            yerr=(a.std or 0) * 100,
            fmt=MARKERS[ci % len(MARKERS)],
            color=colors[ci % len(colors)],
            capsize=2,
            ms=6,
            clip_on=False,
            label=(cfg or recs[0]["technique"]) + (" †" if flag else ""),
        )
    ax.plot([0, 100], [0, 100], ls=":", color="grey", lw=0.8)
    ax.set_xlabel("standard accuracy (%)")
    ax.set_ylabel(f"{recs[0]['attack'].upper()} accuracy (%)")
    ax.set_xlim(-3, 103)
    ax.set_ylim(-3, 103)
    ax.set_title(f"Trade-off per configuration{_partial_note(data)}\n{_subtitle(recs, eps)}", loc="left")
    ax.legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), title="/".join(axes_v) or None)
    if any_flag:
        fig.text(0.01, -0.02, FLAG_NOTE, fontsize=7, ha="left", va="top")
    return fig


@figure("curves", "accuracy vs epsilon per attack (lines, seed sd band; eps 0 = standard accuracy)")
def fig_curves(data: dict[str, Any]) -> Any:
    plt = _plt()
    recs = select(data["records"], data.get("attack"), None, data.get("where"))
    attacks = list(dict.fromkeys(r["attack"] for r in recs))
    axes_v = _varying(recs, CONFIG_AXES) or ["model"]
    # One colour and marker per configuration across every panel, and one legend for the figure.
    configs = list(dict.fromkeys(config_label(r, axes_v) for r in recs))
    colors = _colors(plt)
    style = {cfg: (colors[i % len(colors)], MARKERS[i % len(MARKERS)]) for i, cfg in enumerate(configs)}
    fig, axs = plt.subplots(
        1, len(attacks), figsize=(4.2 * len(attacks), 3.8), squeeze=False, sharey=True, layout="constrained"
    )
    any_flag = False
    for ai, attack in enumerate(attacks):
        ax = axs[0][ai]
        arecs = [r for r in recs if r["attack"] == attack]
        for cfg in dict.fromkeys(config_label(r, axes_v) for r in arecs):
            crecs = [r for r in arecs if config_label(r, axes_v) == cfg]
            grid = sorted({float(r["eps"]) for r in crecs})
            first = [r for r in crecs if abs(float(r["eps"]) - grid[0]) < EPS_TOL]
            xs, ms, sds = [0.0], [cell_stats(first)["clean"].mean * 100], [(cell_stats(first)["clean"].std or 0) * 100]
            flagged = []
            for e in grid:
                cell = [r for r in crecs if abs(float(r["eps"]) - e) < EPS_TOL]
                st = cell_stats(cell)["adv"]
                if e == 0:
                    ms[0], sds[0] = st.mean * 100, (st.std or 0) * 100
                    continue
                xs.append(e)
                ms.append(st.mean * 100)
                sds.append((st.std or 0) * 100)
                if _flagged(cell):
                    flagged.append((e, st.mean * 100))
            color, marker = style[cfg]
            ax.plot(xs, ms, marker=marker, ms=3.5, color=color, label=cfg, clip_on=False)
            ax.fill_between(
                xs,
                [m - s for m, s in zip(ms, sds, strict=True)],
                [m + s for m, s in zip(ms, sds, strict=True)],
                color=color,
                alpha=0.15,
                lw=0,
            )
            for e, m in flagged:
                ax.annotate("†", (e, m), xytext=(2, 3), textcoords="offset points", fontsize=8, color=color)
            any_flag |= bool(flagged)
        ax.set_xlabel("ε (L∞, [0, 1] pixels)")
        ax.set_ylim(0, 100)
        ax.set_title(_subtitle(arecs, None, 55), loc="left", fontsize=7)
        if ai == 0:
            ax.set_ylabel("accuracy (%)")
    handles = {h.get_label(): h for ax in axs[0] for h in ax.get_lines()}
    fig.legend(
        [handles[c] for c in configs if c in handles],
        [c for c in configs if c in handles],
        loc="outside lower center",
        ncols=min(4, len(configs)),
        frameon=False,
        fontsize=7,
    )
    title = f"Accuracy vs ε{_partial_note(data)}"
    fig.suptitle(title + (f"\n{FLAG_NOTE}" if any_flag else ""), x=0.01, ha="left", fontsize=9)
    return fig


@figure(
    "confusion",
    "confusion heat map under attack per configuration (row-normalised, summed over seeds)",
    needs=("records", "confusions"),
)
def fig_confusion(data: dict[str, Any]) -> Any:
    plt = _plt()
    groups = data.get("confusions") or []
    if not groups:
        raise AnalysisError("no confusion counts stored for this selection; evaluate the study first")
    n = len(groups)
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    k = max(len(g["classes"]) for g in groups)
    size = max(2.6, 0.28 * k + 1.2)
    fig, axs = plt.subplots(rows, cols, figsize=(size * cols, size * rows + 0.4), squeeze=False)
    axes_v = [a for a in CONFIG_AXES if len({g[a] for g in groups}) > 1] or ["model"]
    im = None
    for gi, g in enumerate(groups):
        ax = axs[gi // cols][gi % cols]
        m = g["matrix"]
        norm = [[v / s if (s := sum(row)) else 0.0 for v in row] for row in m]
        im = ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
        names = g["classes"]
        ax.set_xticks(range(len(names)))
        ax.set_yticks(range(len(names)))
        ax.set_xticklabels(names, rotation=90, fontsize=6)
        ax.set_yticklabels(names, fontsize=6)
        if gi // cols == rows - 1 or gi + cols >= n:
            ax.set_xlabel("predicted under attack", fontsize=7)
        if gi % cols == 0:
            ax.set_ylabel("true class", fontsize=7)
        ax.set_title(
            f"{'/'.join(str(g[a]) for a in axes_v)}\n{g['attack']} ε={g['eps']:g}, {len(g['seeds'])} seed(s)",
            fontsize=7,
            loc="left",
        )
    for gi in range(n, rows * cols):
        axs[gi // cols][gi % cols].axis("off")
    if im is not None:
        fig.colorbar(im, ax=axs, shrink=0.6, label="share of true class")
    fig.suptitle(f"Confusion under attack{_partial_note(data)}", x=0.01, ha="left")
    return fig


@figure("depth", "accuracy and robustness against freeze depth, one line per architecture (sweeps)")
def fig_depth(data: dict[str, Any]) -> Any:
    from rttui.analysis.depth import build_depth_figure, depth_rows

    recs = data["records"]
    if data.get("where"):
        recs = apply_where(recs, parse_where(data["where"]))
    table = depth_rows(recs, data.get("runs") or [], data.get("attack"), data.get("eps"))
    return build_depth_figure(table, data.get("study") or "")


# Figure kinds defined in their own modules register themselves on import (kept last: they import this module).
from rttui.analysis import fronts as _fronts  # noqa: E402, F401
