"""Validation curves: clean and probe-robust validation accuracy per training epoch, per configuration over seeds.

Reads the per-epoch validation records (`Store.validation_records`): one line per configuration (dataset, model,
strategy, technique, with their parameters, and `select`), a band of one seed standard deviation, the selected epochs
marked. Writes the figure (PNG/SVG/PDF) and its numbers (JSON and CSV) side by side. Never reads test-set results:
these are validation numbers, which is what checkpoint selection may use. Matplotlib is imported only when drawing.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rttui.analysis.aggregate import Stat
from rttui.analysis.records import CONFIG_AXES, AnalysisError, apply_where, config_label, parse_where, variant_labels

CURVE_FIELDS = (
    "config",
    "dataset",
    "model",
    "strategy",
    "technique",
    "select",
    "epoch",
    "seeds",
    "val_clean_mean",
    "val_clean_std",
    "val_adv_mean",
    "val_adv_std",
    "val_n",
    "probe",
    "selected_epochs",
)


def probe_label(probe: dict[str, Any] | None) -> str:
    """The probe as a figure names it: `PGD-3 (linf), ε=0.03, 16 images`."""
    if not probe:
        return "no probe"
    name = str(probe.get("attack", "?")).upper()
    if probe.get("steps"):
        name += f"-{probe['steps']}"
    eps = ", ".join(f"{float(e):g}" for e in probe.get("eps") or [])
    return f"{name} ({probe.get('norm', 'linf')}), ε={eps}, {probe.get('n', '?')} images"


def curves(records: list[dict[str, Any]], where: Sequence[str] | dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One row per (configuration, epoch): mean and seed standard deviation of the validation accuracies."""
    recs = apply_where(variant_labels(records), parse_where(where))
    if not recs:
        raise AnalysisError(
            "no per-epoch validation is stored here; run a study with val_size under [target] "
            "(see studies/robust-overfitting.toml)"
        )
    axes = [a for a in CONFIG_AXES if len({r[a] for r in recs}) > 1] or ["model"]
    by_config: dict[str, list[dict[str, Any]]] = {}
    for r in recs:
        by_config.setdefault(config_label(r, axes), []).append(r)  # select variants carry it in their technique
    rows = []
    for label, crecs in by_config.items():
        selected = sorted({(r["seed"], r["selected_epoch"]) for r in crecs if r.get("selected_epoch") is not None})
        for epoch in sorted({int(r["epoch"]) for r in crecs}):
            er = {r["seed"]: r for r in sorted(crecs, key=lambda r: r["run_id"]) if int(r["epoch"]) == epoch}
            clean = Stat.of([float(r["val_clean_acc"]) for r in er.values()])
            adv = Stat.of([float(r["val_adv_acc"]) for r in er.values() if r.get("val_adv_acc") is not None])
            first = next(iter(er.values()))
            rows.append(
                {
                    "config": label,
                    **{a: first[a] for a in CONFIG_AXES},
                    "select": first["select"],
                    "epoch": epoch,
                    "seeds": len(er),
                    "val_clean_mean": clean.mean,
                    "val_clean_std": clean.std,
                    "val_adv_mean": adv.mean if adv.n else None,
                    "val_adv_std": adv.std,
                    "val_n": first["val_n"],
                    "probe": probe_label(first.get("probe")),
                    "selected_epochs": [e for _, e in selected],
                }
            )
    return rows


def draw(rows: list[dict[str, Any]], title: str = "") -> Any:
    """Two panels (clean, robust validation accuracy vs epoch), one line per configuration, a seed-sd band; the
    epochs each seed's run selected are ticked on the robust panel."""
    from rttui.analysis.figures import _colors, _plt

    plt = _plt()
    fig, axs = plt.subplots(1, 2, figsize=(9.0, 3.6), sharex=True)
    colors = _colors(plt)
    configs = list(dict.fromkeys(r["config"] for r in rows))
    for ci, cfg in enumerate(configs):
        cr = [r for r in rows if r["config"] == cfg]
        xs = [r["epoch"] for r in cr]
        color = colors[ci % len(colors)]
        for ax, key in ((axs[0], "val_clean"), (axs[1], "val_adv")):
            pts = [(x, r[f"{key}_mean"], r[f"{key}_std"] or 0.0) for x, r in zip(xs, cr, strict=True)]
            pts = [p for p in pts if p[1] is not None]
            if not pts:
                continue
            ax.plot([p[0] for p in pts], [p[1] * 100 for p in pts], marker="o", ms=3, color=color, label=cfg)
            ax.fill_between(
                [p[0] for p in pts],
                [(p[1] - p[2]) * 100 for p in pts],
                [(p[1] + p[2]) * 100 for p in pts],
                color=color,
                alpha=0.15,
                lw=0,
            )
        for e in cr[0]["selected_epochs"] if cr[0]["select"] != "last" else []:
            axs[1].axvline(e, color=color, ls=":", lw=0.8)
    seeds = max(r["seeds"] for r in rows)
    axs[0].set_title(f"clean validation accuracy (n={rows[0]['val_n']} images)", loc="left", fontsize=8)
    axs[1].set_title(textwrap.fill(f"robust validation accuracy: {rows[0]['probe']}", 60), loc="left", fontsize=8)
    for ax in axs:
        ax.set_xlabel("epoch")
        ax.set_ylim(0, 100)
    axs[0].set_ylabel("accuracy (%)")
    axs[0].legend(frameon=False, fontsize=7, loc="lower right")
    fig.suptitle(
        f"Validation accuracy while training{(': ' + title) if title else ''} — band: ±1 sd over up to {seeds} "
        "seed(s); dotted: selected epochs",
        x=0.01,
        ha="left",
        fontsize=9,
    )
    return fig


def write(
    rows: list[dict[str, Any]], out: Path, formats: Sequence[str] = ("png", "svg"), title: str = ""
) -> list[Path]:
    """The figure in each format plus `<stem>.json` and `<stem>.csv` with its numbers; `out` is a folder (files
    named validation_curves.*) or a file name such as curves.png."""
    from rttui.analysis import figures

    for f in formats:
        if f not in figures.FORMATS:
            raise AnalysisError(f"figure format {f!r} is unknown; use some of {', '.join(figures.FORMATS)}")
    stem = figures.output_stem(out, "validation_curves")
    plt = figures._plt()
    fig = draw(rows, title)
    written = []
    for f in formats:
        p = stem.with_name(f"{stem.name}.{f}")
        fig.savefig(p, bbox_inches="tight", metadata={"Date": None} if f == "svg" else None)
        written.append(p)
    plt.close(fig)
    return written + figures.write_numbers(rows, CURVE_FIELDS, stem)
