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


def _shape(state, key):
    if key not in state:
        raise ValueError(f"missing tensor '{key}'")
    return tuple(state[key].shape)


def build_torchvision_model(state):
    """The torchvision MaskRCNN that `state` belongs to: ResNet body of the
    depth its keys show (FrozenBatchNorm2d, or GroupNorm when the body has no
    running statistics), FPN, RPN head, TwoMLPHead, predictors and mask head
    with the widths read from the tensor shapes (torchvision's defaults for
    maskrcnn_resnet50_fpn)."""
    import functools

    from torch import nn
    from torchvision.models import resnet
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNN, MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.models.detection.rpn import RPNHead
    from torchvision.ops import MultiScaleRoIAlign
    from torchvision.ops import misc as misc_nn_ops
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    keys = list(state.keys())
    depth = _depth_from_keys(keys)
    if "backbone.body.bn1.running_mean" in state:
        norm_layer = misc_nn_ops.FrozenBatchNorm2d
    else:
        norm_layer = functools.partial(nn.GroupNorm, 32)
    body = getattr(resnet, f"resnet{depth}")(weights=None, norm_layer=norm_layer)
    channels = _shape(state, "backbone.fpn.layer_blocks.0.0.weight")[0]
    in_channels = [_shape(state, f"backbone.fpn.inner_blocks.{i}.0.weight")[1] for i in range(4)]
    backbone = BackboneWithFPN(body, {f"layer{k}": str(k - 1) for k in range(1, 5)}, in_channels, channels,
                               extra_blocks=LastLevelMaxPool())
    num_classes, representation = _shape(state, "roi_heads.box_predictor.cls_score.weight")
    fc6_out, fc6_in = _shape(state, "roi_heads.box_head.fc6.weight")
    resolution = int(round((fc6_in / channels) ** 0.5))
    num_anchors = _shape(state, "rpn.head.cls_logits.weight")[0]
    kwargs = dict(
        rpn_head=RPNHead(channels, num_anchors),
        box_roi_pool=MultiScaleRoIAlign(["0", "1", "2", "3"], resolution, 2),
        box_head=TwoMLPHead(fc6_in, fc6_out),
        box_predictor=FastRCNNPredictor(representation, num_classes),
    )
    layers = []
    while f"roi_heads.mask_head.{len(layers)}.0.weight" in state:
        layers.append(_shape(state, f"roi_heads.mask_head.{len(layers)}.0.weight")[0])
    if layers:
        dim_reduced = _shape(state, "roi_heads.mask_predictor.conv5_mask.weight")[1]
        kwargs.update(mask_head=MaskRCNNHeads(channels, layers, 1),
                      mask_predictor=MaskRCNNPredictor(layers[-1], dim_reduced, num_classes))
    if not layers:  # Faster R-CNN (pasteflow mask.enabled: false)
        from torchvision.models.detection.faster_rcnn import FasterRCNN
        return FasterRCNN(backbone, num_classes=None, **kwargs)
    return MaskRCNN(backbone, num_classes=None, **kwargs)


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
    except (ValueError, OSError, RuntimeError, KeyError) as e:
        print(f"torchvision_to_pasteflow: {e}", file=sys.stderr)
        return 1
    print(f"wrote {n} tensors to {a.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
