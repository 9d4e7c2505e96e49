"""`rttui run`'s live display shows the running evaluation's latest per-epsilon accuracy as each eps finishes
(the events the runner streams), and the whole grid's line once the evaluation is stored."""

from __future__ import annotations

import io

from rich.console import Console

from rttui.api import events as ev
from rttui.cli.progress import RichListener


def test_the_workers_bar_shows_the_latest_eps_as_it_finishes() -> None:
    out = io.StringIO()
    listener = RichListener(Console(file=out, width=200, force_terminal=False))
    with listener:
        listener(
            ev.StudyStarted(study="s", n_sources=1, n_runs=1, n_evals=1, todo_sources=0, todo_runs=1, todo_evals=1)
        )
        listener(ev.UnitStarted("run", "r", "test_resnet/full/s0", phase="eval"))
        listener(ev.Progress("run", "r", "eval:pgd", 1, 3))
        kw = {"run_id": "r", "eval_id": "e", "attack": "pgd", "label": "pgd", "n": 60, "epsilons": [0.0, 0.03, 0.1]}
        listener(ev.EpsDone(eps=0.0, n_adv_correct=54, **kw))
        listener(ev.EpsDone(eps=0.03, n_adv_correct=21, **kw))
        (bar,) = [t for t in listener.progress.tasks if t.description != "[bold]study"]
        assert bar.description == "test_resnet/full/s0 · eval:pgd · pgd ε=0.03: 0.35 (2/3 ε)"
        listener(ev.Progress("run", "r", "eval:pgd", 2, 3))  # batch progress keeps the latest eps shown
        assert bar.description.endswith("pgd ε=0.03: 0.35 (2/3 ε)")
        listener(ev.EpsDone(eps=0.1, n_adv_correct=3, **kw))
        assert bar.description.endswith("pgd ε=0.1: 0.05 (3/3 ε)")
        metrics = [{"eps": e, "adv_acc": k / 60} for e, k in ((0.0, 54), (0.03, 21), (0.1, 3))]
        listener(
            ev.EvalDone(
                run_id="r",
                eval_id="e",
                attack="pgd",
                params={},
                epsilons=[0.0, 0.03, 0.1],
                mode="sweep",
                n=60,
                seconds=1.0,
                metrics=metrics,
                samples=[],
                confusion=[],
                checks=[],
            )
        )
        listener(ev.Progress("run", "r", "eval:fgsm", 0, 3))  # the next evaluation starts from nothing
        assert "ε=" not in bar.description
    assert "adv acc by eps  0:0.90 0.03:0.35 0.1:0.05" in out.getvalue()


def test_output_that_is_not_a_terminal_gets_a_line_per_unit_started_and_finished() -> None:
    out = io.StringIO()
    listener = RichListener(Console(file=out, width=200, force_terminal=False))
    with listener:
        listener(ev.UnitStarted("run", "r", "test_resnet/full/s0", phase="train"))
        listener(ev.UnitFinished("run", "r", 12.5))
    lines = out.getvalue().splitlines()
    assert "  started run test_resnet/full/s0 (train)" in lines
    assert "  finished run test_resnet/full/s0 (12.5s)" in lines


def test_a_source_is_named_once_in_its_trained_line() -> None:
    """A source's label already says "source": the line reads "trained source test_resnet s0", not "source source"."""
    out = io.StringIO()
    listener = RichListener(Console(file=out, width=200, force_terminal=False))
    with listener:
        listener(ev.UnitStarted("source", "s", "source test_resnet s0", phase="train"))
        common = {"checkpoint": "c.safetensors", "sha256": "0" * 64, "num_classes": 5}
        listener(ev.UnitTrained(kind="source", unit_id="s", clean_acc=0.9875, n_test=100, seconds=3.25, **common))
        listener(ev.UnitStarted("run", "r", "digits/test_resnet/full/none/s0", phase="train"))
        listener(ev.UnitTrained(kind="run", unit_id="r", clean_acc=0.95, n_test=60, seconds=1.5, **common))
    lines = out.getvalue().splitlines()
    assert "  trained source test_resnet s0: clean acc 0.988 (3.2s)" in lines
    assert "  trained run digits/test_resnet/full/none/s0: clean acc 0.950 (1.5s)" in lines
