"""Expand a study into units of work with stable ids.

- A *source* is the pretrained model a target run starts from: one per (model, source config, source
  technique, seed). It is trained once and shared by every run that needs it.
- A *run* is one cell (source, target, model, strategy, technique, seed) plus the training config.
- An *evaluation* is one attack (with its parameters) over the epsilon grid on a run's model.

Ids are hashes of the resolved config (never of the study name or file path), so re-running a study skips
finished work, an edited study adds only the changed cells, and adding an attack attacks stored models.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from rttui.engine.attacks import audit_settings
from rttui.study.spec import Block, Choice, Study, robustbench_model

# Bump when the meaning of a config changes in a way that makes old results incomparable.
CONFIG_VERSION = 1

# Attacks whose algorithm changed after results were stored with it: the revision joins the evaluation's
# parameters (so its identity), so a stored result of the old algorithm is recomputed, never taken for the new
# one's, and a table that holds both says "mixed attack parameters".
# deepfool 2: overshoot on the total perturbation and box-aware L2 steps (was torchattacks' per-step overshoot).
# deepfool 3: per sample the smaller of Foolbox's exact step and the box-aware one (was box-aware only, 2.4% larger
# minimal perturbations than Foolbox's in median).
# autoattack 2: the authors' reference code (pyautoattack) at its budgets (was torchattacks' 10-iteration variant).
ATTACK_REVISIONS = {"deepfool": 3, "autoattack": 2}

WEIGHT_KEYS = ("checkpoint", "mean", "std")
# Data keys added after the first release: left out of the hashed config while at their defaults, so the
# ids of existing studies stay as they were.
OPTIONAL_DATA_DEFAULTS: dict[str, Any] = {
    "train_per_class": None,
    "test_per_class": None,
    "no_finding": False,
    "val_size": None,
    "val_seed": 0,
}
# Training keys added after the first release, likewise left out while at their defaults (None values are dropped
# by `_set`): `select = "last"` is the paper's protocol, and a probe exists only with a validation split.
OPTIONAL_TRAIN_DEFAULTS: dict[str, Any] = {"select": "last"}


def _stable(data: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in data.items() if not (k in OPTIONAL_DATA_DEFAULTS and v == OPTIONAL_DATA_DEFAULTS[k])}
    if out.get("val_size") is None:  # a validation seed means nothing without a validation split
        out.pop("val_seed", None)
    return out


def _train(train: dict[str, Any]) -> dict[str, Any]:
    """The hashed training config: unset values and later keys at their defaults left out (ids stay stable)."""
    return {
        k: v
        for k, v in _set(dict(train)).items()
        if not (k in OPTIONAL_TRAIN_DEFAULTS and v == OPTIONAL_TRAIN_DEFAULTS[k])
    }


# `kind`, `threat_model` and `model_dir` (RobustBench sources) join the config as the model's `robustbench` and the
# weights' `model_dir`, only for a RobustBench model: every other source keeps its id.
SOURCE_ONLY_KEYS = {
    "pretrained",
    "epochs",
    "lr",
    "batch_size",
    "optimizer",
    "weight_decay",
    "kind",
    "threat_model",
    "model_dir",
    *WEIGHT_KEYS,
}


def config_hash(config: dict[str, Any], length: int = 12) -> str:
    """A stable short hash of a JSON-able config (key order and float spelling do not matter)."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


@dataclass(frozen=True)
class SourcePlan:
    id: str
    config: dict[str, Any]


@dataclass(frozen=True)
class EvalPlan:
    """One attack over the epsilon grid on one run's model, with every setting the engine needs.

    `config` is what the id hashes (and what the store keeps); the typed fields are read from it when the plan
    is made, so no caller digs settings out of a dict.
    """

    id: str
    run_id: str
    attack: str
    params: dict[str, Any]
    epsilons: tuple[float, ...]
    config: dict[str, Any]
    mode: str = "sweep"  # sweep | independent
    batch_size: int = 250
    precision: str = "fp32"  # fp32 | bf16 (autocast on CUDA only)
    compile: bool = False  # torch.compile the model for the attack
    # The unit a transfer attack crafts on: ("source", source id) or ("run", run id); it must be trained before
    # this evaluation runs (the scheduler waits for a sibling run). None for every other attack.
    surrogate: tuple[str, str] | None = None
    # The attack-strength audit's resolved settings (rttui.engine.attacks.audit_settings), None when this evaluation is
    # not audited. Not part of `config`: auditing never changes an evaluation's id; the audit is stored beside it.
    audit: dict[str, Any] | None = None


@dataclass(frozen=True)
class RunPlan:
    id: str
    source_id: str
    config: dict[str, Any]
    evals: tuple[EvalPlan, ...]

    @property
    def label(self) -> str:
        c = self.config
        return (
            f"{c['target']['dataset']}/{c['model']['name']}/{c['strategy']['name']}/"
            f"{c['technique']['name']}/s{c['seed']}"
        )


@dataclass(frozen=True)
class Plan:
    study: Study
    sources: dict[str, SourcePlan]
    runs: tuple[RunPlan, ...]

    @property
    def evals(self) -> list[EvalPlan]:
        return [ep for r in self.runs for ep in r.evals]

    def size(self) -> dict[str, Any]:
        """How big the study is, for a face to show while it is edited: units of work and a rough cost.

        The cost is counted in work, not seconds (seconds depend on the machine): training epochs, and attack
        gradient steps per test image summed over every evaluation and epsilon.
        """
        src_epochs = sum(int(sp.config["train"]["epochs"]) for sp in self.sources.values())
        run_epochs = sum(int(rp.config["train"]["epochs"]) for rp in self.runs)
        steps = 0
        audit = 0.0
        for ep in self.evals:
            per_eps = int(ep.params.get("steps") or 1) * int(ep.params.get("restarts") or 1)
            steps += per_eps * len(ep.epsilons)
            if ep.audit is not None:  # worst case: `fraction` of the test set survives and is re-attacked
                share = float(ep.audit["fraction"])
                audit += audit_settings.cost_per_image(ep.attack, ep.params, ep.audit) * share * len(ep.epsilons)
        return {
            "sources": len(self.sources),
            "runs": len(self.runs),
            "evaluations": len(self.evals),
            "train_epochs": src_epochs + run_epochs,
            "attack_steps_per_image": steps,
            # the audit's gradient steps per test image, worst case (every image survives; see eval.audit)
            "audit_steps_per_image": round(audit),
            "models": sorted({m.name for b in self.study.blocks for m in b.models}),
        }


def _audit(attack: str, settings: dict[str, Any] | None) -> dict[str, Any] | None:
    """The resolved audit settings of an evaluation of `attack`, or None when it is not audited."""
    s = audit_settings.resolve(settings)
    return s if s["enabled"] and audit_settings.audited(attack) else None


def _set(d: dict[str, Any]) -> dict[str, Any]:
    """Drop unset optional values: a parameter added to the catalog later keeps the ids of older runs."""
    return {k: v for k, v in d.items() if v is not None}


def _choice(c: dict[str, Any]) -> dict[str, Any]:
    return {"name": c["name"], "params": _set(c["params"])}


def _source_config(
    block_source: dict[str, Any], model: dict[str, Any], technique: dict[str, Any], image_size: int, seed: int
) -> dict[str, Any]:
    src = dict(block_source)
    pretrained = model["params"].get("pretrained")
    if pretrained is not None:
        src["pretrained"] = pretrained
    adversarial = _set(technique["params"]) if technique["name"] == "adv_pretraining" else None
    # Local weights: [models.NAME] overrides [source]; kept out of the config unless set, so the ids of
    # studies that use none stay as they were.
    weights = {k: model["params"].get(k) or src.get(k) for k in WEIGHT_KEYS}
    weights = {k: v for k, v in weights.items() if v}
    model_cfg: dict[str, Any] = {"name": model["name"], "kwargs": model["params"].get("kwargs", {})}
    rb = robustbench_model(block_source, model["params"])
    if rb is not None:
        # RobustBench's weights are the source as they are: no source data, training or timm weights.
        model_cfg["robustbench"] = {"dataset": rb["dataset"], "threat_model": rb["threat_model"]}
        weights["model_dir"] = rb["model_dir"]
    cfg = {
        "version": CONFIG_VERSION,
        "data": _stable({k: v for k, v in src.items() if k not in SOURCE_ONLY_KEYS}),
        "pretrained": src["pretrained"],
        "train": {k: src[k] for k in ("epochs", "lr", "batch_size", "optimizer", "weight_decay")},
        "model": model_cfg,
        "image_size": image_size,
        "adversarial": adversarial,
        "seed": seed,
    }
    if rb is not None:
        cfg["pretrained"], cfg["train"] = False, {**cfg["train"], "epochs": 0}
    if weights:
        cfg["weights"] = weights
    return cfg


def make_plan(study: Study) -> Plan:
    """Expand every block into sources, runs and evaluations; duplicates across blocks collapse."""
    sources: dict[str, SourcePlan] = {}
    runs: dict[str, RunPlan] = {}
    pending: list[tuple[str, str, Block, Choice]] = []
    for block in study.blocks:
        for model in block.models:
            m = model.as_dict()
            for strategy in block.strategies:
                for technique in block.techniques:
                    t = _choice(technique.as_dict())
                    for seed in study.seeds:
                        scfg = _source_config(block.source, m, t, block.target["image_size"], seed)
                        sid = config_hash(scfg)
                        sources.setdefault(sid, SourcePlan(sid, scfg))
                        rcfg = {
                            "version": CONFIG_VERSION,
                            "source_id": sid,
                            "target": _stable(dict(block.target)),
                            "model": scfg["model"],
                            "strategy": _choice(strategy.as_dict()),
                            "technique": t,
                            "train": _train(block.train),
                            "seed": seed,
                        }
                        rid = config_hash(rcfg)
                        evals = []
                        for attack in block.attacks:
                            if attack.name == "transfer":  # its surrogate may be a run not expanded yet
                                pending.append((rid, sid, block, attack))
                                continue
                            params = dict(attack.params)
                            if attack.name in ATTACK_REVISIONS:
                                params["revision"] = ATTACK_REVISIONS[attack.name]
                            ecfg = {
                                "run_id": rid,
                                "attack": attack.name,
                                "params": params,
                                "epsilons": list(block.eval["epsilons"]),
                                "mode": block.eval["mode"],
                                "batch_size": block.eval["batch_size"],
                            }
                            # Options that may change an answer (speed paths, the labels attacked) join the identity
                            # only when not default, so evaluations stored before they existed keep their ids.
                            for key, default in (("precision", "fp32"), ("compile", False), ("labels", "true")):
                                if block.eval.get(key, default) != default:
                                    ecfg[key] = block.eval[key]
                            evals.append(
                                EvalPlan(
                                    id=config_hash(ecfg),
                                    run_id=rid,
                                    attack=attack.name,
                                    params=dict(params),
                                    epsilons=tuple(block.eval["epsilons"]),
                                    config=ecfg,
                                    mode=block.eval["mode"],
                                    batch_size=int(block.eval["batch_size"]),
                                    precision=block.eval.get("precision", "fp32"),
                                    compile=bool(block.eval.get("compile", False)),
                                    audit=_audit(attack.name, block.eval.get("audit")),
                                )
                            )
                        if rid in runs:
                            # Same cell in two blocks: union of their evaluations.
                            have = {ep.id for ep in runs[rid].evals}
                            evals = list(runs[rid].evals) + [ep for ep in evals if ep.id not in have]
                        runs[rid] = RunPlan(rid, sid, rcfg, tuple(evals))
    for rid, sid, block, attack in pending:
        ep = _transfer_eval(study, block, attack, runs[rid], sid, runs)
        if ep.id not in {other.id for other in runs[rid].evals}:
            runs[rid] = RunPlan(rid, sid, runs[rid].config, (*runs[rid].evals, ep))
    return Plan(study, sources, tuple(runs.values()))


def _transfer_eval(
    study: Study, block: Block, attack: Choice, rp: RunPlan, sid: str, runs: dict[str, RunPlan]
) -> EvalPlan:
    """A transfer evaluation of run `rp`: its surrogate unit (the run's source, or the sibling run the selector
    picks) joins the evaluation's identity, so a retrained surrogate is a new evaluation."""
    from rttui.study.transfer import resolve_sibling

    params = dict(attack.params)
    if params.get("surrogate") == "sibling":
        where = f"{study.path or study.name}: grid[{block.index}].attacks (transfer)"
        configs = {r: p.config for r, p in runs.items()}
        surrogate = ("run", resolve_sibling(where, rp.id, rp.config, params.get("sibling") or {}, configs, study.seeds))
    else:
        surrogate = ("source", sid)
    ecfg = {
        "run_id": rp.id,
        "attack": attack.name,
        "params": params,
        "epsilons": list(block.eval["epsilons"]),
        "mode": block.eval["mode"],
        "batch_size": block.eval["batch_size"],
        "surrogate": list(surrogate),
    }
    for key, default in (("precision", "fp32"), ("compile", False)):
        if block.eval.get(key, default) != default:
            ecfg[key] = block.eval[key]
    return EvalPlan(
        id=config_hash(ecfg),
        run_id=rp.id,
        attack=attack.name,
        params=params,
        epsilons=tuple(block.eval["epsilons"]),
        config=ecfg,
        mode=block.eval["mode"],
        batch_size=int(block.eval["batch_size"]),
        precision=block.eval.get("precision", "fp32"),
        compile=bool(block.eval.get("compile", False)),
        surrogate=surrogate,
    )
