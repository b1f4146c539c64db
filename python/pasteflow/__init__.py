"""pasteflow from Python: the prefetching loader, one-sample augmentation,
dataset statistics, COCO evaluation and pycocotools' RLE mask API, all
running in pasteflow's C++ core (the flow graph's threads work outside the
GIL).

    import pasteflow
    loader = pasteflow.Loader("configs/demo.yaml", output="torchvision")
    for images, targets in loader:
        loss_dict = model(images, targets)

    from pasteflow import mask as maskUtils   # replaces pycocotools.mask
"""
import torch  # noqa: F401  (python3-torch's LibTorch, the one the extension links, is loaded first)

from . import _pasteflow
from ._pasteflow import ConfigError, Error, InputError
from . import mask
from .augment import augment, stats
from .evaluation import coco_eval
from .loader import Loader

__version__ = _pasteflow.__version__

__all__ = ["Loader", "augment", "stats", "coco_eval", "mask", "Error", "ConfigError", "InputError"]
