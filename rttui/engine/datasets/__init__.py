"""Loaders for datasets on disk (CIFAR, ImageNet subsets, ChestX-ray8, ImageFolder trees, torchvision).

Importing this package registers them in `rttui.engine.data.REGISTRY`; `load_task` does so on first use.
"""

from rttui.engine.datasets import chestxray, folders, tv

__all__ = ["chestxray", "folders", "tv"]
