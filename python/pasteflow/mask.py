"""pycocotools.mask's API over pasteflow's C++ RLE codec.

A drop-in replacement for ``pycocotools.mask`` (cocoapi 8c9bcc3)::

    from pasteflow import mask as maskUtils

    rle = maskUtils.encode(np.asfortranarray(binary_mask))   # {'size': [h, w], 'counts': b'...'}
    m = maskUtils.decode(rle)                                # uint8 [h, w], Fortran order
    rles = maskUtils.frPyObjects(ann["segmentation"], h, w)  # polygons -> one RLE per polygon
    rle = maskUtils.merge(rles)                              # union (intersect=1: intersection)
    maskUtils.area(rle), maskUtils.toBbox(rle)               # numpy uint32, float64 [4]
    maskUtils.iou(dt_rles, gt_rles, iscrowd)                 # float64 [m, n]

The results are bit-exact with pycocotools (same compressed strings, areas,
boxes and IoUs): same names, signatures and return types. Compressed
``counts`` are ``bytes``; ``str`` counts are accepted on input.

Where pycocotools crashes, reads out of bounds or returns garbage on
malformed input, this module raises instead:

- ``TypeError``: an argument of the wrong type (a non-array to encode, a
  non-dict RLE, uncompressed list ``counts`` where compressed ones are needed,
  dt / gt of different kinds in iou);
- ``ValueError``: wrong shapes or sizes (encode of a 1-D array, decode of
  masks of different sizes or of an empty list, ``iscrowd`` not matching the
  ground truth, negative ``h`` / ``w``);
- ``KeyError``: an RLE dict without ``size`` or ``counts``;
- ``pasteflow.InputError``: malformed mask data (a bad compressed string,
  counts that do not add up to h * w, a polygon with fewer than 6 numbers or
  an odd count, masks of different sizes in merge, more than 2^32-1 pixels).

Also accepted where pycocotools fails: encode of C-ordered / strided / bool
arrays, boxes given as a list of 4-lists or a single [x, y, w, h] list, a
single polygon, an empty list (frPyObjects returns []), compressed RLE dicts
in frPyObjects (returned checked, with bytes counts), tuples for lists.

Note on frPyObjects: as in pycocotools the kind of a list is decided by its
first element: ``[[x, y, w, h], ...]`` (first element of 4 numbers) is a
list of boxes, ``[[x0, y0, ...], ...]`` with more than 4 numbers a list of
polygons (one RLE each; merge them for an object), a flat list of 4 numbers
one box, a longer flat list one polygon.
"""
import numbers
import operator

import numpy as np

from . import _pasteflow

_mask = _pasteflow._mask

__all__ = ["encode", "decode", "area", "toBbox", "frPyObjects", "iou", "merge"]


def _is_list(obj):
    return isinstance(obj, (list, tuple))


def _dim(value, name):
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}") from None
    if v < 0 or v > 0xFFFFFFFF:
        raise ValueError(f"{name} must be in 0..2^32-1, got {v}")
    return v


def encode(bimask):
    """Binary mask(s) -> RLE: uint8 [h, w] -> dict, [h, w, n] -> list of n dicts.

    pycocotools wants a Fortran-ordered uint8 array; any memory order works
    here (bool too). Nonzero pixels are foreground.
    """
    if not isinstance(bimask, np.ndarray):
        raise TypeError(f"encode expects a numpy uint8 array [h, w] or [h, w, n], got {type(bimask).__name__}")
    if bimask.ndim == 3:
        return _mask.encode(bimask)
    if bimask.ndim == 2:
        return _mask.encode(bimask[:, :, np.newaxis])[0]
    raise ValueError(f"encode expects a [h, w] or [h, w, n] array, got shape {bimask.shape}")


def decode(rleObjs):
    """RLE -> mask: dict -> uint8 [h, w]; list -> uint8 [h, w, n]; Fortran order."""
    if _is_list(rleObjs):
        return _mask.decode(rleObjs)
    return _mask.decode([rleObjs])[:, :, 0]


def area(rleObjs):
    """Pixel areas: dict -> numpy.uint32; list -> uint32 [n]."""
    if _is_list(rleObjs):
        return _mask.area(rleObjs)
    return _mask.area([rleObjs])[0]


def toBbox(rleObjs):
    """Mask boxes [x, y, w, h]: dict -> float64 [4]; list -> float64 [n, 4]."""
    if _is_list(rleObjs):
        return _mask.toBbox(rleObjs)
    return _mask.toBbox([rleObjs])[0]


def merge(rleObjs, intersect=0):
    """Union (intersect=0) or intersection of a list of RLEs of one size -> dict.

    An empty list gives {'size': [0, 0], 'counts': b''}, as pycocotools.
    """
    return _mask.merge(rleObjs, bool(intersect))


def _iou_operand(objs, name):
    """pycocotools' _preproc: ('box', float64 [n, 4]), ('rle', [dict]) or (None, empty)."""
    if isinstance(objs, np.ndarray):
        if objs.ndim == 0:
            raise TypeError(f"iou: {name} is a 0-d array")
        if len(objs) == 0:
            return None, objs
        if objs.ndim != 2 or objs.shape[1] != 4:
            raise ValueError("numpy ndarray input is only for *bounding boxes* and should have Nx4 dimension "
                             f"({name} has shape {objs.shape})")
        return "box", objs.astype(np.double)
    if _is_list(objs):
        if len(objs) == 0:
            return None, objs
        if all(isinstance(o, dict) for o in objs):
            return "rle", list(objs)
        if all((_is_list(o) or isinstance(o, np.ndarray)) and len(o) == 4 for o in objs):
            try:
                boxes = np.array(objs, dtype=np.double)
            except (TypeError, ValueError) as e:
                raise ValueError(f"iou: {name} boxes are not numbers: {e}") from None
            if boxes.ndim != 2:
                raise ValueError(f"iou: {name} boxes must be [x, y, w, h] lists of numbers")
            return "box", boxes
        raise ValueError(f"list input can be bounding box (Nx4) or RLEs ([RLE]) ({name})")
    raise TypeError("unrecognized type.  The following type: RLEs (rle), np.ndarray (box), and list (box) are "
                    f"supported ({name} is {type(objs).__name__}).")


def iou(dt, gt, pyiscrowd):
    """IoU of every dt with every gt -> float64 [len(dt), len(gt)] (Fortran order).

    dt, gt: both lists of RLE dicts, or both boxes ([n, 4] arrays or lists of
    [x, y, w, h]). pyiscrowd: one flag per gt; for a crowd gt the IoU is
    |dt & gt| / |dt|. Empty dt or gt: [] (a list, as pycocotools). Masks of
    different sizes whose boxes overlap: -1, as pycocotools.
    """
    try:
        iscrowd = np.asarray([] if pyiscrowd is None else pyiscrowd, dtype=np.uint8)
    except (TypeError, ValueError, OverflowError) as e:
        raise TypeError(f"iou: iscrowd must be a list of 0/1 flags: {e}") from None
    dkind, d = _iou_operand(dt, "dt")
    gkind, g = _iou_operand(gt, "gt")
    if dkind is None or gkind is None:
        return []
    if dkind != gkind:
        raise TypeError("The dt and gt should have the same data type, either RLEs, list or np.ndarray")
    if dkind == "rle":
        return _mask.rle_iou(d, g, iscrowd)
    return _mask.bbox_iou(d, g, iscrowd)


def _is_number(x):
    return isinstance(x, numbers.Number) and not isinstance(x, bool)


def _fr_rle_dicts(objs):
    if all(_is_list(o.get("counts")) or isinstance(o.get("counts"), np.ndarray) for o in objs):
        return _mask.frUncompressedRLE(objs)
    return [_fr_rle_dict(o) for o in objs]


def _fr_rle_dict(obj):
    if "counts" not in obj or "size" not in obj:
        raise KeyError("frPyObjects: an RLE dict needs 'size' and 'counts'")
    if isinstance(obj["counts"], (bytes, str)):
        return _mask.normalize(obj)
    return _mask.frUncompressedRLE([obj])[0]


def frPyObjects(pyobj, h, w):
    """Polygons, boxes or uncompressed RLE -> compressed RLE(s).

    - [[x0, y0, x1, y1, ...], ...] polygons -> list of dicts, one per polygon;
    - [n, 4] array or [[x, y, w, h], ...] boxes -> list of dicts;
    - [{'size': [h, w], 'counts': [...]}, ...] -> list of dicts (each its own size);
    - one polygon / one box (a flat list) / one RLE dict -> one dict.
    """
    h = _dim(h, "h")
    w = _dim(w, "w")
    if isinstance(pyobj, np.ndarray):
        if pyobj.ndim == 2 and pyobj.shape[1] == 4:
            return _mask.frBbox(pyobj, h, w)
        if pyobj.ndim == 1 and pyobj.shape[0] == 4:
            return _mask.frBbox(pyobj.reshape(1, 4), h, w)[0]
        raise ValueError(f"frPyObjects: an array must hold [n, 4] boxes, got shape {pyobj.shape}")
    if isinstance(pyobj, dict):
        return _fr_rle_dict(pyobj)
    if not _is_list(pyobj):
        raise TypeError(f"input type is not supported: {type(pyobj).__name__} (frPyObjects takes polygons, boxes "
                        "or uncompressed RLE)")
    if len(pyobj) == 0:
        return []
    first = pyobj[0]
    if isinstance(first, dict):
        if not all(isinstance(o, dict) for o in pyobj):
            raise TypeError("frPyObjects: a list of RLE dicts holds something else too")
        return _fr_rle_dicts(pyobj)
    if _is_number(first):
        if not all(_is_number(v) for v in pyobj):
            raise TypeError("frPyObjects: a flat list must hold numbers only (one polygon or one box)")
        if len(pyobj) == 4:
            return _mask.frBbox(np.asarray(pyobj, dtype=np.double).reshape(1, 4), h, w)[0]
        return _mask.frPoly([pyobj], h, w)[0]
    if _is_list(first) or isinstance(first, np.ndarray):
        n = len(first)
        if n == 4:
            if not all((_is_list(o) or isinstance(o, np.ndarray)) and len(o) == 4 for o in pyobj):
                raise ValueError("frPyObjects: the first element has 4 numbers, so the list is read as boxes "
                                 "[x, y, w, h], but not every element has 4 numbers")
            try:
                boxes = np.asarray(pyobj, dtype=np.double)
            except (TypeError, ValueError) as e:
                raise TypeError(f"frPyObjects: boxes must be numbers: {e}") from None
            if boxes.ndim != 2:
                raise ValueError("frPyObjects: boxes must be [x, y, w, h] lists of numbers")
            return _mask.frBbox(boxes, h, w)
        return _mask.frPoly(pyobj, h, w)
    raise TypeError(f"input type is not supported: a list of {type(first).__name__}")
