"""The report: every table, paired test, error analysis and figure of one study written into one folder, with
an index.md that shows and links them. Composition only: every number comes from the results facade
(`rttui.api.results`), which reads the store and calls the analysis. Works on a study that is still running.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rttui.api.results import compare, confusions, default_attack, default_eps, plot, ttest
from rttui.api.stores import read_results
from rttui.errors import RttuiError, StoreError

__all__ = ["report"]

# The metrics of the per-attack table at the report's epsilon.
REPORT_METRICS = ("clean", "adv", "drop", "rel_drop", "auc")
# Paired tests: each value of the axis against its reference, when the study has both.
TEST_REFERENCES = (("strategy", "full"), ("technique", "none"))


class _Folder:
    """The report folder: writes files and remembers them."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.files: list[Path] = []

    def write(self, name: str, text: str) -> Path:
        p = self.out / name
        p.write_text(text)
        self.files.append(p)
        return p


def study_name_of(study: str) -> str:
    """A study given as `rttui run` takes it (its file, studies/quickstart.toml) or by its name (as `status` lists
    it): its name. A file is read only for its name, so a study file edited since its run still names it."""
    p = Path(study)
    if p.suffix == ".toml" or p.is_file():
        from rttui.study.spec import load_study

        return load_study(p).name
    return study


def report(db: str | Path | None, study: str, out: str | Path) -> dict[str, Any]:
    """Every table and figure of a study (its name, or its study file) into one folder, with an index.md that
    links them; returns
    {"index": path, "files": [...], "partial": bool, "incomplete": what is missing, in one line ("" when
    nothing)}. Works on a study that is still running."""
    from rttui.analysis.compare import incomplete_label

    study = study_name_of(study)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    recs, runs, s, study = read_results(db, study)
    try:
        lock = s.runner_lock()
    finally:
        s.close()
    if not recs:
        raise StoreError(f"study {study!r} has no results yet; run it first (rttui run STUDY --db DB)")
    folder = _Folder(out)
    attacks = list(dict.fromkeys(r["attack"] for r in recs))
    eps0 = default_eps(recs)
    todo = [r for r in runs if r["state"] != "done"]
    label = incomplete_label([r["state"] for r in todo], bool(lock) and lock["study"] == study)
    index = [f"# Study {study}", ""]
    if todo:
        index += [f"**{label}**: {len(todo)} of {len(runs)} runs are not done; numbers will change.", ""]
    index += [f"{len(runs)} runs, attacks: {', '.join(attacks)}; single-epsilon views use ε = {eps0:g}.", ""]
    index += _tables(db, study, attacks, eps0, folder)
    if any(a.startswith("transfer[") for a in attacks):
        index += _transfer(db, study, eps0, folder)
    index += _tests(db, study, recs, eps0, folder)
    index += _confusions(db, study, attacks, eps0, folder)
    index += _figures(db, study, attacks, folder)
    index += _audits(recs)
    index += _environments(recs)
    idx = folder.write("index.md", "\n".join(index) + "\n")
    return {"index": idx, "files": folder.files, "partial": bool(todo), "incomplete": label}


def _audits(recs: list[dict[str, Any]]) -> list[str]:
    """The attack-strength audit: every flagged (run, attack, eps) and what the stronger attack found."""
    from rttui.analysis.records import AUDIT_MARK, audit_finding, config_label

    audited = [r for r in recs if r.get("audit")]
    flagged = [r for r in audited if r["audit"]["flagged"]]
    out = ["## Attack-strength audit", ""]
    if not audited:
        return [*out, "No evaluation of this study was audited (or the database predates the audit).", ""]
    out += [
        f"{len(audited)} (run, attack, ε) results audited: a seeded subsample of the images that survived each was "
        "re-attacked by a stronger attack (every survivor once flagged: escalation); flagged when it shows the "
        "accuracy overstated by more than max(3, 1% of the test images) images "
        f"(marked {AUDIT_MARK} in the tables).",
        "",
    ]
    if not flagged:
        return [*out, "None is flagged.", ""]
    out += [f"**{len(flagged)} flagged** (their accuracies overstate robustness):", ""]
    for r in flagged:
        finding = audit_finding(r.get("attack_name", r["attack"]), r["audit"])
        out.append(f"- {config_label(r)} seed {r['seed']}, {r['attack']} at ε = {float(r['eps']):g}: {finding}")
    return [*out, ""]


def _environments(recs: list[dict[str, Any]]) -> list[str]:
    """Each distinct environment the study's numbers were made in, and the runs whose evaluations ran there."""
    from rttui.analysis.environment import NOT_RECORDED, env_fields

    runs_by_env: dict[str, set[str]] = {}
    envs: dict[str, dict[str, Any] | None] = {}
    for r in recs:
        key = r.get("env_id") or NOT_RECORDED
        runs_by_env.setdefault(key, set()).add(r["run_id"])
        envs.setdefault(key, r.get("env"))
    out = ["## Environments", ""]
    if len(runs_by_env) > 1:
        out += [f"**Mixed environments**: the numbers come from {len(runs_by_env)} environments.", ""]
    for key, rids in runs_by_env.items():
        out += [f"### {key}", "", "| field | value |", "|---|---|"]
        out += [f"| {k} | {v} |" for k, v in env_fields(envs[key])]
        out += ["", f"Runs: {', '.join(sorted(rids))}", ""]
    return out


def _tables(db: str | Path | None, study: str, attacks: list[str], eps0: float, folder: _Folder) -> list[str]:
    from rttui.analysis import export

    index = ["## Tables", ""]
    for attack in attacks:
        comp = compare(db, study, attack, eps0, metrics=REPORT_METRICS)
        stem = f"compare_{_slug(attack)}_eps{eps0:g}"
        for fmt, ext in (("md", "md"), ("latex", "tex"), ("csv", "csv"), ("json", "json")):
            folder.write(f"{stem}.{ext}", export.render(comp, fmt))
        index += [
            export.comparison_markdown(comp, level=3),
            f"Files: [{stem}.tex]({stem}.tex), [{stem}.csv]({stem}.csv), [{stem}.json]({stem}.json)",
            "",
        ]
        curve = compare(db, study, attack, None, cols=("eps",), metrics=("adv",))
        stem = f"compare_{_slug(attack)}_all_eps"
        for fmt, ext in (("md", "md"), ("latex", "tex"), ("csv", "csv")):
            folder.write(f"{stem}.{ext}", export.render(curve, fmt))
        index += [export.comparison_markdown(curve, level=3)]
        stab = compare(db, study, attack, eps0, stability=True, baseline=None)
        folder.write(f"stability_{_slug(attack)}.md", export.render(stab, "md"))
        index += ["Stability across seeds:", "", export.comparison_markdown(stab, level=4)]
    return index


def _slug(attack: str) -> str:
    """An attack label as a file name part: `transfer[sibling: strategy=full]` -> `transfer-sibling-strategy-full`."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "-", attack).strip("-")


def _transfer(db: str | Path | None, study: str, eps0: float, folder: _Folder) -> list[str]:
    from rttui.api.transfer import transfer, transfer_text

    try:
        shown = transfer(db, study, eps0)
    except RttuiError:  # the transfer attack ran on another grid: its own default epsilon
        shown = transfer(db, study)
    every = transfer(db, study, all_eps=True)
    folder.write("transfer.md", transfer_text(shown, "md"))
    folder.write("transfer.tex", transfer_text(shown, "latex"))
    folder.write("transfer.json", transfer_text(every, "json"))
    return [
        "## Transfer attacks",
        "",
        transfer_text(shown, "md"),
        "Files: [transfer.tex](transfer.tex), [transfer.json](transfer.json) (every epsilon)",
        "",
    ]


def _tests(db: str | Path | None, study: str, recs: list[dict[str, Any]], eps0: float, folder: _Folder) -> list[str]:
    from rttui.analysis import export

    index = ["## Paired tests", ""]
    for axis, ref in TEST_REFERENCES:
        values = list(dict.fromkeys(str(r[axis]) for r in recs))
        if ref not in values or len(values) < 2:
            continue
        for v in values:
            if v == ref:
                continue
            rows = ttest(db, axis, v, ref, "adv_acc", eps=eps0, study=study, mcnemar=True, variance=True)
            if not rows:
                continue
            stem = f"ttest_{axis}_{v}_vs_{ref}"
            folder.write(f"{stem}.md", export.render(rows, "md"))
            folder.write(f"{stem}.tex", export.render(rows, "latex"))
            folder.write(f"{stem}.json", export.render(rows, "json"))
            index += [f"### {axis}: {v} vs {ref} (adversarial accuracy, ε = {eps0:g})", "", export.render(rows, "md")]
    return index


def _confusions(db: str | Path | None, study: str, attacks: list[str], eps0: float, folder: _Folder) -> list[str]:
    from rttui.analysis.records import config_label

    index = ["## Most confused class pairs under attack", ""]
    lines = []
    for attack in attacks:
        for g in confusions(db, study, attack, eps0, top=3):
            pairs = ", ".join(f"{p['true_name']}→{p['pred_name']} ({p['count']}, {p['share']:.0%})" for p in g["pairs"])
            lines.append(f"| {config_label(g)} | {attack} | {g['eps']:g} | {len(g['seeds'])} | {pairs or 'none'} |")
    if lines:
        text = "\n".join(
            [
                "| configuration | attack | ε | seeds | top pairs (count, share of true class) |",
                "| --- | --- | --- | --- | --- |",
                *lines,
                "",
            ]
        )
        folder.write("confusions.md", text)
        index += [text]
    return index


def _figures(db: str | Path | None, study: str, attacks: list[str], folder: _Folder) -> list[str]:
    from rttui.analysis import figures

    index = ["## Figures", ""]
    for kind, fk in figures.FIGURES.items():
        try:
            paths = plot(db, kind, folder.out, study, None if kind == "curves" else default_attack(attacks))
        except RttuiError as exc:
            index += [f"- {kind}: not drawn ({exc})"]
            continue
        folder.files += paths
        png = next((p for p in paths if p.suffix == ".png"), paths[0])
        index += [f"### {fk.description}", "", f"![{kind}]({png.name})", ""]
    return index
