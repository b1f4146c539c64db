#!/usr/bin/python3
"""Oracle of the Mask R-CNN parity tests (tests/model/mask_rcnn_parity_test.cpp).

    /usr/bin/python3 tools/parity/model_parity.py IN_DIR OUT_DIR
    /usr/bin/python3 tools/parity/model_parity.py --defaults   # "key value" lines

Runs torchvision 0.14's Mask R-CNN (MaskRCNN with a ResNet-50-FPN body using
FrozenBatchNorm2d, i.e. maskrcnn_resnet50_fpn as built for pretrained weights)
on the inputs described by IN_DIR/manifest.json and writes what it computed
into OUT_DIR as raw little-endian arrays, plus the weights it used.

manifest.json:
  seed          torch.manual_seed before building the model (random init)
  cls_scale     multiplies roi_heads.box_predictor.cls_score.weight (random
                weights give near-uniform class scores below the 0.05 score
                threshold; a larger scale gives confident detections)
  random_bn     FrozenBatchNorm2d buffers drawn at random (else 1/0/0/1)
  weights_out   path: torch.save(model.state_dict()) (a torchvision state_dict)
  mode          "eval" or "train"
  kwargs        extra MaskRCNN keyword arguments (min_size, max_size, box_score_thresh, ...)
  images        [{pixels: "img0.u8" (RGB uint8 HWC), height, width,
                  targets: {n, boxes: "boxes0.f32" [n,4] xyxy, labels: "labels0.i64",
                            masks: "masks0.u8" [n,H,W]}}]   (targets: train only)

Outputs:
  eval:  meta.txt ("<num_images>" then "<n> <h> <w>" per image); per image i:
         boxes<i>.f32 [n,4], scores<i>.f32 [n], labels<i>.i64 [n],
         masks<i>.u8 [n,h,w] (probability > 0.5), proposals<i>.f32 [p,4]
  train: losses.txt ("<name> <value %.17g>" per loss)

Training uses the deterministic sampler of pasteflow's model
(det_utils.hpp hash_permutation): torch.randperm(n) is replaced by
argsort(((i + 1) * 2654435761) mod 2**32), so both sides sample the same
anchors and proposals.
"""
import json
import os
import sys

import numpy as np
import torch
from torchvision.models import resnet
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.models.detection.mask_rcnn import MaskRCNN
from torchvision.ops import misc as misc_nn_ops


def hash_permutation(n, device=None, **_):
    keys = ((torch.arange(n, dtype=torch.int64, device=device) + 1) * 2654435761) % (1 << 32)
    return torch.argsort(keys)


def build_model(manifest):
    torch.manual_seed(int(manifest.get("seed", 0)))
    body = resnet.resnet50(weights=None, norm_layer=misc_nn_ops.FrozenBatchNorm2d)
    backbone = _resnet_fpn_extractor(body, 3)
    model = MaskRCNN(backbone, num_classes=91, **manifest.get("kwargs", {}))
    g = torch.Generator().manual_seed(int(manifest.get("seed", 0)) + 1)
    with torch.no_grad():
        if manifest.get("random_bn", True):
            for mod in model.modules():
                if isinstance(mod, misc_nn_ops.FrozenBatchNorm2d):
                    n = mod.weight.numel()
                    mod.weight.copy_(torch.empty(n).uniform_(0.5, 1.0, generator=g))
                    mod.bias.copy_(torch.empty(n).normal_(0.0, 0.1, generator=g))
                    mod.running_mean.copy_(torch.empty(n).normal_(0.0, 0.1, generator=g))
                    mod.running_var.copy_(torch.empty(n).uniform_(0.5, 2.0, generator=g))
            # Non-zero biases everywhere torchvision initialises them to 0.
            for name, p in model.named_parameters():
                if name.endswith(".bias") and not name.startswith("backbone.body"):
                    p.copy_(torch.empty(p.shape).normal_(0.0, 0.01, generator=g))
        model.roi_heads.box_predictor.cls_score.weight.mul_(float(manifest.get("cls_scale", 1.0)))
    return model


def read(path, dtype, shape):
    return torch.from_numpy(np.fromfile(path, dtype=dtype).reshape(shape).copy())


def write(path, tensor, dtype):
    np.ascontiguousarray(tensor.detach().cpu().numpy().astype(dtype)).tofile(path)


def defaults():
    """The hyper-parameters of maskrcnn_resnet50_fpn as torchvision builds it
    for pretrained weights (FrozenBatchNorm2d, 3 trainable layers), read back
    from the constructed modules, one "key value" line each, keys in
    ModelConfig's layout (lists comma-separated, floats %.17g)."""
    from torchvision.models.detection import maskrcnn_resnet50_fpn
    from torchvision.models.detection.backbone_utils import _validate_trainable_layers
    m = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    rpn, roi, tr = m.rpn, m.roi_heads, m.transform
    body = m.backbone.body
    frozen = misc_nn_ops.FrozenBatchNorm2d(1)
    trainable = _validate_trainable_layers(True, None, 5, 3)
    mask_convs = [blk[0] for blk in roi.mask_head]
    out = {
        "num_classes": roi.box_predictor.cls_score.out_features,
        "backbone": {
            "depth": 50 if len(body.layer3) == 6 and hasattr(body.layer1[0], "conv3") else -1,
            "norm_eps": frozen.eps,
            "trainable_layers": trainable,
            "fpn_channels": m.backbone.out_channels,
        },
        "anchors": {
            "sizes": [float(s[0]) for s in rpn.anchor_generator.sizes],
            "aspect_ratios": [float(a) for a in rpn.anchor_generator.aspect_ratios[0]],
            "sizes_per_level": [len(s) for s in rpn.anchor_generator.sizes],
            "same_ratios_every_level": all(
                list(a) == list(rpn.anchor_generator.aspect_ratios[0]) for a in rpn.anchor_generator.aspect_ratios),
        },
        "rpn": {
            "pre_nms_top_n_train": rpn._pre_nms_top_n["training"],
            "pre_nms_top_n_test": rpn._pre_nms_top_n["testing"],
            "post_nms_top_n_train": rpn._post_nms_top_n["training"],
            "post_nms_top_n_test": rpn._post_nms_top_n["testing"],
            "nms_thresh": rpn.nms_thresh,
            "fg_iou_thresh": rpn.proposal_matcher.high_threshold,
            "bg_iou_thresh": rpn.proposal_matcher.low_threshold,
            "allow_low_quality_matches": rpn.proposal_matcher.allow_low_quality_matches,
            "batch_size_per_image": rpn.fg_bg_sampler.batch_size_per_image,
            "positive_fraction": rpn.fg_bg_sampler.positive_fraction,
            "score_thresh": rpn.score_thresh,
            "min_size": rpn.min_size,
            "box_coder_weights": list(rpn.box_coder.weights),
            "conv_depth": len(rpn.head.conv),
        },
        "box": {
            "roi_pool_size": roi.box_roi_pool.output_size[0],
            "sampling_ratio": roi.box_roi_pool.sampling_ratio,
            "featmap_names": roi.box_roi_pool.featmap_names,
            "representation_size": roi.box_head.fc6.out_features,
            "score_thresh": roi.score_thresh,
            "nms_thresh": roi.nms_thresh,
            "detections_per_img": roi.detections_per_img,
            "fg_iou_thresh": roi.proposal_matcher.high_threshold,
            "bg_iou_thresh": roi.proposal_matcher.low_threshold,
            "allow_low_quality_matches": roi.proposal_matcher.allow_low_quality_matches,
            "batch_size_per_image": roi.fg_bg_sampler.batch_size_per_image,
            "positive_fraction": roi.fg_bg_sampler.positive_fraction,
            "bbox_reg_weights": list(roi.box_coder.weights),
        },
        "mask": {
            "roi_pool_size": roi.mask_roi_pool.output_size[0],
            "sampling_ratio": roi.mask_roi_pool.sampling_ratio,
            "featmap_names": roi.mask_roi_pool.featmap_names,
            "layers": [c.out_channels for c in mask_convs],
            "dilation": mask_convs[0].dilation[0],
            "dim_reduced": roi.mask_predictor.conv5_mask.out_channels,
        },
        "transform": {
            "min_size": list(tr.min_size),
            "max_size": tr.max_size,
            "size_divisible": tr.size_divisible,
            "image_mean": list(tr.image_mean),
            "image_std": list(tr.image_std),
        },
    }
    for key, value in _flatten(out):
        print(key, value)


def _text(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.17g}"
    if isinstance(v, (list, tuple)):
        return ",".join(_text(x) for x in v)
    return str(v)


def _flatten(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flatten(v, prefix + k + ".")
        else:
            yield prefix + k, _text(v)


def main():
    if sys.argv[1] == "--defaults":
        defaults()
        return
    in_dir, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(in_dir, "manifest.json")) as f:
        manifest = json.load(f)
    model = build_model(manifest)
    if manifest.get("weights_out"):
        torch.save(model.state_dict(), manifest["weights_out"])

    images, targets = [], []
    for im in manifest["images"]:
        h, w = im["height"], im["width"]
        pixels = read(os.path.join(in_dir, im["pixels"]), np.uint8, (h, w, 3))
        # references/detection: PILToTensor + ConvertImageDtype(float): / 255.
        images.append(pixels.permute(2, 0, 1).contiguous().to(torch.float32) / 255)
        t = im.get("targets")
        if t is not None:
            n = t["n"]
            targets.append({
                "boxes": read(os.path.join(in_dir, t["boxes"]), np.float32, (n, 4)),
                "labels": read(os.path.join(in_dir, t["labels"]), np.int64, (n,)),
                "masks": read(os.path.join(in_dir, t["masks"]), np.uint8, (n, h, w)),
            })

    if manifest["mode"] == "train":
        model.train()
        torch.randperm = hash_permutation  # the samplers' only source of randomness
        losses = model(images, targets)
        with open(os.path.join(out_dir, "losses.txt"), "w") as f:
            for k in sorted(losses):
                f.write(f"{k} {losses[k].item():.17g}\n")
        return

    model.eval()
    proposals = []
    model.rpn.register_forward_hook(lambda mod, inp, out: proposals.extend(out[0]))
    with torch.no_grad():
        out = model(images)
    with open(os.path.join(out_dir, "meta.txt"), "w") as f:
        f.write(f"{len(out)}\n")
        for i, o in enumerate(out):
            h, w = images[i].shape[-2:]
            f.write(f"{len(o['boxes'])} {h} {w}\n")
            write(os.path.join(out_dir, f"boxes{i}.f32"), o["boxes"], np.float32)
            write(os.path.join(out_dir, f"scores{i}.f32"), o["scores"], np.float32)
            write(os.path.join(out_dir, f"labels{i}.i64"), o["labels"], np.int64)
            write(os.path.join(out_dir, f"masks{i}.u8"), o["masks"][:, 0] > 0.5, np.uint8)
            write(os.path.join(out_dir, f"proposals{i}.f32"), proposals[i], np.float32)


if __name__ == "__main__":
    main()
