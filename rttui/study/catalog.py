"""The names users type and the parameters each one takes, with their defaults.

This is the one place that fixes the vocabulary of a study (strategies, techniques, attacks, datasets and the
keys of each section). It imports nothing heavy, so validation and `--help` stay fast; the engine implements
each name and a test checks that both sides agree. Attack names and their help come from the engine's
torch-free `rttui.engine.attacks.names` (the list its attack registry is checked against); the torchattacks
catalogue (`ta:CW`, `ta:Square`, ...) comes from `rttui.engine.attacks.ta_catalogue` and is offered by `attacks()` when
that extra is installed.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from rttui.engine.attacks import audit_settings, ta_catalogue
from rttui.engine.attacks import names as attack_names
from rttui.engine.robustbench_names import DATASETS as RB_DATASETS
from rttui.engine.robustbench_names import THREAT_MODELS as RB_THREAT_MODELS


@dataclass(frozen=True)
class Param:
    """One parameter: its default, the accepted types, an optional range or choice set and a help line."""

    default: Any
    types: tuple[type, ...]
    help: str
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    nullable: bool = False
    # A parameter added after studies were run: left out of the resolved config while it has its default, so
    # the run ids of existing studies (hashes of their configs) do not change.
    omit_default: bool = False
    # (key, value): the parameter only means something when another parameter has that value; otherwise it is
    # left out of the resolved config, so it cannot split identical runs into different ids.
    only_with: tuple[str, Any] | None = None
    # The words a number-or-word parameter (a freeze depth) accepts besides numbers.
    words: tuple[str, ...] = ()
    # Above this a value is almost surely a typo (epochs = 1000000000): refused unless the study sets
    # `allow_large = true` under [study], for whoever means it.
    typo_above: float | None = None
    # `low` itself is refused too (a step size of 0 moves nothing).
    low_open: bool = False


@dataclass(frozen=True)
class Entry:
    """A named thing a study can put on an axis (a strategy, technique or attack)."""

    name: str
    help: str
    params: dict[str, Param] = field(default_factory=dict)
    implemented: bool = True


NUM = (int, float)

# Seeds (run seeds and split_seed) go to numpy's and scikit-learn's seeders, which take 0 .. 2**32 - 1.
MAX_SEED = 2**32 - 1
# Epochs and batch sizes above these, and learning rates above 10, can only be typos for the tasks rttui runs.
MAX_EPOCHS = 10_000
MAX_BATCH = 65_536
MAX_LR = 10

LR: dict[str, Param] = {
    "lr": Param(
        None,
        NUM,
        "learning rate of what this strategy trains besides the head (default: [train] lr)",
        low=0,
        typo_above=MAX_LR,
        nullable=True,
        omit_default=True,
    ),
    "head_lr": Param(
        None,
        NUM,
        "learning rate of the new head (default: [train] head_lr, else the lr)",
        low=0,
        typo_above=MAX_LR,
        nullable=True,
        omit_default=True,
    ),
}

FREEZE = Param(
    "half",
    (int, float, str),
    "groups frozen from the input side: an int, a fraction in (0, 1), 'half' or 'all'",
    low=0,
    words=("half", "all"),
)

LORA: dict[str, Param] = {
    "rank": Param(4, (int,), "LoRA rank", low=1, high=1024),
    "alpha": Param(8, NUM, "LoRA scaling numerator (scale = alpha / rank)", low=0),
    "dropout": Param(0.0, NUM, "dropout on the adapter input", low=0, high=1),
    "targets": Param(
        None,
        (str,),
        "regex over module names to adapt (default: attention qkv/proj, else every ungrouped Conv2d)",
        nullable=True,
    ),
}

STRATEGIES: dict[str, Entry] = {
    e.name: e
    for e in [
        Entry("full", "full fine-tuning: every parameter trains", {**LR}),
        Entry("feature_extraction", "train only the new head; the backbone stays frozen in eval mode", {**LR}),
        Entry(
            "layer_freezing",
            "freeze the first depth groups (timm's group_matcher), train the deeper ones and the head",
            {
                "freeze": Param(
                    "half",
                    (int, float, str),
                    "groups frozen from the input side: an int, a fraction in (0, 1), 'half', 'all' or 'auto' "
                    "(picked from the gradient flow on target data; see auto_share)",
                    low=0,
                    words=("half", "all", "auto"),
                ),
                "auto_share": Param(
                    0.1,
                    NUM,
                    "freeze = 'auto' freezes the longest input-side prefix of groups whose cumulative share of "
                    "the squared gradient norm is at most this",
                    low=0,
                    high=1,
                    omit_default=True,
                    only_with=("freeze", "auto"),
                ),
                **LR,
            },
        ),
        Entry(
            "gradual_unfreezing",
            "the head trains first, then depth groups unfreeze one by one from the output side",
            {
                "every": Param(1, (int,), "epochs between two unfreezing steps", low=1),
                "keep_frozen": Param(
                    0,
                    (int, float, str),
                    "groups from the input side that never unfreeze (like freeze)",
                    low=0,
                    words=("half", "all"),
                ),
                **LR,
            },
        ),
        Entry("adapter", "LoRA adapters (peft) in a frozen backbone; adapters and head train", {**LORA, **LR}),
        Entry(
            "freeze_adapter",
            "layer freezing plus LoRA adapters in the frozen part; deeper groups and head train fully",
            {"freeze": FREEZE, **LORA, **LR},
        ),
    ]
}

ADV: dict[str, Param] = {
    "attack": Param("pgd", (str,), "attack making the training examples", choices=("pgd", "fgsm")),
    "eps": Param(0.03, NUM, "training epsilon in [0, 1] pixel units", low=0, high=1),
    "steps": Param(5, (int,), "PGD iterations", low=1, high=1000),
    "rel_step_size": Param(0.5, NUM, "PGD step size as a fraction of eps", low=0, high=10),
    "random_start": Param(True, (bool,), "random start in the ball (FGSM: fast adversarial training)"),
}

TECHNIQUES: dict[str, Entry] = {
    e.name: e
    for e in [
        Entry("none", "no robustness technique"),
        Entry(
            "adv_pretraining",
            "adversarially train the source model (once per source config and seed), then fine-tune normally",
            {
                **ADV,
                "eps": Param(0.05, NUM, "training epsilon in [0, 1] pixel units", low=0, high=1),
                "checkpoint": Param(
                    None,
                    (str,),
                    "a robust checkpoint (.safetensors or weights-only .pt) used as the source as it is: no source"
                    " training or data",
                    nullable=True,
                ),
            },
        ),
        Entry("bn_freeze", "batch-norm layers stay in eval mode with frozen affine parameters (no-op without BN)"),
        Entry(
            "adv_augmentation",
            "replace a fraction of each fine-tuning batch by adversarial examples",
            {"fraction": Param(0.5, NUM, "fraction of each batch replaced", low=0, high=1), **ADV},
        ),
    ]
}

# Each attack's parameters; the names and help lines come from the engine's torch-free list of attacks, so an
# attack the engine implements is one the catalog offers (a test checks that every name has its parameters).
ATTACK_PARAMS: dict[str, dict[str, Param]] = {
    "fgsm": {"norm": Param("linf", (str,), "threat model", choices=("linf",))},
    "pgd": {
        "norm": Param("linf", (str,), "threat model", choices=("linf", "l2")),
        "steps": Param(10, (int,), "iterations", low=1, high=10_000),
        "step_size": Param(None, NUM, "absolute step size; default rel_step_size * eps", low=0, nullable=True),
        "rel_step_size": Param(0.25, NUM, "step size as a fraction of eps", low=0, high=10),
        "random_start": Param(True, (bool,), "start from a random point in the ball"),
        "restarts": Param(1, (int,), "random restarts (a sample counts as fooled if any is)", low=1, typo_above=1000),
        "warm_start": Param(False, (bool,), "sweep mode: start each eps from the previous eps's adversarial example"),
    },
    "deepfool": {
        "norm": Param("linf", (str,), "threat model", choices=("linf", "l2")),
        "steps": Param(50, (int,), "maximum iterations", low=1, high=10_000),
        "overshoot": Param(0.02, NUM, "overshoot factor of each step", low=0, high=1),
        "candidates": Param(10, (int,), "classes considered (top ones of the clean logits)", low=2),
    },
    "autoattack": {
        "norm": Param("linf", (str,), "threat model", choices=("linf", "l2")),
        "version": Param(
            "standard",
            (str,),
            "the reference's version: standard (APGD-CE, APGD-T, FAB-T, Square; >= 4 classes), plus (adds APGD-DLR"
            " and FAB with 5 restarts; >= 4 classes) or rand (APGD-CE and APGD-DLR with 20 EOT iterations; >= 3)",
            choices=tuple(attack_names.AUTOATTACK_MIN_CLASSES),
        ),
    },
    # The transfer attack: crafted on a surrogate, classified by the run (rttui.engine.attacks.transfer).
    "transfer": {
        "surrogate": Param(
            "source",
            (str,),
            "who crafts: 'source' (the pretrained source model the run was fine-tuned from, no head: feature-space "
            "PGD) or 'sibling' (another fine-tuned run of the study, chosen by `sibling`: PGD on its cross-entropy)",
            choices=("source", "sibling"),
        ),
        "sibling": Param(
            None,
            (dict,),
            "surrogate = 'sibling': the run, by axis (model, strategy, technique, seed); an axis left out is the "
            "target's own; seed = 'other' is the next seed of [study] seeds; {} is the target itself",
            nullable=True,
        ),
        "norm": Param("linf", (str,), "threat model", choices=("linf", "l2")),
        "steps": Param(10, (int,), "iterations on the surrogate", low=1, high=10_000),
        "step_size": Param(None, NUM, "absolute step size; default rel_step_size * eps", low=0, nullable=True),
        "rel_step_size": Param(0.25, NUM, "step size as a fraction of eps", low=0, high=10),
        "random_start": Param(True, (bool,), "start from a random point in the ball (the source attack needs it)"),
        "restarts": Param(
            1, (int,), "random restarts on the surrogate (sibling: the first that fools it is kept)", low=1
        ),
        "warm_start": Param(False, (bool,), "start each eps from the previous eps's crafted example"),
    },
}

ATTACKS: dict[str, Entry] = {
    name: Entry(name, info.help, ATTACK_PARAMS.get(name, {})) for name, info in attack_names.ATTACKS.items()
}


def _ta_param(c: ta_catalogue.TaClass, key: str, default: Any) -> Param:
    """A torchattacks constructor argument as a study parameter: its type from its default (counts are ints,
    other numbers take floats too), non-negative numbers, and the choices rttui knows for strings."""
    if key == "norm":
        return Param(default, (str,), "threat model (the eps-ball)", choices=ta_catalogue.norm_choices(c))
    help = f"torchattacks {c.name}(..., {key}=...)"
    low, high, low_open = ta_catalogue.param_range(c, key) or (0.0, None, False)
    if key == "alpha":
        return Param(
            None,
            NUM,
            "absolute step size (default: rel_alpha * eps)",
            low=low,
            high=high,
            low_open=low_open,
            nullable=True,
        )
    if key == "rel_alpha":
        return Param(default, NUM, "step size as a fraction of eps (torchattacks' own ratio)", low=low, low_open=True)
    if isinstance(default, bool):
        return Param(default, (bool,), help)
    if isinstance(default, int) and key in ta_catalogue.COUNTS:  # steps, eot_iter, ...: 0 would attack nothing
        return Param(default, (int,), help + " (at least 1)", low=1)
    if isinstance(default, int | float):
        return Param(default, NUM, help, low=low, high=high, low_open=low_open)
    return Param(default, (str,), help, choices=c.choices.get(key, ()))


TA_ATTACKS: dict[str, Entry] = {
    name: Entry(
        name,
        f"torchattacks {c.name}: {c.help}",
        {k: _ta_param(c, k, v) for k, v in ta_catalogue.study_params(c).items()},
    )
    for name, c in ta_catalogue.offered().items()
}


def attacks() -> dict[str, Entry]:
    """The attacks a study may name now: rttui's own, plus the torchattacks catalogue when that extra is installed
    (asked each time, so installing it needs no restart of anything that only validates)."""
    return {**ATTACKS, **TA_ATTACKS} if ta_catalogue.installed() else dict(ATTACKS)


ADAPTER_STRATEGIES = ("adapter", "freeze_adapter")
ADAPTERS_INSTALL = "pip install 'rttui[adapters]'"


def strategy_problem(name: str) -> tuple[str, str] | None:
    """Why a listed strategy cannot run here, with the fix, or None: the LoRA strategies need peft (the
    `adapters` extra, kept out of the core install because it brings transformers and accelerate)."""
    import importlib.util

    if name in ADAPTER_STRATEGIES and importlib.util.find_spec("peft") is None:
        return f"{name} needs peft (the adapters extra), which is not installed", ADAPTERS_INSTALL
    return None


def attack_problem(name: str) -> tuple[str, str] | None:
    """Why a study may not name this attack, as (problem, fix); None when it may."""
    if name in ATTACKS:
        return None
    if not name.startswith(ta_catalogue.PREFIX):
        return None if name in attacks() else ("unknown attack", "")  # the caller suggests close names
    cls = name[len(ta_catalogue.PREFIX) :]
    c = ta_catalogue.CLASSES.get(cls)
    if c is None:
        by_lower = {n.lower(): n for n in (x.name for x in ta_catalogue.CLASSES.values() if x.kind != "refused")}
        close = [by_lower[m] for m in difflib.get_close_matches(cls.lower(), list(by_lower), n=3, cutoff=0.5)]
        hint = (
            "did you mean " + " or ".join(repr(ta_catalogue.PREFIX + n) for n in close) + "?"
            if close
            else "choose one of " + ", ".join(TA_ATTACKS)
        )
        return f"unknown torchattacks attack {name!r}", hint
    if c.kind == "refused":
        return f"{name} is not offered: {c.reason}", "remove it from the study"
    if not ta_catalogue.installed():
        return f"{name} needs the torchattacks extra, which is not installed", ta_catalogue.INSTALL
    return None


DATASETS: dict[str, str] = {
    "digits": "scikit-learn's bundled 8x8 handwritten digits (offline; resized, 3 channels)",
    "cifar10": "CIFAR-10, 50k train / 10k test 32x32 in 10 classes (python batches; download = true allowed)",
    "cifar100": "CIFAR-100 (fine labels), 50k train / 10k test 32x32 in 100 classes (python batches)",
    "imagenet_subset": "N ImageNet classes drawn with split_seed (paper: classes = 100, 500 train / 50 val each)",
    "chestxray8": "NIH ChestX-ray8/14, images with exactly one of 14 findings, patient-wise split, gray -> 3 channels",
    "imagefolder": "any ImageFolder tree: root/{train,val}/<class>/<image>, or root/<class>/<image> split here",
    "torchvision:<Name>": "any other torchvision dataset with a train/test split, e.g. torchvision:SVHN",
}

# Where each dataset looks for its files when `root` is not set ($RTTUI_DATA defaults to ./data).
DATASET_FILES: dict[str, str] = {
    "digits": "bundled with scikit-learn (no files)",
    "cifar10": "$RTTUI_DATA/cifar10/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}",
    "cifar100": "$RTTUI_DATA/cifar100/cifar-100-python/{train,test,meta}",
    "imagenet_subset": "$RTTUI_DATA/imagenet/{train,val}/<wnid>/*.JPEG (val sorted into class folders)",
    "chestxray8": "$RTTUI_DATA/chestxray8/Data_Entry_2017.csv + PNGs anywhere below (images_001/images/...)",
    "imagefolder": "$RTTUI_DATA/imagefolder/{train,val}/<class>/* or $RTTUI_DATA/imagefolder/<class>/*",
    "torchvision:<Name>": "$RTTUI_DATA/<Name>/ as torchvision lays it out (download = true fetches it)",
}


# Class counts known without loading the data (the others are known once it is loaded).
DATASET_CLASSES: dict[str, int] = {"digits": 10, "cifar10": 10, "cifar100": 100}


def known_classes(data: dict[str, Any]) -> int | None:
    """How many classes a [source]/[target] section's model will have, when the study alone says so."""
    cls = data.get("classes")
    if isinstance(cls, list):
        return len(cls)
    if isinstance(cls, int) and not isinstance(cls, bool):
        return cls
    return DATASET_CLASSES.get(str(data.get("dataset")))


# Datasets whose loader splits with scikit-learn's stratified split (rttui.engine.data), which needs at least one
# image of each class on both sides; the others draw classes in turn (engine.datasets.common.subsample).
STRATIFIED = frozenset({"digits"})


def stratified(name: str) -> bool:
    """Whether a split of `name` must hold one image of every class (a smoke study's small splits ask)."""
    return name in STRATIFIED


def dataset_known(name: str) -> bool:
    """A registry name, or torchvision:<Name> (checked against torchvision only when loading)."""
    return name in DATASETS or (name.startswith("torchvision:") and len(name) > len("torchvision:"))


# Keys of each section; a value of None means the key is required only where the engine needs it.
DATA_KEYS: dict[str, Param] = {
    "dataset": Param("digits", (str,), "dataset name (see `rttui datasets`)"),
    "classes": Param(
        None,
        (list, int),
        "class subset (indices or names), relabelled 0..k-1; an int N draws N classes with split_seed",
        nullable=True,
    ),
    "train_size": Param(None, (int,), "cap on training images", low=1, nullable=True),
    "test_size": Param(300, (int,), "cap on test images", low=1),
    "train_per_class": Param(None, (int,), "cap on training images per class", low=1, nullable=True),
    "test_per_class": Param(None, (int,), "cap on test images per class", low=1, nullable=True),
    "no_finding": Param(False, (bool,), "chestxray8: also keep 'No Finding' images as a class"),
    "root": Param(None, (str,), "folder holding the dataset's files", nullable=True),
    "download": Param(False, (bool,), "allow torchvision to download the dataset"),
    "split_seed": Param(0, (int,), "seed of the fixed train/test split (not the run seed)", low=0, high=MAX_SEED),
}

TARGET_KEYS: dict[str, Param] = {
    **DATA_KEYS,
    "image_size": Param(32, (int,), "side of the square images the model sees", low=8, high=1024),
    "val_size": Param(
        None,
        NUM,
        "validation images carved from the training split (a count, or a fraction in (0, 1)); never from the test "
        "set; absent: no validation",
        low=0,
        nullable=True,
    ),
    "val_seed": Param(0, (int,), "seed of the validation split (its own, not split_seed's)", low=0, high=MAX_SEED),
}

SOURCE_KEYS: dict[str, Param] = {
    **DATA_KEYS,
    "pretrained": Param(False, (bool,), "start from timm's pretrained weights"),
    "epochs": Param(
        8, (int,), "source pretraining epochs (0: use the weights as they are)", low=0, typo_above=MAX_EPOCHS
    ),
    "lr": Param(1e-3, NUM, "source learning rate", low=0, typo_above=MAX_LR),
    "batch_size": Param(32, (int,), "source batch size", low=1, typo_above=MAX_BATCH),
    "optimizer": Param("adam", (str,), "optimizer", choices=("adam", "adamw", "sgd")),
    "weight_decay": Param(0.0, NUM, "weight decay", low=0),
    "checkpoint": Param(
        None, (str,), "local weights (.safetensors, or a PyTorch state dict) instead of timm's", nullable=True
    ),
    "mean": Param(
        None, (list,), "per-channel mean the weights expect (default: the model's pretrained cfg)", nullable=True
    ),
    "std": Param(
        None, (list,), "per-channel std the weights expect (default: the model's pretrained cfg)", nullable=True
    ),
    "kind": Param(
        "timm",
        (str,),
        "where the models come from: 'timm', or 'robustbench' (the grid's models are Model IDs of RobustBench's "
        "zoo for this dataset, their weights read from model_dir and used as the source as they are)",
        choices=("timm", "robustbench"),
    ),
    "threat_model": Param(
        "Linf", (str,), "kind = 'robustbench': the zoo's threat model (Linf, L2, corruptions)", choices=RB_THREAT_MODELS
    ),
    "model_dir": Param(
        None,
        (str,),
        "kind = 'robustbench': RobustBench's model folder, holding DATASET/THREAT_MODEL/NAME.pt (default: models)",
        nullable=True,
    ),
}

SELECT_CHOICES = ("last", "best_clean", "best_robust")

# `[train.probe]`: the per-epoch validation probe. Its eps and norm default to the study's grid (see
# rttui.study.spec); the rest is cheap by design (a few PGD steps on a fixed subset of the validation split).
PROBE_KEYS: dict[str, Param] = {
    "enabled": Param(True, (bool,), "false: no per-epoch validation even with a validation split"),
    "attack": Param("pgd", (str,), "probe attack", choices=("pgd", "fgsm")),
    "steps": Param(3, (int,), "PGD iterations of the probe", low=1, high=1000),
    "rel_step_size": Param(
        None, NUM, "step size as a fraction of eps (default 2.5 / steps)", low=0, high=10, nullable=True
    ),
    "eps": Param(None, (list,), "probe epsilons in [0, 1] pixel units (default: the grid's report eps)", nullable=True),
    "norm": Param(None, (str,), "threat model (default: the grid's PGD norm)", choices=("linf", "l2"), nullable=True),
    "images": Param(
        None,
        (int,),
        "validation images the probe attacks, the first of the seeded split (default: 2% of the training images, "
        "16 to 512)",
        low=1,
        nullable=True,
    ),
    "seed": Param(0, (int,), "seed of the probe's random starts (the same every epoch)", low=0, high=MAX_SEED),
}

TRAIN_KEYS: dict[str, Param] = {
    "optimizer": Param("adam", (str,), "optimizer", choices=("adam", "adamw", "sgd")),
    "lr": Param(1e-4, NUM, "learning rate (paper: 1e-4)", low=0, typo_above=MAX_LR),
    "batch_size": Param(32, (int,), "batch size (paper: 32)", low=1, typo_above=MAX_BATCH),
    "epochs": Param(5, (int,), "fine-tuning epochs", low=0, typo_above=MAX_EPOCHS),
    "weight_decay": Param(0.0, NUM, "weight decay", low=0),
    "head_lr": Param(None, NUM, "learning rate of the new head (default: lr)", low=0, nullable=True, typo_above=MAX_LR),
    "select": Param(
        "last",
        (str,),
        "the epoch whose weights are kept and attacked: 'last' (the paper's protocol), or the best on the "
        "validation split by clean ('best_clean') or probe-robust ('best_robust') accuracy (needs [target] val_size)",
        choices=SELECT_CHOICES,
    ),
    "probe": Param(
        None,
        (dict,),
        "per-epoch validation: clean accuracy and robust accuracy under a cheap attack on fixed validation images "
        "(needs [target] val_size); keys: " + ", ".join(f"{k} ({p.help})" for k, p in PROBE_KEYS.items()),
        nullable=True,
    ),
}

EVAL_KEYS: dict[str, Param] = {
    "epsilons": Param(
        [0.01, 0.03, 0.05, 0.07, 0.09], (list,), "epsilon grid in [0, 1] pixel units (paper: 0.01..0.09)"
    ),
    "batch_size": Param(250, (int,), "evaluation batch size", low=1, typo_above=MAX_BATCH),
    "mode": Param(
        "sweep",
        (str,),
        "'sweep' attacks only still-robust samples; 'independent' each eps anew",
        choices=("sweep", "independent"),
    ),
    "report_eps": Param(
        None,
        NUM,
        "epsilon of the robustness-drop column (default: 0.03 if evaluated, else the middle of the grid)",
        low=0,
        high=1,
        nullable=True,
    ),
    "headline": Param(
        None,
        (str,),
        "the attack tables show unless told otherwise (default: pgd if evaluated): an attack of the study, or "
        "'worst_case' (per test image, the worst over every attack and each one's audit: the number a reviewer "
        "accepts)",
        nullable=True,
    ),
    "precision": Param(
        "fp32",
        (str,),
        "'bf16' autocast on CUDA (fp32 elsewhere); use only where benchmarks/run.py shows equal accuracy",
        choices=("fp32", "bf16"),
    ),
    "compile": Param(False, (bool,), "torch.compile the model for attacks (pays off on GPUs and large grids)"),
    "labels": Param(
        "true",
        (str,),
        "'true' attacks clean-correct images away from their label; 'predicted' attacks every image away from the "
        "model's own prediction (adv_acc is then the share of predictions an attack cannot change; smoke runs use "
        "it so every attack runs even on an untrained model)",
        choices=("true", "predicted"),
    ),
    "audit": Param(
        None,
        (dict,),
        "attack-strength audit of FGSM/PGD/DeepFool and ta: ball attacks (on by default): each eps's survivors "
        "re-attacked by the reference APGD-CE; keys: " + ", ".join(audit_settings.DEFAULTS),
        nullable=True,
    ),
}

MODEL_KEYS: dict[str, Param] = {
    "pretrained": Param(None, (bool,), "override [source] pretrained for this model", nullable=True),
    "kwargs": Param({}, (dict,), "extra keyword arguments for timm.create_model"),
    "checkpoint": Param(None, (str,), "local weights for this model (overrides [source] checkpoint)", nullable=True),
    "mean": Param(None, (list,), "per-channel mean for this model's weights", nullable=True),
    "std": Param(None, (list,), "per-channel std for this model's weights", nullable=True),
    "kind": Param(
        None,
        (str,),
        "'timm' or 'robustbench' (the name is a Model ID of RobustBench's zoo); default: [source] kind",
        choices=("timm", "robustbench"),
        nullable=True,
    ),
    "dataset": Param(
        None,
        (str,),
        "kind = 'robustbench': the zoo's dataset (default: [source] dataset's)",
        choices=RB_DATASETS,
        nullable=True,
    ),
    "threat_model": Param(
        None,
        (str,),
        "kind = 'robustbench': the zoo's threat model (default: [source] threat_model)",
        choices=RB_THREAT_MODELS,
        nullable=True,
    ),
    "model_dir": Param(
        None, (str,), "kind = 'robustbench': RobustBench's model folder (default: [source] model_dir)", nullable=True
    ),
}

# How a study runs (the `[run]` table; the command line overrides it). Execution only: none of it is part of a
# run's config, so it never changes a run id.
RUN_KEYS: dict[str, Param] = {
    "executor": Param(
        None,
        (str,),
        "where units run when --executor is not given: local, ray or slurm",
        choices=("local", "ray", "slurm"),
        nullable=True,
    ),
}

# `[track]`: push each run to an experiment tracker as it is stored (the same push as `rttui export --to`).
# Execution only, like `[run]`: never part of a run's config, so it never changes a run id.
TRACK_KEYS: dict[str, Param] = {
    "to": Param(None, (str,), "the tracker: mlflow or wandb", choices=("mlflow", "wandb"), nullable=True),
    "tracking_uri": Param(
        None, (str,), "mlflow: the tracking URI (default $MLFLOW_TRACKING_URI), e.g. sqlite:///mlflow.db", nullable=True
    ),
    "experiment": Param(None, (str,), "mlflow: the experiment (default: the study's name)", nullable=True),
    "project": Param(None, (str,), "wandb: the project (default: rttui)", nullable=True),
    "mode": Param(
        None,
        (str,),
        "wandb: online or offline (default $WANDB_MODE, else online)",
        choices=("online", "offline"),
        nullable=True,
    ),
}
TRACKER_SETTINGS = {"mlflow": ("tracking_uri", "experiment"), "wandb": ("project", "mode")}


def tracker_problem(name: str) -> tuple[str, str] | None:
    """Why `[track] to = NAME` cannot run here, with the fix: its package (the extra of that name) is missing."""
    import importlib.util

    if importlib.util.find_spec(name) is None:
        return f"{name} is not installed (the {name} extra)", f"pip install 'rttui[{name}]'"
    return None


# `[run.slurm]` (or `--slurm KEY=VALUE`): the SLURM executor's job options (submitit).
SLURM_KEYS: dict[str, Param] = {
    "partition": Param(None, (str,), "partition (sbatch --partition)", nullable=True),
    "time": Param(60, (int, str), "time limit per unit: minutes, or 'HH:MM:SS' / 'D-HH:MM:SS' (sbatch --time)"),
    "gpus_per_task": Param(0, (int,), "GPUs per unit (sbatch --gpus-per-task)", low=0, high=64),
    "cpus_per_task": Param(1, (int,), "CPU cores per unit, also its torch threads (sbatch --cpus-per-task)", low=1),
    "mem_gb": Param(None, NUM, "memory per unit in GB (sbatch --mem)", low=0, nullable=True),
    "account": Param(None, (str,), "account charged (sbatch --account)", nullable=True),
    "sbatch": Param({}, (dict,), "extra sbatch options, e.g. { qos = 'high', constraint = 'a100' }"),
    "setup": Param([], (list,), "shell lines run before each unit, e.g. ['module load cuda']"),
    "max_jobs": Param(
        None, (int,), "units queued or running at once (default: every ready unit)", low=1, nullable=True
    ),
    "array_parallelism": Param(256, (int,), "jobs of one array running at once (sbatch --array=...%N)", low=1),
    "probe_timeout": Param(
        600, NUM, "seconds to wait for the start-up probe job (checks the shared filesystem)", low=1
    ),
    "folder": Param(None, (str,), "submitit's job folder (default: <db stem>.artifacts/slurm)", nullable=True),
    "cluster": Param(
        "slurm",
        (str,),
        "'slurm' (sbatch), or 'local': submitit's local executor, the same path without sbatch (tests, one machine)",
        choices=("slurm", "local"),
    ),
}


# `[study]`: what a study is called and which seeds it runs.
STUDY_KEYS: dict[str, Param] = {
    "name": Param(None, (str,), "the study's name: results are kept apart per name (required; no / or \\)"),
    "description": Param("", (str,), "one line shown by `rttui status` and the app"),
    "seeds": Param([0, 1, 2], (list,), "run seeds, integers in 0..2**32-1: every configuration runs once per seed"),
    "allow_large": Param(
        False, (bool,), "lift the typo bounds (epochs > 10000, batch sizes > 65536, lr > 10, restarts > 1000)"
    ),
    "smoke": Param(
        False, (bool,), "set by `rttui run --smoke` on the study it derives: splits may be below the class count"
    ),
}

# `[[grid]]`: one block of the study's cross product; each block may override any section for its runs.
BLOCK_KEYS: dict[str, Param] = {
    "name": Param(None, (str,), "the block's name in messages (default: grid[i])", nullable=True),
    "models": Param(None, (list,), "timm model names (required), each optionally configured under [models.NAME]"),
    "strategies": Param(
        None,
        (list,),
        "fine-tuning strategies (required unless freeze_depths is given), configured under [strategies.NAME]",
        nullable=True,
    ),
    "techniques": Param(["none"], (list,), "robustness techniques, configured under [techniques.NAME]"),
    "attacks": Param(
        None,
        (list,),
        "attacks of this block (default: every [attacks.NAME] table; with none, fgsm and pgd)",
        nullable=True,
    ),
    "freeze_depths": Param(
        None,
        (list,),
        "a freeze-depth sweep: one layer_freezing run per depth (ints, fractions, 'half', 'all'), added to strategies",
        nullable=True,
    ),
    **{
        sec: Param(None, (dict,), f"override [{sec}] for this block's runs", nullable=True)
        for sec in ("source", "target", "train", "eval")
    },
}

# `[eval.audit]`: the attack-strength audit's keys, from the engine's torch-free settings module.
AUDIT_KEYS: dict[str, Param] = {
    k: Param(
        v,
        (bool,) if k in audit_settings.BOOLS else (int,) if k in audit_settings.INTS else NUM,
        audit_settings.HELP[k],
        low=None if k in audit_settings.BOOLS else 1 if k in audit_settings.INTS else 0,
        high=1 if k == "fraction" else None,
    )
    for k, v in audit_settings.DEFAULTS.items()
}


@dataclass(frozen=True)
class Section:
    """A table of a study file: its TOML header, what it is for and its keys (the reference docs list these)."""

    header: str
    help: str
    keys: dict[str, Param]


# Every table a study file may hold, in the order a study reads best. `[attacks.NAME]`, `[strategies.NAME]` and
# `[techniques.NAME]` take the parameters of their registry entry (the registries reference lists them).
SECTIONS: tuple[Section, ...] = (
    Section("[study]", "the study's name and seeds", STUDY_KEYS),
    Section("[source]", "the source task: pretraining, once per (model, seed), reused by every strategy", SOURCE_KEYS),
    Section("[target]", "the target task the models transfer to; its test split is what attacks measure", TARGET_KEYS),
    Section("[train]", "fine-tuning on the target task", TRAIN_KEYS),
    Section("[train.probe]", "per-epoch validation: clean and robust accuracy on fixed validation images", PROBE_KEYS),
    Section("[eval]", "the attacks' epsilon grid and how evaluations run and read", EVAL_KEYS),
    Section("[eval.audit]", "the attack-strength audit (on by default)", AUDIT_KEYS),
    Section("[models.NAME]", "one timm model's options (NAME as in a block's models)", MODEL_KEYS),
    Section("[[grid]]", "the blocks whose cross product makes the study's runs", BLOCK_KEYS),
    Section("[run]", "how the study runs (execution only: never part of a run id)", RUN_KEYS),
    Section("[run.slurm]", "the SLURM executor's job options (submitit); also `--slurm KEY=VALUE`", SLURM_KEYS),
    Section(
        "[track]", "push each run to MLflow or W&B as it is stored (execution only: never part of a run id)", TRACK_KEYS
    ),
)


# ---- the catalog as plain data, for faces that build pickers from it --------------------------------------
def params_data(params: dict[str, Param]) -> dict[str, dict[str, Any]]:
    """Parameters as plain dicts (default, type names, help, choices, range, nullable)."""
    return {
        k: {
            "default": p.default,
            "types": [t.__name__ for t in p.types],
            "help": p.help,
            "choices": list(p.choices),
            "low": p.low,
            "high": p.high,
            "nullable": p.nullable,
        }
        for k, p in params.items()
    }


def entries_data(registry: dict[str, Entry]) -> list[dict[str, Any]]:
    """An axis's entries as plain dicts (name, help, implemented, params), in catalog order."""
    return [
        {"name": e.name, "help": e.help, "implemented": e.implemented, "params": params_data(e.params)}
        for e in registry.values()
    ]


def datasets_data() -> list[dict[str, str]]:
    """The dataset names a study can use, what each is and where it looks for its files."""
    return [{"name": n, "help": h, "files": DATASET_FILES.get(n, "")} for n, h in DATASETS.items()]


def as_data() -> dict[str, Any]:
    """The whole study vocabulary as plain data: a strategy or attack added here shows up in every face."""
    return {
        "strategies": entries_data(STRATEGIES),
        "techniques": entries_data(TECHNIQUES),
        "attacks": entries_data(attacks()),
        "datasets": [{"name": k, "help": v} for k, v in DATASETS.items()],
        "sections": {
            "source": params_data(SOURCE_KEYS),
            "target": params_data(TARGET_KEYS),
            "train": params_data(TRAIN_KEYS),
            "eval": params_data(EVAL_KEYS),
        },
    }
