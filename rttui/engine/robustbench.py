"""RobustBench's model zoo as rttui models: its architectures, its on-disk checkpoints, its published numbers.

A RobustBench model is named by (name, dataset, threat model) and its weights lie in RobustBench's own layout,
`{model_dir}/{dataset}/{threat_model}/{name}.pt`. rttui builds the architecture from the installed `robustbench`
package's zoo, reads the file with `torch.load(weights_only=True)` (tensors and plain containers only, never
arbitrary pickle) and unwraps it exactly as `robustbench.utils.load_model` does, so the logits are the package's.
It never downloads: a missing file is an error naming the path it expects.

Never imports `robustbench/__init__.py`: that runs the package's data loaders (`pkg_resources`, gone from
setuptools >= 81, which torch 2.14 requires), its evaluation and `gdown`; only `robustbench.model_zoo` is
imported. Never imports the UI.
"""

from __future__ import annotations

import difflib
import re
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rttui.engine.robustbench_names import DATASETS, THREAT_MODELS
from rttui.errors import CheckpointError

INSTALL = (
    "install it with `pip install -e '.[robustbench]' && pip install --no-deps robustbench==1.1.1` "
    "(docs/how-to/robustbench.md says why --no-deps)"
)
# ImageNet entries whose checkpoint robustbench loads without the `model.` prefix (utils.load_model, 1.1.1).
_IMAGENET_NO_PREFIX = {
    "Singh2023Revisiting_ConvNeXt-T-ConvStem",
    "Singh2023Revisiting_ViT-B-ConvStem",
    "Singh2023Revisiting_ConvNeXt-S-ConvStem",
    "Singh2023Revisiting_ConvNeXt-B-ConvStem",
    "Singh2023Revisiting_ConvNeXt-L-ConvStem",
    "Peng2023Robust",
    "Chen2024Data_WRN_50_2",
    "Xu2024MIMIR_Swin-B",
    "Xu2024MIMIR_Swin-L",
}
# Entries robustbench loads with strict=False when one of these keys is the only mismatch (_safe_load_state_dict).
_KNOWN_FAILING = {
    "Andriushchenko2020Understanding",
    "Augustin2020Adversarial",
    "Engstrom2019Robustness",
    "Pang2020Boosting",
    "Rice2020Overfitting",
    "Rony2019Decoupling",
    "Wong2020Fast",
    "Hendrycks2020AugMix_WRN",
    "Hendrycks2020AugMix_ResNeXt",
    "Kireev2021Effectiveness_Gauss50percent",
    "Kireev2021Effectiveness_AugMixNoJSD",
    "Kireev2021Effectiveness_RLAT",
    "Kireev2021Effectiveness_RLATAugMixNoJSD",
    "Kireev2021Effectiveness_RLATAugMix",
    "Chen2020Efficient",
    "Wu2020Adversarial",
    "Augustin2020Adversarial_34_10",
    "Augustin2020Adversarial_34_10_extra",
    "Diffenderfer2021Winning_LRR",
    "Diffenderfer2021Winning_LRR_CARD_Deck",
    "Diffenderfer2021Winning_Binary",
    "Diffenderfer2021Winning_Binary_CARD_Deck",
    "Huang2022Revisiting_WRN-A4",
    "Bai2024MixedNUTS",
}
_TOLERATED = (
    'Missing key(s) in state_dict: "mu", "sigma".',
    'Unexpected key(s) in state_dict: "model_preact_hl1.1.weight"',
    'Missing key(s) in state_dict: "normalize.mean", "normalize.std"',
    'Unexpected key(s) in state_dict: "conv1.scores"',
    'Missing key(s) in state_dict: "mean", "std".',
)


def _zoo_module() -> Any:
    """`robustbench.model_zoo`, imported without running the package's `__init__` (see the module doc)."""
    import importlib
    import importlib.util
    import warnings

    if "robustbench" not in sys.modules:
        spec = importlib.util.find_spec("robustbench")
        if spec is None:
            raise CheckpointError(f"RobustBench models need the robustbench package, which is not installed; {INSTALL}")
        # The package as an empty namespace: its submodules import as usual, its __init__ never runs. A later
        # `import robustbench` in this process gets this module (use `robustbench.utils` by its full name).
        sys.modules["robustbench"] = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():
        # the zoo imports timm's deprecated paths and re-registers timm names: noise on every command
        warnings.simplefilter("ignore")
        try:
            return importlib.import_module("robustbench.model_zoo")
        except ImportError as exc:
            raise CheckpointError(f"robustbench's model zoo cannot be imported ({exc}); {INSTALL}") from None


def _enums() -> tuple[Any, Any]:
    _zoo_module()
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    return BenchmarkDataset, ThreatModel


def zoo_names(dataset: str, threat_model: str) -> list[str]:
    """The model names the installed zoo holds for a dataset and threat model."""
    zoo = _zoo_module()
    bd, tm = _enums()
    return list(zoo.model_dicts[bd(dataset)][tm(threat_model)])


def _entry(name: str, dataset: str, threat_model: str) -> dict[str, Any]:
    if dataset not in DATASETS:
        raise CheckpointError(f"RobustBench has no dataset {dataset!r}; use one of {', '.join(DATASETS)}")
    if threat_model not in THREAT_MODELS or (dataset == "imagenet" and threat_model == "L2"):
        raise CheckpointError(
            f"RobustBench has no {dataset} models for threat model {threat_model!r}; use Linf, L2 (not imagenet) "
            "or corruptions"
        )
    zoo = _zoo_module()
    bd, tm = _enums()
    models = zoo.model_dicts[bd(dataset)][tm(threat_model)]
    if name not in models:
        close = difflib.get_close_matches(name, list(models), n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        raise CheckpointError(
            f"{name!r} is not in the installed RobustBench zoo for {dataset}/{threat_model}; {hint}use a Model ID "
            "of RobustBench's leaderboard (docs/how-to/robustbench.md shows how to list this install's)"
        )
    return models[name]


def checkpoint_path(name: str, dataset: str, threat_model: str, model_dir: str | Path) -> Path:
    """Where RobustBench keeps a model's weights: `{model_dir}/{dataset}/{threat_model}/{name}.pt`."""
    return Path(model_dir) / dataset / threat_model / f"{name}.pt"


def build_check(name: str, dataset: str, threat_model: str) -> dict[str, Any]:
    """The zoo's entry for a model rttui can load: in the installed zoo, one file in RobustBench's layout."""
    entry = _entry(name, dataset, threat_model)
    gid = entry.get("gdrive_id")
    if gid is None or isinstance(gid, list) or (dataset == "imagenet" and "Standard" in name):
        what = "an ensemble of several files" if isinstance(gid, list) else "weights its definition downloads itself"
        raise CheckpointError(
            f"RobustBench's {name!r} ({dataset}/{threat_model}) has {what}, not one file in RobustBench's layout; "
            "choose another model"
        )
    return entry


def build(name: str, dataset: str, threat_model: str) -> nn.Module:
    """The zoo's architecture with random weights (robustbench's `models[name]['model']()`), in eval mode."""
    entry = build_check(name, dataset, threat_model)
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = entry["model"]()
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise CheckpointError(
            f"RobustBench's definition of {name!r} cannot be built here ({type(exc).__name__}: {first}); "
            "choose another model"
        ) from None
    return net.eval()


def _strip(state: dict[str, Any], substr: str) -> dict[str, Any]:
    """robustbench's rm_substr_from_state_dict, quirk included: a key *containing* `substr` loses its first
    len(substr) characters (the prefix, for every checkpoint RobustBench ships)."""
    return {(k[len(substr) :] if substr in k else k): v for k, v in state.items()}


def read_checkpoint(path: Path) -> Any:
    """A RobustBench `.pt` loaded with `weights_only=True`: tensors and plain containers, or a one-line refusal."""
    from rttui.engine.convert import load_weights_only

    if path.is_dir():
        raise CheckpointError(f"RobustBench checkpoint {path} is a folder; it must be the model's .pt file")
    if not path.is_file():
        raise CheckpointError(
            f"RobustBench checkpoint {path} does not exist (rttui never downloads); put the model's file there "
            "(RobustBench's layout: MODEL_DIR/DATASET/THREAT_MODEL/NAME.pt) or set model_dir"
        )
    return load_weights_only(
        path,
        f"RobustBench checkpoint {path} is not a plain state dict (weights-only loading refused it: {{why}}); "
        "save it with torch.save(model.state_dict())",
    )


def _state_dict(checkpoint: Any, name: str, dataset: str, path: Path) -> dict[str, torch.Tensor]:
    """The unwrapping of robustbench.utils.load_model (1.1.1) for single-file models."""
    if ("Kireev2021Effectiveness" in name or name == "Andriushchenko2020Understanding") and isinstance(
        checkpoint, dict
    ):
        checkpoint = checkpoint.get("last", checkpoint)
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"RobustBench checkpoint {path} holds no state dict; save model.state_dict() with torch")
    inner = checkpoint.get("state_dict", checkpoint)
    if not isinstance(inner, dict):
        raise CheckpointError(f"RobustBench checkpoint {path}: its 'state_dict' is not a dict of tensors")
    state = _strip(_strip(inner, "module."), "model.")
    if dataset == "imagenet" and name not in _IMAGENET_NO_PREFIX:
        state = {f"model.{k}": v for k, v in state.items()}
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"RobustBench checkpoint {path} holds no tensors; save model.state_dict() with torch")
    if len(tensors) != len(state):
        odd = next(k for k, v in state.items() if not isinstance(v, torch.Tensor))
        raise CheckpointError(
            f"RobustBench checkpoint {path} holds a {type(state[odd]).__name__} at {odd!r}, not a tensor; "
            "save model.state_dict() with torch"
        )
    return tensors


def load_into(net: nn.Module, path: Path, name: str, dataset: str) -> None:
    """Load a RobustBench file into the zoo architecture as robustbench does (strict, but for its known cases)."""
    state = _state_dict(read_checkpoint(path), name, dataset, path)
    if dataset == "imagenet" and "Swin" in name and hasattr(net, "model"):
        try:
            from timm.models.swin_transformer import checkpoint_filter_fn

            state = checkpoint_filter_fn(state, net.model)
        except Exception:  # robustbench ignores a failing filter the same way
            pass
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        if (name in _KNOWN_FAILING or dataset == "imagenet") and any(m in str(exc) for m in _TOLERATED):
            net.load_state_dict(state, strict=False)
            return
        first = str(exc).strip().splitlines()
        detail = (first[1] if len(first) > 1 else first[0]).strip()[:160] if first else ""
        raise CheckpointError(
            f"RobustBench checkpoint {path} does not fit RobustBench's {name!r} ({detail}); "
            "give the file of that model, saved as its state dict"
        ) from None


class ZooNet(nn.Module):
    """A zoo architecture with the parts of timm's model interface rttui's strategies use.

    The classifier is the network's last `nn.Linear`; depth groups are its top-level children, input side first.
    """

    def __init__(self, net: nn.Module, name: str, dataset: str, threat_model: str) -> None:
        super().__init__()
        self.net = net
        linears = [n for n, m in net.named_modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise CheckpointError(f"RobustBench's {name!r} has no linear classifier rttui can replace; choose another")
        self.head_path = linears[-1]
        head = net.get_submodule(self.head_path)
        self.num_classes, self._in_features = int(head.out_features), int(head.in_features)
        self.pretrained_cfg = {
            "architecture": f"robustbench:{dataset}/{threat_model}/{name}",
            "classifier": f"net.{self.head_path}",
            "mean": (0.0, 0.0, 0.0),
            "std": (1.0, 1.0, 1.0),
        }
        self._children = [n for n, _ in net.named_children()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def get_classifier(self) -> nn.Module:
        return self.net.get_submodule(self.head_path)

    def reset_classifier(self, num_classes: int) -> None:
        new: nn.Module = nn.Linear(self._in_features, num_classes) if num_classes else nn.Identity()
        parent, _, leaf = self.head_path.rpartition(".")
        setattr(self.net.get_submodule(parent) if parent else self.net, leaf, new)
        self.num_classes = num_classes

    def group_matcher(self, coarse: bool = False) -> Any:
        order = {n: i for i, n in enumerate(self._children)}

        def group(param_name: str) -> int | float:
            top = param_name.split(".")[1] if param_name.startswith("net.") else ""
            return order.get(top, float("inf"))

        return group


def create(name: str, dataset: str, threat_model: str, num_classes: int, model_dir: str | Path | None) -> ZooNet:
    """The zoo model for rttui: RobustBench's weights loaded when `model_dir` is given (random init otherwise),
    then its head resized to `num_classes` unless that is the zoo's own class count."""
    net = build(name, dataset, threat_model)
    if model_dir is not None:
        load_into(net, checkpoint_path(name, dataset, threat_model, model_dir), name, dataset)
    wrapped = ZooNet(net, name, dataset, threat_model)
    if num_classes != wrapped.num_classes:
        wrapped.reset_classifier(num_classes)
    return wrapped


def skeleton(name: str, dataset: str, threat_model: str) -> ZooNet:
    """The zoo architecture on the meta device (no memory, no weights), for a study's checks."""
    entry = build_check(name, dataset, threat_model)
    with torch.device("meta"):
        net = entry["model"]()
    return ZooNet(net, name, dataset, threat_model)


@lru_cache(maxsize=1)
def _leaderboard() -> dict[tuple[str, str, str], dict[str, Any]]:
    """The leaderboard tables of the installed robustbench's package description (its README): per (dataset,
    threat model, name) the published clean and robust accuracy, architecture and the threat's epsilon."""
    from importlib import metadata

    try:
        meta = metadata.metadata("robustbench")
        # the description is the message body, or its Description header where importlib_metadata's adapter
        # stands in for the stdlib's (mlflow imports it, and it then answers for importlib.metadata too)
        text = meta.get_payload() or meta.get("Description") or ""  # type: ignore[attr-defined]
        version = metadata.version("robustbench")
    except metadata.PackageNotFoundError:
        return {}
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    dataset = threat = eps = None
    headings = {"CIFAR-10": "cifar10", "CIFAR-100": "cifar100", "ImageNet": "imagenet"}
    cell = re.compile(r"<sub>(.*?)</sub>")
    for line in str(text).splitlines():
        if line.startswith("### "):
            dataset = headings.get(line[4:].strip())
            threat = None
        elif line.startswith("#### ") and dataset:
            head = line[5:].strip()
            threat = "Linf" if head.startswith("Linf") else "L2" if head.startswith("L2") else "corruptions"
            m = re.search(r"eps\s*=\s*([0-9./]+)", head)
            eps = m.group(1) if m else None
        elif line.startswith("|") and dataset and threat:
            cells = [re.sub(r"<[^>]+>|\*", "", c).strip() for c in cell.findall(line)]
            if len(cells) < 6 or not cells[3].endswith("%") or not cells[4].endswith("%"):
                continue  # the columns: #, Model ID, Paper, Clean accuracy, Robust accuracy, Architecture, Venue
            try:
                clean, robust = round(float(cells[3][:-1]) / 100, 6), round(float(cells[4][:-1]) / 100, 6)
            except ValueError:
                continue
            out[(dataset, threat, cells[1].strip())] = {
                "clean_acc": clean,
                "robust_acc": robust,
                "eps": eps,
                "architecture": cells[5],
                "source": f"robustbench {version} leaderboard (package description)",
            }
    return out


def published(name: str, dataset: str, threat_model: str) -> dict[str, Any] | None:
    """RobustBench's reported accuracy for a model (AutoAttack for Linf/L2, corruptions accuracy otherwise), from
    the installed package's leaderboard; None when it does not list the model."""
    return _leaderboard().get((dataset, threat_model, name))


def version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("robustbench")
    except metadata.PackageNotFoundError:
        return None
