"""COCO detection evaluation with pycocotools' COCOeval semantics, in C++."""
import json
import os

import numpy as np

from . import _pasteflow

__all__ = ["coco_eval", "STATS_ORDER"]

#: The 12 summary numbers in pycocotools' order (COCOeval.stats).
STATS_ORDER = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def _json_default(obj):
    # What pycocotools' loadRes takes in memory but json cannot write:
    # bytes RLE counts (pasteflow.mask.encode's), numpy scalars and arrays.
    if isinstance(obj, (bytes, bytearray)):
        return obj.decode("ascii")
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"coco_eval: a {type(obj).__name__} cannot be read as JSON")


def _dumps(obj):
    return json.dumps(obj, default=_json_default, separators=(",", ":")).encode("utf-8")


def _numpy_results(array):
    # pycocotools' loadNumpyAnnotations: rows [image_id, x, y, w, h, score, category_id].
    if array.ndim != 2 or array.shape[1] != 7:
        raise ValueError(f"coco_eval: a results array must be [n, 7] (image_id, x, y, w, h, score, category_id), "
                         f"got shape {array.shape}")
    return [{"image_id": int(r[0]), "bbox": [float(r[1]), float(r[2]), float(r[3]), float(r[4])],
             "score": float(r[5]), "category_id": int(r[6])} for r in array]


def coco_eval(gt, results, iou_type="bbox", *, max_dets=(1, 10, 100), threads=0, on_error="strict",
              img_ids=None, cat_ids=None, use_cats=True):
    """COCOeval(gt, gt.loadRes(results), iou_type): evaluate, accumulate, summarize.

    gt: path (str / os.PathLike) of a COCO instances JSON, or the dict loaded
        from one (a pycocotools-style object with a ``dataset`` dict works too).
    results: path of a COCO results JSON, or a list of result dicts
        ({image_id, category_id, score, bbox and/or segmentation}; RLE counts as
        str or bytes), or an [n, 7] numpy array as pycocotools' loadRes takes.
    iou_type: "bbox" or "segm".
    max_dets: COCOeval params.maxDets (three limits per image).
    threads: worker threads (0 = all cores); results never depend on it.
    on_error: "strict" raises pasteflow.InputError on the first bad record,
        "skip" leaves bad ground truth / results out and counts them.
    img_ids, cat_ids: evaluate only these images / categories (params.imgIds,
        params.catIds); use_cats: params.useCats.

    Returns a dict: the 12 numbers of pycocotools' summary under AP, AP50,
    AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl; ``stats`` (the 12 in
    that order); ``per_category_ap`` {category id: AP at IoU .50:.95, area
    all, the largest maxDets; -1 without ground truth}; ``max_dets``;
    ``skipped`` {reason: count}; ``summary`` (the 12 lines summarize() prints).
    """
    if iou_type not in ("bbox", "segm"):
        raise ValueError(f"coco_eval: iou_type must be 'bbox' or 'segm', got {iou_type!r}")
    if on_error not in ("strict", "skip"):
        raise ValueError(f"coco_eval: on_error must be 'strict' or 'skip', got {on_error!r}")
    max_dets = [int(m) for m in max_dets]
    if len(max_dets) == 0 or any(m < 1 for m in max_dets):
        raise ValueError(f"coco_eval: max_dets must be positive limits, got {max_dets}")

    gt_path = gt_json = None
    if isinstance(gt, (str, os.PathLike)):
        gt_path = os.fspath(gt)
    elif isinstance(gt, dict):
        gt_json = _dumps(gt)
    elif isinstance(getattr(gt, "dataset", None), dict):
        gt_json = _dumps(gt.dataset)
    else:
        raise TypeError(f"coco_eval: gt must be a path or a COCO dict, got {type(gt).__name__}")

    results_path = results_json = None
    if isinstance(results, (str, os.PathLike)):
        results_path = os.fspath(results)
    elif isinstance(results, np.ndarray):
        results_json = _dumps(_numpy_results(results))
    elif isinstance(results, (list, tuple)):
        results_json = _dumps(list(results))
    else:
        raise TypeError(f"coco_eval: results must be a path or a list of result dicts, got {type(results).__name__}")

    ids = lambda v: None if v is None else [int(i) for i in v]  # noqa: E731
    return _pasteflow.coco_eval(gt_path, gt_json, results_path, results_json, iou_type, max_dets, int(threads),
                                on_error, ids(img_ids), ids(cat_ids), bool(use_cats))
