"""pasteflow.augment (one sample, the loader's own stages) and
pasteflow.stats (the paper's Table 2)."""
import json
import os

import numpy as np

from . import _pasteflow
from .loader import _override_text

__all__ = ["augment", "stats"]


def _to_hwc_numpy(image):
    """(array H x W [x C], how to give the result back)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - python3-torch is a dependency
        torch = None
    if torch is not None and isinstance(image, torch.Tensor):
        if image.dtype not in (torch.uint8,):
            raise TypeError(f"augment takes uint8 image tensors (the stored pixels), not {image.dtype}; "
                            "convert float images with (x * 255).round().to(torch.uint8)")
        t = image.detach().cpu()
        if t.dim() == 3 and t.shape[0] in (1, 3) and t.shape[-1] not in (1, 3):
            arr = t.permute(1, 2, 0).contiguous().numpy()  # CHW -> HWC

            def back_to_chw(a):
                a = a.reshape(a.shape[0], a.shape[1], -1)
                return torch.from_numpy(a).permute(2, 0, 1).contiguous().to(image.device)
            if arr.shape[2] == 1:
                arr = arr[:, :, 0].copy()
            return arr, back_to_chw
        arr = t.contiguous().numpy()
        return arr, lambda a: torch.from_numpy(a).to(image.device)
    arr = np.asarray(image)
    if arr.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"augment takes uint8 or uint16 pixels, not {arr.dtype}")
    return np.ascontiguousarray(arr), lambda a: a


def _config_args(config, overrides):
    path = "" if config is None else os.fspath(config)
    items = [] if overrides is None else list(dict(overrides).items())
    return path, [_override_text(k, v) for k, v in items]


def augment(image, annotations, config=None, overrides=None, seed=None, epoch=0, sample_id=0, image_id=None,
            id_base=None):
    """Copy-paste augmentation of one image, as the loader does it.

    image: numpy array H x W x 3 (RGB) or H x W (grey), uint8 or uint16, or
        a uint8 torch tensor (C x H x W or H x W x C); the result has the
        same type, layout and device.
    annotations: COCO annotation dicts of this image (segmentation as
        polygons or RLE, bbox, category_id; iscrowd, area and id optional).
    config: a pipeline or training config path (None: the defaults); its
        `augment`, `size` and `instances` sections and `seed` apply.
        overrides: {"augment.copies": 2, ...}; seed: overrides the config's.
    epoch, sample_id: the sample's place in the stream; every random choice
        is drawn from (seed, epoch, sample_id), so the same arguments give
        the same result.
    id_base: pasted copies get ids above it (default: the largest id among
        `annotations`); the loader uses its dataset's largest annotation id.

    Returns (image, annotations, counters): the augmented pixels, every
    instance afterwards as COCO annotation dicts (segmentation as compressed
    RLE with str counts; pasted copies have "pasted": True, "source_id" and
    new ids), and the paste counters (requested, placed, failed, tries,
    dropped_occluded).
    """
    arr, give_back = _to_hwc_numpy(image)
    if arr.ndim < 2:
        raise ValueError("augment: the image needs at least 2 dimensions")
    h, w = int(arr.shape[0]), int(arr.shape[1])
    anns = [dict(a) for a in annotations]
    if image_id is None:
        ids = {a["image_id"] for a in anns if "image_id" in a}
        image_id = ids.pop() if len(ids) == 1 else 1
    for i, a in enumerate(anns):
        a["image_id"] = image_id
        a.setdefault("id", i + 1)
        a.setdefault("iscrowd", 0)
        if "category_id" not in a:
            raise ValueError(f"annotation {i} has no category_id")
        seg = a.get("segmentation")
        if isinstance(seg, dict) and isinstance(seg.get("counts"), bytes):
            a["segmentation"] = dict(seg, counts=seg["counts"].decode("ascii"))
    cats = sorted({int(a["category_id"]) for a in anns})
    doc = {"images": [{"id": image_id, "width": w, "height": h, "file_name": "<memory>"}],
           "annotations": anns,
           "categories": [{"id": c, "name": str(c)} for c in cats]}
    path, ov = _config_args(config, overrides)
    if seed is not None:
        ov.append(f"seed={int(seed)}")
    out, text, counters = _pasteflow.augment(arr, json.dumps(doc), path, ov, int(epoch), int(sample_id),
                                                  -1 if id_base is None else int(id_base))
    return give_back(out), json.loads(text), counters


def stats(annotations, on_error="strict"):
    """The paper's Table 2 of a COCO instances file (path) or document
    (dict): per size class the share of objects, images, area and matched
    anchors, average matching anchors and max IoU (torchvision's Mask R-CNN
    anchors and Matcher at 800 / 1333), plus the raw counts."""
    if isinstance(annotations, (str, os.PathLike)):
        text = _pasteflow.table2(os.fspath(annotations), "", on_error)
    else:
        text = _pasteflow.table2("", json.dumps(annotations), on_error)
    return json.loads(text)
