"""`rttui report`'s index reads like a results section: a summary first (what ran, the headline table, the
significant differences with effect sizes, the audit's verdict), sanity warnings once at the end, grouped."""

from __future__ import annotations

from pathlib import Path

from rttui import api
from rttui.api.report import _warnings


def test_the_index_opens_with_a_summary_and_lists_warnings_once_at_its_end(seeds3_db: Path, tmp_path: Path) -> None:
    res = api.report(seeds3_db, "tiny3", tmp_path / "rep")
    index = Path(res["index"]).read_text()
    sections = [line for line in index.splitlines() if line.startswith("## ")]
    assert sections[0] == "## Summary" and sections.index("## Tables") == 1
    assert sections[-2:] == ["## Sanity warnings", "## Environments"]
    summary = index.split("## Summary", 1)[1].split("## Tables", 1)[0]
    assert "6 runs (6 done)" in summary and "seeds 0, 1, 2" in summary and "**Headline** (pgd" in summary
    assert "**Significant differences**" in summary
    assert "d_z = " in summary or "reaches p_Holm < 0.05" in summary
    assert "**Audit**:" in summary and "worst-case rows" in summary
    tables = index.split("## Tables", 1)[1].split("## Sanity warnings", 1)[0]
    assert "- ⚠" not in tables  # not repeated under each table


def test_warnings_are_grouped_by_what_they_say() -> None:
    """Warnings that differ only in their numbers and configuration are one group with a count and the
    configurations it concerns; a flag of the audit is only counted (the audit section lists it)."""
    warned = [
        "warning: digits/a/full seed 0: fgsm: accuracy rises by 3 images from eps 0.01 to 0.03",
        "warning: digits/a/full seed 1: fgsm: accuracy rises by 5 images from eps 0.01 to 0.05",
        "warning: digits/b/full seed 0: input gradients: 8 all-zero of 64 samples",
    ]
    out = "\n".join(_warnings([], warned))
    assert "**2×** fgsm: accuracy rises by 3 images from eps 0.01 to 0.03 (and 1 like it)" in out
    assert "concerns: digits/a/full seed 0; digits/a/full seed 1" in out
    assert "**1×** input gradients: 8 all-zero of 64 samples" in out
    assert _warnings([], []) == ["## Sanity warnings", "", "None.", ""]
