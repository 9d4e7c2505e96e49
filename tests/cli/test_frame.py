"""`rttui.api.frame`: stored results as typed pandas DataFrames (records, samples, epochs), the README's notebook
example run as written, and one line naming the extra when pandas is missing."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from rttui import api
from rttui.errors import RttuiError

pd = pytest.importorskip("pandas", reason="pandas is in the test extra")


def test_frame_records_are_typed_with_parameters_as_columns(seeds3_db: Path) -> None:
    df = api.frame(seeds3_db)
    recs = api.export_records(seeds3_db)
    assert len(df) == len(recs) == 2 * 3 * 2 * 3  # strategies x (attacks and the worst case) x eps x seeds
    # steps: nullable, as the worst case has none of its own
    assert df.seed.dtype == np.int64 and df.n.dtype == np.int64 and str(df.steps.dtype) == "Int64"
    assert df.eps.dtype == np.float64 and df.adv_acc.dtype == np.float64 and df.clean_acc.dtype == np.float64
    assert df.random_start.dtype == bool
    assert isinstance(df.attack.dtype, pd.StringDtype) and isinstance(df.strategy.dtype, pd.StringDtype)
    pgd = df[df.attack == "pgd"]
    # One column per parameter: `steps` and `norm` have theirs, so attack_params does not repeat them.
    assert (pgd.steps == 2).all() and (pgd.norm == "linf").all()
    assert "attack_params.steps" not in df.columns and "attack_params.norm" not in df.columns
    lf = df[df.strategy == "layer_freezing"]
    assert (lf["strategy_params.freeze"] == "half").all()
    assert df[df.strategy == "full"]["strategy_params.freeze"].isna().all()
    # The same numbers as the export, row for row.
    key = ["run_id", "attack", "eps"]
    merged = df.merge(pd.DataFrame(recs)[[*key, "adv_acc"]], on=key, suffixes=("", "_export"))
    assert len(merged) == len(df) and (merged.adv_acc == merged.adv_acc_export).all()
    assert set(api.frame(seeds3_db, study="tiny3").run_id) == set(df.run_id)


def test_frame_columns_have_one_dtype_and_carry_the_audit(seeds3_db: Path) -> None:
    """No trap: a parameter column missing from some rows keeps its type (nullable Int64, boolean, string, never
    float with NaN or object), and the audit of each (evaluation, eps) is columns of its own."""
    df = api.frame(seeds3_db)
    params = [c for c in df.columns if "_params." in c]
    assert params and all(df[c].dtype != object for c in params)
    assert all(str(df[c].dtype) != "float64" or not df[c].dropna().apply(float.is_integer).all() for c in params)
    assert df.attack_success_rate.dtype == np.float64 and df.audit_flagged.dtype == "boolean"
    recs = {(r["run_id"], r["attack"], r["eps"]): r for r in api.export_records(seeds3_db)}
    audited = df[df.audit_survivors.notna()]
    assert len(audited) and set(audited.attack) <= {"pgd", "fgsm"}
    for row in audited.itertuples():
        a = recs[(row.run_id, row.attack, row.eps)]["audit"]
        assert (row.audit_survivors, row.audit_reattacked, bool(row.audit_flagged)) == (
            a["survivors"],
            a["reattacked"],
            a["flagged"],
        )
        assert row.audit_survivors == recs[(row.run_id, row.attack, row.eps)]["n_adv_correct"]
    assert df[df.attack == "worst-case"].audit_flagged.isna().all()
    assert ((df.clean_acc >= 0) & (df.clean_acc <= 1)).all()  # fractions, not percent


def test_frame_outcomes_are_tidy_and_count_what_adv_acc_counts(seeds3_db: Path) -> None:
    """kind="outcomes": one row per (test image, eps), `robust` a boolean whose mean per evaluation and eps is the
    stored adversarial accuracy."""
    o = api.frame(seeds3_db, kind="outcomes")
    s = api.frame(seeds3_db, kind="samples")
    assert len(o) == sum(len(e) for e in s.epsilons)
    assert o.fooled.dtype == bool and o.robust.dtype == bool and o.eps.dtype == np.float64
    assert not (o.fooled & ~o.clean_correct).any() and (o.robust == (o.clean_correct & ~o.fooled)).all()
    acc = o.groupby(["run_id", "attack", "eps"]).robust.mean()
    recs = api.frame(seeds3_db)
    own = recs[recs.attack.isin(["pgd", "fgsm"])].set_index(["run_id", "attack", "eps"]).adv_acc
    assert len(own) == len(acc) and np.allclose(acc.loc[own.index].to_numpy(), own.to_numpy())


def test_frame_samples_and_epochs(seeds3_db: Path) -> None:
    s = api.frame(seeds3_db, kind="samples")
    assert len(s) == 2 * 2 * 3 * 40  # strategies x attacks x seeds x test images
    assert s.clean_correct.dtype == bool and s.fooled_mask.dtype == np.int64 and s.idx.dtype == np.int64
    for row in s.sample(20, random_state=0).itertuples():
        hits = [e for i, e in enumerate(row.epsilons) if row.fooled_mask >> i & 1]
        assert (hits[0] if hits else None) == (None if pd.isna(row.first_fooled_eps) else row.first_fooled_eps)
    assert not s[~s.clean_correct].fooled_mask.any()  # never attacked when wrong clean
    e = api.frame(seeds3_db, kind="epochs")
    assert set(e.kind) == {"source", "run"} and e.epoch.dtype == np.int64 and e.loss.dtype == np.float64
    runs = e[e.kind == "run"]
    assert runs.groupby("unit_id").epoch.max().eq(1).all() and runs.unit_id.nunique() == 6
    assert e[e.kind == "source"].strategy.isna().all()


def test_frame_readme_example_runs(seeds3_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's "Use from a notebook" code block, exactly as written, against a small 3-seed database."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Use from a notebook", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    shutil.copy(seeds3_db, tmp_path / "rttui.db")
    monkeypatch.chdir(tmp_path)
    import matplotlib

    matplotlib.use("Agg")
    ns: dict = {}
    exec(compile(code.group(1), "README.md (Use from a notebook)", "exec"), ns)
    assert (tmp_path / "pgd-curves.png").stat().st_size > 0
    assert (ns["table"]["count"] == 3).all()  # one value per seed in every cell
    # one curve per (model, strategy): never two architectures averaged into one line
    assert [c[1] for c in ns["curves"].columns] == ["full", "layer_freezing"]
    assert ns["robust"].between(0, 1).all()


def test_frame_bad_input_is_one_line(seeds3_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(
        RttuiError, match="frame kind 'runs' is not known; use one of records, samples, outcomes, epochs"
    ):
        api.frame(seeds3_db, kind="runs")
    with pytest.raises(RttuiError, match="study 'nope' is not in"):
        api.frame(seeds3_db, study="nope", kind="samples")
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(RttuiError) as e:
        api.frame(seeds3_db)
    assert str(e.value) == "rttui.api.frame needs pandas, which is not installed; pip install 'rttui[pandas]'"


def test_a_parameter_some_rows_lack_keeps_its_type() -> None:
    """An int parameter missing from some rows is nullable Int64 (pandas alone makes it float64 with NaN), a flag
    boolean, a text string; the record's own columns keep theirs."""
    from rttui.analysis.frame import to_frame

    base = {"study": "s", "run_id": "r", "seed": 0, "attack": "pgd", "eps": 0.03, "clean_acc": 0.9, "adv_acc": 0.5}
    rows = [
        {**base, "n": 10, "random_start": True, "attack_params": {"restarts_extra": 2, "early": True, "loss": "ce"}},
        {**base, "n": 10, "random_start": False, "attack_params": {}},
    ]
    df = to_frame(rows, "records")
    assert str(df["attack_params.restarts_extra"].dtype) == "Int64" and df["attack_params.restarts_extra"][0] == 2
    assert str(df["attack_params.early"].dtype) == "boolean"
    assert isinstance(df["attack_params.loss"].dtype, pd.StringDtype)
    assert df.n.dtype == np.int64 and df.random_start.dtype == bool and df.eps.dtype == np.float64
