"""RobustBench's vocabulary, torch-free, so a study can be checked without importing torch or robustbench.

Never imports torch, timm or robustbench (`rttui.engine.robustbench` does the loading).
"""

from __future__ import annotations

DATASETS = ("cifar10", "cifar100", "imagenet")
THREAT_MODELS = ("Linf", "L2", "corruptions")
# rttui's dataset names that are RobustBench's datasets: a `[source] dataset` of these names the zoo's dataset.
FROM_RTTUI_DATASET = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet_subset": "imagenet"}
DEFAULT_MODEL_DIR = "models"  # robustbench.utils.load_model's default folder
