#!/usr/bin/python3
"""torchvision side of bench/model_vs_torchvision (run by that executable).

    /usr/bin/python3 bench/model_vs_torchvision.py DIR --threads T [--prepare-only]

DIR/manifest.json (written by the C++ side) names the images (raw RGB
uint8 HWC), their targets (boxes f32 [n, 4] xyxy, labels i64 [n], masks u8
[n, H, W]), the MaskRCNN keyword arguments and where to write the weights.
The model is maskrcnn_resnet50_fpn as built for pretrained weights:
FrozenBatchNorm2d, 3 trainable layers, num_classes 91, random weights
(torch.manual_seed(0)) made well-behaved: each FrozenBatchNorm2d gets the
mean and variance of its input on this batch (as pretrained statistics would
be; with identity statistics a random ResNet-50's activations reach 1e10 and
the losses 1e27), and the class-score weights are multiplied by cls_scale so
that eval has confident detections (random class scores are near 1/91, below
the 0.05 threshold; both sides divide them back before the first training
iteration, as the scaled ones make training diverge). The weights are saved as pasteflow's model/weights.hpp
format (a plain dict; the C++ side loads them strictly) before any timing.
With --prepare-only the script stops there.

Then it prints "ready" and serves commands read from stdin, one per line,
so that the C++ side can alternate the models call by call:
  eval SETTING   one eval-mode (no_grad) forward of the batch
                 -> {"eval_s": seconds, "detections": [n per image]}
  train SETTING  one forward + backward + SGD step (lr 0.0025, momentum 0.9,
                 weight decay 1e-4, zero_grad(set_to_none)) on the batch
                 -> {"train_s": seconds, "forward_s", "backward_s", "step_s":
                     its parts, "losses": {...}}
  anything else (or EOF) ends it.
SETTING is "fp32" (the model as built) or "bf16_cl": a second copy of the
same weights in channels-last memory format whose forward runs under
torch.autocast("cpu", dtype=torch.bfloat16), the losses summed and the
backward outside it (torchvision's references' --amp). Each setting has its
own model and optimizer, so both start from the same weights.

torchvision 0.14 registers no CPU autocast rule for its roi_align and nms
kernels, which reject bf16 ("roi_align ... CPUBFloat16Type does not equal
torch.FloatTensor", "nms_kernel not implemented for 'BFloat16'"), so the
bf16 setting could not run at all. This script patches in the rule
torchvision's CUDA autocast (and later versions' CPU autocast) applies:
both ops in fp32, roi_align's result cast back to the input's dtype.
"""
import argparse
import json
import os
import sys
import time

import copy

import numpy as np
import torch
import torchvision.models.detection.roi_heads as tv_roi_heads
import torchvision.ops.boxes as tv_boxes
import torchvision.ops.poolers as tv_poolers
from torchvision.models import resnet
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.models.detection.mask_rcnn import MaskRCNN
from torchvision.ops import misc as misc_nn_ops


def patch_autocast_rules():
    """torchvision's autocast rules for roi_align and nms, on CPU too."""
    low = (torch.bfloat16, torch.float16)
    roi_align, nms = tv_poolers.roi_align, tv_boxes.nms

    def roi_align_fp32(input, boxes, *args, **kwargs):
        if input.dtype not in low:
            return roi_align(input, boxes, *args, **kwargs)
        boxes = boxes.float() if isinstance(boxes, torch.Tensor) else [b.float() for b in boxes]
        with torch.autocast("cpu", enabled=False):
            return roi_align(input.float(), boxes, *args, **kwargs).to(input.dtype)

    def nms_fp32(boxes, scores, iou_threshold):
        return nms(boxes.float(), scores.float(), iou_threshold)

    tv_poolers.roi_align = roi_align_fp32
    tv_roi_heads.roi_align = roi_align_fp32
    tv_boxes.nms = nms_fp32


def read(path, dtype, shape):
    return torch.from_numpy(np.fromfile(path, dtype=dtype).reshape(shape).copy())


def calibrate(model, images, cls_scale):
    """FrozenBatchNorm2d statistics = its input's per-channel mean / variance."""
    def pre_hook(mod, inputs):
        x = inputs[0]
        mod.running_mean.copy_(x.mean(dim=(0, 2, 3)))
        mod.running_var.copy_(x.var(dim=(0, 2, 3)) + 1e-3)

    handles = [m.register_forward_pre_hook(pre_hook) for m in model.modules()
               if isinstance(m, misc_nn_ops.FrozenBatchNorm2d)]
    model.eval()
    with torch.no_grad():
        batch, _ = model.transform(images)
        model.backbone(batch.tensors)
        model.roi_heads.box_predictor.cls_score.weight.mul_(cls_scale)
    for h in handles:
        h.remove()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--prepare-only", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    with open(os.path.join(a.dir, "manifest.json")) as f:
        manifest = json.load(f)

    torch.manual_seed(0)
    body = resnet.resnet50(weights=None, norm_layer=misc_nn_ops.FrozenBatchNorm2d)
    model = MaskRCNN(_resnet_fpn_extractor(body, 3), num_classes=91, **manifest["kwargs"])

    images, targets = [], []
    for im in manifest["images"]:
        h, w, n = im["height"], im["width"], im["n"]
        pixels = read(os.path.join(a.dir, im["pixels"]), np.uint8, (h, w, 3))
        images.append(pixels.permute(2, 0, 1).contiguous().to(torch.float32) / 255)
        targets.append({
            "boxes": read(os.path.join(a.dir, im["boxes"]), np.float32, (n, 4)),
            "labels": read(os.path.join(a.dir, im["labels"]), np.int64, (n,)),
            "masks": read(os.path.join(a.dir, im["masks"]), np.uint8, (n, h, w)),
        })

    calibrate(model, images, float(manifest["cls_scale"]))
    torch.save({k: v.detach().contiguous() for k, v in model.state_dict().items()}, manifest["weights"])
    print("ready", flush=True)
    if a.prepare_only:
        return

    patch_autocast_rules()
    models = {"fp32": model, "bf16_cl": copy.deepcopy(model).to(memory_format=torch.channels_last)}
    opts, trained = {}, set()
    for name, m in models.items():
        params = [p for p in m.parameters() if p.requires_grad]
        opts[name] = torch.optim.SGD(params, lr=0.0025, momentum=0.9, weight_decay=1e-4)
    for line in sys.stdin:
        words = line.split()
        if len(words) != 2 or words[1] not in models:
            break
        cmd, setting = words
        model, opt = models[setting], opts[setting]
        amp = torch.autocast("cpu", dtype=torch.bfloat16, enabled=setting == "bf16_cl")
        if cmd == "eval":
            model.eval()
            with torch.no_grad():
                t0 = time.perf_counter()
                with amp:
                    out = model(images)
                dt = time.perf_counter() - t0
            reply = {"eval_s": dt, "detections": [int(o["boxes"].shape[0]) for o in out]}
        elif cmd == "train":
            if setting not in trained:  # training starts from the unscaled class scores (scaled ones diverge)
                with torch.no_grad():
                    model.roi_heads.box_predictor.cls_score.weight.div_(float(manifest["cls_scale"]))
                trained.add(setting)
            model.train()
            t0 = time.perf_counter()
            with amp:
                loss_dict = model(images, targets)
            loss = sum(v.float() for v in loss_dict.values())
            t1 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            t2 = time.perf_counter()
            opt.step()
            t3 = time.perf_counter()
            reply = {"train_s": t3 - t0, "forward_s": t1 - t0, "backward_s": t2 - t1, "step_s": t3 - t2,
                     "losses": {k: float(v) for k, v in loss_dict.items()}}
        else:
            break
        print(json.dumps(reply), flush=True)

if __name__ == "__main__":
    main()
