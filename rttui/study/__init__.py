"""Study files: parse and validate (spec), expand into units of work with stable ids (plan)."""

from rttui.study.plan import EvalPlan, Plan, RunPlan, SourcePlan, config_hash, make_plan
from rttui.study.spec import Block, Choice, Study, check_models, load_study, parse_study

__all__ = [
    "Block",
    "Choice",
    "EvalPlan",
    "Plan",
    "RunPlan",
    "SourcePlan",
    "Study",
    "check_models",
    "config_hash",
    "load_study",
    "make_plan",
    "parse_study",
]
