"""The report: every table, paired test, error analysis and figure of one study written into one folder, with
an index.md that shows and links them. Composition only: every number comes from the results facade
(`rttui.api.results`), which reads the store and calls the analysis. Works on a study that is still running.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rttui.api.results import compare, confusions, default_attack, default_eps, headline_attack, plot, ttest
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
    from rttui.analysis.records import normalize

    # Attacks as the tables label them: a variant (other parameters, or a worst case over other attacks while
    # a study is still running) is a table of its own, never an error.
    attacks = list(dict.fromkeys(r["attack"] for r in normalize(recs)))
    eps0 = default_eps(recs)
    todo = [r for r in runs if r["state"] != "done"]
    label = incomplete_label([r["state"] for r in todo], bool(lock) and lock["study"] == study)
    index = [f"# Study {study}", ""]
    if todo:
        index += [f"**{label}**: {len(todo)} of {len(runs)} runs are not done; numbers will change.", ""]
    warned: list[str] = []
    tables = _tables(db, study, attacks, eps0, folder, warned)
    tested: list[dict[str, Any]] = []
    tests = _tests(db, study, recs, eps0, folder, tested)
    index += _summary(db, study, recs, runs, attacks, eps0, tested, warned)
    index += tables
    if any(a.startswith("transfer[") for a in attacks):
        index += _transfer(db, study, eps0, folder)
    index += tests
    index += _confusions(db, study, attacks, eps0, folder)
    index += _figures(db, study, attacks, folder)
    index += _audits(recs)
    index += _warnings(recs, warned)
    index += _environments(recs)
    idx = folder.write("index.md", "\n".join(index) + "\n")
    return {"index": idx, "files": folder.files, "partial": bool(todo), "incomplete": label}


def _published(recs: list[dict[str, Any]], head: str, eps0: float) -> list[str]:
    """RobustBench's published numbers for the models a study started from, beside what this study measured with
    them: the reader sees at once whether the weights behave as their paper says (measured here after transfer, on
    this study's target task and ε: comparable to the leaderboard only where those are the leaderboard's)."""
    zoo: dict[str, dict[str, Any]] = {}
    for r in recs:
        if r.get("robustbench") and r["robustbench"].get("name"):
            zoo.setdefault(r["robustbench"]["name"], r["robustbench"])
    if not zoo:
        return []
    out = [
        "**RobustBench sources** (published on its leaderboard vs measured here, after transfer to this study's "
        f"target task, {head} at ε = {eps0:g}):",
        "",
    ]
    for name, rb in zoo.items():
        pub = rb.get("published") or {}
        said = (
            f"published clean {pub['clean_acc'] * 100:.2f}%, robust {pub['robust_acc'] * 100:.2f}%"
            + (f" at ε = {pub['eps']}" if pub.get("eps") else "")
            + f" ({pub.get('source', 'RobustBench')})"
            if pub.get("clean_acc") is not None and pub.get("robust_acc") is not None
            else "not on the installed robustbench's leaderboard"
        )
        mine = [r for r in recs if r["model"] == name and r["attack"] == head and float(r["eps"]) == eps0]
        if mine:
            clean = [float(r["clean_acc"]) * 100 for r in mine]
            adv = [float(r["adv_acc"]) * 100 for r in mine]
            here = (
                f"measured here: clean {min(clean):.1f}-{max(clean):.1f}%, adversarial {min(adv):.1f}-{max(adv):.1f}% "
                f"over {len(mine)} run(s)"
            )
        else:
            here = f"not measured here with {head} at ε = {eps0:g}"
        out.append(f"- {name} ({rb.get('dataset')}, {rb.get('threat_model')}): {said}; {here}")
    return [*out, ""]


def _summary(
    db: str | Path | None,
    study: str,
    recs: list[dict[str, Any]],
    runs: list[dict[str, Any]],
    attacks: list[str],
    eps0: float,
    tested: list[dict[str, Any]],
    warned: list[str],
) -> list[str]:
    """What a reader needs first, as a results section opens: what ran, the headline table, the differences that
    are significant with their effect sizes, the audit's verdict, and how many warnings the end lists."""
    from rttui.analysis import export

    plural = {"dataset": "datasets", "model": "models", "strategy": "strategies", "technique": "techniques"}

    def axis(a: str) -> str:
        vals = list(dict.fromkeys(str(r[a]) for r in runs))
        return f"{len(vals)} {a if len(vals) == 1 else plural[a]} ({', '.join(vals)})"

    seeds = sorted({r["seed"] for r in runs}, key=str)
    grid = sorted({float(r["eps"]) for r in recs if r["attack"] != "worst-case"})
    done = sum(r["state"] == "done" for r in runs)
    out = ["## Summary", ""]
    out += [
        f"{len(runs)} runs ({done} done): {axis('dataset')} × {axis('model')} × "
        f"{axis('strategy')} × {axis('technique')}, seeds "
        f"{', '.join(map(str, seeds))}; {recs[0]['n']} test images; attacks {', '.join(attacks)} at "
        f"ε ∈ {{{', '.join(f'{e:g}' for e in grid)}}} (L∞, [0, 1] pixels).",
        "",
    ]
    head = headline_attack(db, study)
    head = next((a for a in attacks if a == head or a.startswith(f"{head}[")), default_attack(attacks))
    comp = compare(db, study, head, eps0, metrics=("clean", "adv", "drop"))
    out += [f"**Headline** ({head}, ε = {eps0:g}):", "", export.comparison_markdown(comp, level=3, warnings=False)]
    out += _published(recs, head, eps0)
    sig = [r for r in tested if r.get("p_holm") is not None and r["p_holm"] < 0.05]
    if tested:
        out += [
            f"**Significant differences** (paired t-test over seeds on adversarial accuracy at ε = {eps0:g}, "
            "Holm-corrected within each comparison's family; effect size Cohen's d_z):",
            "",
        ]
        for r in sig:
            where = ", ".join(
                f"{a}={r[a]}" for a in ("dataset", "model", "strategy", "technique") if a in r and a != r["axis"]
            )
            out.append(
                f"- {r['axis']} {r['a']} vs {r['b']} ({r['attack']}; {where}): {r['mean_diff'] * 100:+.1f} points "
                f"(95% CI {r['ci_low'] * 100:+.1f} to {r['ci_high'] * 100:+.1f}), d_z = {r['dz']:.2f}, "
                f"p_Holm = {r['p_holm']:.3g}, n = {r['n']} seeds"
            )
        if not sig:
            n = max((r["n"] for r in tested), default=0)
            out.append(
                f"- none of {len(tested)} comparisons reaches p_Holm < 0.05"
                + (f" (n = {n} seeds: only very large effects can)" if n < 5 else "")
            )
        out.append("")
    out += [f"**Audit**: {_audit_verdict(recs)}", ""]
    if warned:
        out += [
            f"{len(warned)} sanity warning(s) are listed once, grouped, under [Sanity warnings](#sanity-warnings).",
            "",
        ]
    return out


def _audit_verdict(recs: list[dict[str, Any]]) -> str:
    """The attack-strength audit in one paragraph: how much was audited, what it flagged per attack, and whether
    the worst case counts what the stronger attack found exactly."""
    audited = [r for r in recs if r.get("audit")]
    if not audited:
        return "no evaluation of this study was audited."
    by_attack: dict[str, list[dict[str, Any]]] = {}
    for r in audited:
        by_attack.setdefault(r["attack"], []).append(r)
    parts = [
        f"{a} overstated in {sum(bool(x['audit']['flagged']) for x in rs)} of {len(rs)} cells"
        for a, rs in by_attack.items()
    ]
    worst = [r for r in recs if r.get("attack_name", r["attack"]) == "worst-case"]
    exact = sum(bool(r.get("exact")) for r in worst)
    text = (
        f"a stronger attack (the reference APGD-CE) re-attacked the survivors of {len(audited)} (run, attack, ε) "
        f"results: {'; '.join(parts)}. "
    )
    flagged = sum(bool(r["audit"]["flagged"]) for r in audited)
    if flagged:
        text += (
            "A flagged cell's accuracy is higher than the stronger attack's; the worst-case rows count an image "
            "robust only if it survived every attack and the audit, "
        )
    else:
        text += "No accuracy is overstated by more than max(3, 1% of the test images) images; the worst-case rows "
    text += f"and are exact in {exact} of {len(worst)} cells (the rest estimated from a subsample, with an interval)."
    return text


def _warnings(recs: list[dict[str, Any]], warned: list[str]) -> list[str]:
    """Every sanity warning of the report's tables once, grouped by what it says (numbers aside), each group with
    the configurations it concerns; the audit's flags are the audit section's, so they are only counted here."""
    from rttui.analysis.records import audit_warning, config_label

    audit = {f"{config_label(r)} seed {r['seed']}: {m}" for r in recs if (m := audit_warning(r))}
    rest = [w for w in warned if w not in audit]
    out = ["## Sanity warnings", ""]
    if not warned:
        return [*out, "None.", ""]
    flagged = len(warned) - len(rest)
    if flagged:
        out += [f"- {flagged} attack-strength flags: see [Attack-strength audit](#attack-strength-audit).", ""]
    groups: dict[str, list[str]] = {}
    for w in rest:
        body = w.split(": ", 1)[1] if w.startswith(("warning: ", "error: ")) else w
        _who, sep, msg = body.partition(": ")
        groups.setdefault(re.sub(r"\d+(\.\d+)?", "#", msg if sep else w), []).append(w)
    for ws in groups.values():
        first = ws[0].split(": ", 2)[-1] if ws[0].startswith(("warning: ", "error: ")) else ws[0].split(": ", 1)[-1]
        who = sorted({w.removeprefix("warning: ").removeprefix("error: ").split(": ", 1)[0] for w in ws})
        out.append(f"- **{len(ws)}×** {first}" + (f" (and {len(ws) - 1} like it)" if len(ws) > 1 else ""))
        out.append(f"  - concerns: {'; '.join(who)}")
    return [*out, ""]


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


def _tables(
    db: str | Path | None, study: str, attacks: list[str], eps0: float, folder: _Folder, warned: list[str]
) -> list[str]:
    """Each attack's tables (files keep their warnings; the index lists them once at its end, into `warned`)."""
    from rttui.analysis import export

    def note(comp: Any) -> None:
        warned.extend(w for t in comp.tables for w in t.warnings if w not in warned)

    index = ["## Tables", ""]
    for attack in attacks:
        comp = compare(db, study, attack, eps0, metrics=REPORT_METRICS)
        note(comp)
        stem = f"compare_{_slug(attack)}_eps{eps0:g}"
        for fmt, ext in (("md", "md"), ("latex", "tex"), ("csv", "csv"), ("json", "json")):
            folder.write(f"{stem}.{ext}", export.render(comp, fmt))
        index += [
            export.comparison_markdown(comp, level=3, warnings=False),
            f"Files: [{stem}.tex]({stem}.tex), [{stem}.csv]({stem}.csv), [{stem}.json]({stem}.json)",
            "",
        ]
        curve = compare(db, study, attack, None, cols=("eps",), metrics=("adv",))
        note(curve)
        stem = f"compare_{_slug(attack)}_all_eps"
        for fmt, ext in (("md", "md"), ("latex", "tex"), ("csv", "csv")):
            folder.write(f"{stem}.{ext}", export.render(curve, fmt))
        index += [export.comparison_markdown(curve, level=3, warnings=False)]
        stab = compare(db, study, attack, eps0, stability=True, baseline=None)
        folder.write(f"stability_{_slug(attack)}.md", export.render(stab, "md"))
        note(stab)
        index += ["Stability across seeds:", "", export.comparison_markdown(stab, level=4, warnings=False)]
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


def _tests(
    db: str | Path | None,
    study: str,
    recs: list[dict[str, Any]],
    eps0: float,
    folder: _Folder,
    tested: list[dict[str, Any]],
) -> list[str]:
    """The paired tests of each axis value against its reference (their rows also into `tested`)."""
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
            tested.extend(rows)
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
