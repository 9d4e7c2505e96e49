"""The transfer attack's surrogate, as a study names it: checked when the study is parsed, resolved to a unit
of the plan when it is expanded.

`[attacks.transfer] surrogate = "source"` crafts on the run's own source model (a unit the run depends on
anyway). `surrogate = "sibling"` crafts on another run of the study, picked by a selector over the axes
(`sibling = { strategy = "full" }`): an axis left out is the target's own, `seed = "other"` is the next seed of
`[study] seeds` (cyclically: with seeds [0, 1, 2], seed 2 takes seed 0), `{}` is the target itself (white-box
PGD through the transfer path). The sibling must be fine-tuned on the same target task (same classes, input
size and test set) since its labels and images are the target's. A selector that matches no run or several is
refused with one line before anything runs.

Pure functions over plain configs; never import the engine's torch code, the runner or a face.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from rttui.engine.attacks.names import SIBLING_AXES
from rttui.errors import StudyError

SEED_WORDS = ("same", "other")


class Problems(Protocol):
    """The parser's problem list (`spec._Problems`): `add(key, problem, fix)`, and the lines so far."""

    items: list[str]

    def add(self, key: str, problem: str, fix: str) -> None: ...


def _fmt_selector(sel: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k} = {v!r}" for k, v in sel.items()) + "}"


def check_attacks(probs: Problems, key: str, attacks: Sequence[Any], seeds: Sequence[int]) -> None:
    """Parse-time checks of a block's transfer attacks (`attacks`: resolved choices with `.name`, `.params`):
    the surrogate kind and its selector agree, the selector names known axes with values of the right kind.
    An attack whose keys already drew a problem (a misspelled key) is not checked further: one line says it."""
    add = probs.add
    for i, a in enumerate(attacks):
        if a.name != "transfer" or any(f"{key}[{i}][transfer]" in line for line in probs.items):
            continue
        k = f"{key}[{i}] (transfer)"
        p = a.params
        sel = p.get("sibling")
        if p.get("surrogate") == "source":
            if sel is not None:
                add(
                    f"{k}.sibling", 'is only read with surrogate = "sibling"', 'remove it, or set surrogate = "sibling"'
                )
            if not p.get("random_start", True):
                add(
                    f"{k}.random_start",
                    "false leaves the feature-space attack at the clean image (its gradient is zero there)",
                    'keep random_start = true with surrogate = "source"',
                )
            continue
        if sel is None:
            add(
                f"{k}.sibling",
                'surrogate = "sibling" needs a selector of the run to craft on',
                'add sibling = { strategy = "full" } or sibling = { seed = "other" }',
            )
            continue
        for axis, value in sel.items():
            if axis not in SIBLING_AXES:
                add(f"{k}.sibling.{axis}", "unknown axis", f"use {', '.join(SIBLING_AXES)}")
            elif axis == "seed":
                if value == "other" and len(seeds) < 2:
                    add(f"{k}.sibling.seed", '"other" needs two or more seeds', "add a seed to [study] seeds")
                elif isinstance(value, bool) or not (value in SEED_WORDS or isinstance(value, int)):
                    add(f"{k}.sibling.seed", f"{value!r} is not a seed", 'use "other", "same" or one of the seeds')
                elif isinstance(value, int) and value not in seeds:
                    add(f"{k}.sibling.seed", f"{value} is not one of the study's seeds", f"use one of {list(seeds)}")
            elif not isinstance(value, str):
                add(f"{k}.sibling.{axis}", f"expected a name, got {value!r}", f'e.g. {axis} = "..." (quoted)')


def choice_label(c: dict[str, Any]) -> str:
    """A strategy or technique as a selector may name it: `name`, or `name[k=v,...]` with its parameters."""
    ps = ",".join(f"{k}={v}" for k, v in sorted((c.get("params") or {}).items()))
    return f"{c['name']}[{ps}]" if ps else c["name"]


def _axis_matches(axis: str, want: Any, cand: dict[str, Any], target: dict[str, Any], seeds: Sequence[int]) -> bool:
    if axis == "seed":
        if want in (None, "same"):
            return cand["seed"] == target["seed"]
        if want == "other":
            i = list(seeds).index(target["seed"])
            return cand["seed"] == seeds[(i + 1) % len(seeds)]
        return cand["seed"] == want
    if want is None:
        return cand[axis] == target[axis]
    if axis == "model":
        return cand["model"]["name"] == want
    return want in (cand[axis]["name"], choice_label(cand[axis]))


def _describe(cfg: dict[str, Any]) -> str:
    return f"{cfg['model']['name']}/{choice_label(cfg['strategy'])}/{choice_label(cfg['technique'])}/s{cfg['seed']}"


def resolve_sibling(
    where: str,
    target_id: str,
    target: dict[str, Any],
    selector: dict[str, Any],
    runs: dict[str, dict[str, Any]],
    seeds: Sequence[int],
) -> str:
    """The id of the one run `selector` picks for the run `target` (run configs by id); StudyError (one line)
    when it picks none or several, or a run of another target task (input size, classes, test set)."""
    sel = dict(selector)

    def fits(cfg: dict[str, Any]) -> bool:
        return all(_axis_matches(a, sel.get(a), cfg, target, seeds) for a in SIBLING_AXES)

    picked = [rid for rid, cfg in runs.items() if fits(cfg)]
    same_task = [rid for rid in picked if runs[rid]["target"] == target["target"]]
    what = f"{where}: sibling {_fmt_selector(sel)} for {_describe(target)}"
    if len(same_task) == 1:
        return same_task[0]
    if len(same_task) > 1:
        labels = ", ".join(sorted(_describe(runs[r]) for r in same_task))
        raise StudyError(
            f"{what} matches {len(same_task)} runs ({labels}); name the one meant, e.g. with the variant "
            'strategy = "layer_freezing[freeze=2]" or a model, technique or seed'
        )
    if picked:
        other = runs[picked[0]]["target"]
        mine = target["target"]
        if other.get("image_size") != mine.get("image_size"):
            why = f"an input size of {other.get('image_size')} (the target's is {mine.get('image_size')})"
        elif other.get("classes") != mine.get("classes") or other.get("dataset") != mine.get("dataset"):
            why = f"other classes ({other.get('dataset')} {other.get('classes')}; the target's: {mine.get('classes')})"
        else:
            why = "another test set ([target] settings differ)"
        raise StudyError(
            f"{what} picks {_describe(runs[picked[0]])}, fine-tuned with {why}; a sibling surrogate must share the "
            "target task: pick a run of a block with the same [target]"
        )
    have = {
        a: sorted({str(_axis_value(a, cfg)) for cfg in runs.values() if cfg["target"] == target["target"]})
        for a in SIBLING_AXES
        if a in sel and a != "seed"
    }
    hint = "; ".join(f"{a} is one of {', '.join(v)}" for a, v in have.items()) or "check the selector"
    raise StudyError(f"{what} matches no run of the study; {hint}")


def _axis_value(axis: str, cfg: dict[str, Any]) -> Any:
    if axis == "model":
        return cfg["model"]["name"]
    if axis == "seed":
        return cfg["seed"]
    return choice_label(cfg[axis])
