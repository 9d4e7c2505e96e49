"""Hand-made flat records (the shape `Store.records()` returns) for analysis tests: no database needed."""

from __future__ import annotations

from typing import Any

PGD = {"steps": 10, "rel_step_size": 0.25, "random_start": True}


def rec(
    model: str = "m",
    strategy: str = "full",
    seed: int = 0,
    clean: float = 0.9,
    adv: float = 0.5,
    eps: float = 0.03,
    attack: str = "pgd",
    dataset: str = "digits",
    technique: str = "none",
    n: int = 100,
    **extra: Any,
) -> dict[str, Any]:
    rid = f"{dataset}-{model}-{strategy}-{technique}-{seed}"
    return {
        "run_id": rid,
        "study": "s",
        "dataset": dataset,
        "model": model,
        "strategy": strategy,
        "technique": technique,
        "seed": seed,
        "attack": attack,
        "norm": "linf",
        "steps": 10 if attack == "pgd" else 1,
        "step_size": 0.25 * eps,
        "restarts": 1,
        "random_start": attack == "pgd",
        "eps": eps,
        "clean_acc": clean,
        "adv_acc": adv,
        "n": n,
        "n_clean_correct": round(clean * n),
        "n_adv_correct": round(adv * n),
        "mode": "sweep",
        "precision": "fp32",
        "eval_id": f"{rid}-{attack}",
        "attack_params": PGD if attack == "pgd" else {},
        "strategy_params": {},
        "technique_params": {},
        **extra,
    }


def study(adv: dict[str, list[float]], clean: dict[str, list[float]] | None = None, eps: float = 0.03) -> list[dict]:
    """Records of one model and several strategies: adv[strategy][seed] (and clean likewise, default 0.9)."""
    out = []
    for strat, vals in adv.items():
        for seed, a in enumerate(vals):
            c = (clean or {}).get(strat, [0.9] * len(vals))[seed]
            out.append(rec(strategy=strat, seed=seed, clean=c, adv=a, eps=eps))
    return out
