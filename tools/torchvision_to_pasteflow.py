#!/usr/bin/python3
"""Convert torchvision Mask R-CNN weights to pasteflow checkpoints and back.

    /usr/bin/python3 tools/torchvision_to_pasteflow.py STATE_DICT.pth OUT.pt
    /usr/bin/python3 tools/torchvision_to_pasteflow.py --reverse OURS.pt STATE_DICT.pth

Forward: STATE_DICT.pth is a torch.save'd state_dict of torchvision's
maskrcnn_resnet50_fpn (or of any ResNet-18/34/50/101 FPN Mask R-CNN built the
same way; a torchvision references checkpoint {"model": state_dict, ...} works
too). The pasteflow model (include/pasteflow/model/mask_rcnn.hpp) uses
torchvision's state_dict keys, so nothing is renamed: the script drops the
BatchNorm counters ("*.num_batches_tracked", which FrozenBatchNorm2d ignores),
checks the tensors by loading them (strict) into the equivalent torchvision
model with FrozenBatchNorm2d, and writes a plain dict {key: contiguous tensor}
with torch.save's zip format, which LibTorch reads with torch::pickle_load
(an OrderedDict state_dict carries a _metadata attribute LibTorch's unpickler
cannot read).

Reverse: reads a pasteflow checkpoint (model/weights.hpp save_weights) and
writes a torchvision state_dict (OrderedDict) that
MaskRCNN(..FrozenBatchNorm2d..).load_state_dict(strict=True) accepts.

Only /usr/bin/python3 (Debian python3-torch / python3-torchvision) is assumed.
Exit status: 0 on success, 1 on a bad input (message on stderr).
"""
import argparse
import collections
import os
import sys

import torch


def _depth_from_keys(keys):
    """ResNet depth from the body's keys (block counts of layer3, block type)."""
    prefix = "backbone.body.layer3."
    blocks = {k[len(prefix):].split(".")[0] for k in keys if k.startswith(prefix)}
    bottleneck = any(k.startswith("backbone.body.layer1.0.conv3.") for k in keys)
    n = len(blocks)
    table = {(False, 2): 18, (False, 6): 34, (True, 6): 50, (True, 23): 101}
    if (bottleneck, n) not in table:
        raise ValueError(f"cannot tell the ResNet depth: layer3 has {n} blocks, bottleneck={bottleneck}")
    return table[(bottleneck, n)]


def build_torchvision_model(state):
    """The torchvision MaskRCNN (FrozenBatchNorm2d body) that `state` belongs to."""
    from torchvision.models import resnet
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.models.detection.mask_rcnn import MaskRCNN
    from torchvision.ops import misc as misc_nn_ops

    keys = list(state.keys())
    depth = _depth_from_keys(keys)
    if "roi_heads.box_predictor.cls_score.weight" not in state:
        raise ValueError("missing tensor 'roi_heads.box_predictor.cls_score.weight'")
    num_classes = state["roi_heads.box_predictor.cls_score.weight"].shape[0]
    body = getattr(resnet, f"resnet{depth}")(weights=None, norm_layer=misc_nn_ops.FrozenBatchNorm2d)
    backbone = _resnet_fpn_extractor(body, 5)
    has_mask = any(k.startswith("roi_heads.mask_head.") for k in keys)
    model = MaskRCNN(backbone, num_classes=num_classes)
    if not has_mask:
        model.roi_heads.mask_roi_pool = None
        model.roi_heads.mask_head = None
        model.roi_heads.mask_predictor = None
    return model


def _load(path):
    obj = torch.load(path, map_location="cpu")
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]  # torchvision references/detection checkpoint
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a state_dict, found {type(obj).__name__}")
    for k, v in obj.items():
        if not isinstance(k, str) or not torch.is_tensor(v):
            raise ValueError(f"{path}: entry {k!r} is not a tensor")
    return obj


def _check(state):
    """Strict load into the matching torchvision model; raises on any mismatch."""
    model = build_torchvision_model(state)
    result = model.load_state_dict(collections.OrderedDict(state), strict=False)
    problems = [f"missing tensor '{k}'" for k in result.missing_keys]
    problems += [f"unexpected tensor '{k}'" for k in result.unexpected_keys]
    if problems:
        raise ValueError("; ".join(problems))


def _atomic_save(obj, path):
    tmp = path + ".tmp"
    torch.save(obj, tmp, _use_new_zipfile_serialization=True)
    os.replace(tmp, path)


def to_pasteflow(src, dst, check=True):
    state = _load(src)
    out = {k: v.detach().contiguous() for k, v in state.items() if not k.endswith(".num_batches_tracked")}
    if check:
        try:
            _check(out)
        except RuntimeError as e:  # shape mismatches from load_state_dict
            raise ValueError(str(e).strip().splitlines()[-1].strip()) from None
    _atomic_save(out, dst)
    return len(out)


def to_torchvision(src, dst, check=True):
    state = _load(src)
    out = collections.OrderedDict((k, v.detach().contiguous()) for k, v in sorted(state.items()))
    if check:
        try:
            _check(out)
        except RuntimeError as e:
            raise ValueError(str(e).strip().splitlines()[-1].strip()) from None
    _atomic_save(out, dst)
    return len(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--reverse", action="store_true", help="pasteflow checkpoint -> torchvision state_dict")
    p.add_argument("--no-check", action="store_true", help="skip the strict load into torchvision's model")
    a = p.parse_args(argv)
    try:
        if a.reverse:
            n = to_torchvision(a.src, a.dst, check=not a.no_check)
        else:
            n = to_pasteflow(a.src, a.dst, check=not a.no_check)
    except (ValueError, OSError, RuntimeError) as e:
        print(f"torchvision_to_pasteflow: {e}", file=sys.stderr)
        return 1
    print(f"wrote {n} tensors to {a.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
