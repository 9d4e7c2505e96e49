"""One answer to "is a runner holding this database": `Store.refuse_if_running`, one line naming the runner
and the fix; and the units a cancelled runner left running go back to pending through the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from rttui.errors import StoreError
from rttui.store import Store
from rttui.study import make_plan, parse_study
from tests.studies import tiny_study


def _foreign_lock(s: Store, study: str) -> None:
    s.acquire_lock(study)
    s.conn.execute("update locks set pid = 1")  # pid 1 always exists: a live foreign runner
    s.conn.commit()


def test_refuses_beside_a_live_foreign_runner_with_one_line(tmp_path: Path) -> None:
    with Store.open(tmp_path / "b.db", write=True) as s:
        s.refuse_if_running("nothing to refuse")  # no runner
        _foreign_lock(s, "a")
        with pytest.raises(StoreError) as exc:
            s.refuse_if_running("wait for it to finish")
        msg = str(exc.value)
        assert "\n" not in msg and "study 'a'" in msg and "process 1" in msg and msg.endswith("wait for it to finish")
        s.refuse_if_running("only for study b", study="b")  # a runner of another study is no reason here
        with pytest.raises(StoreError, match="only for study a"):
            s.refuse_if_running("only for study a", study="a")


def test_this_process_and_dead_runners_do_not_count(tmp_path: Path) -> None:
    with Store.open(tmp_path / "b.db", write=True) as s:
        s.acquire_lock("a")
        s.refuse_if_running("this process holds it")  # our own lock
        s.conn.execute("update locks set pid = 999999999")  # a dead process on this host
        s.conn.commit()
        s.refuse_if_running("a stale lock")


def test_reset_running_units(tmp_path: Path) -> None:
    plan = make_plan(parse_study(tiny_study()))
    (sp,) = plan.sources.values()
    r1, r2 = plan.runs
    with Store.open(tmp_path / "r.db", write=True) as s:
        s.ensure_source(sp.id, sp.config)
        for rp in plan.runs:
            s.ensure_run(rp.id, rp.config)
        s.update_unit("source", sp.id, state="running")
        s.update_unit("run", r1.id, state="running", checkpoint=f"runs/{r1.id}/model.safetensors")
        s.update_unit("run", r2.id, state="running")
        s.reset_running_units()
        assert s.unit("source", sp.id)["state"] == "pending"
        assert s.unit("run", r1.id)["state"] == "trained" and s.unit("run", r2.id)["state"] == "pending"
