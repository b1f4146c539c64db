#!/usr/bin/python3
"""Oracle for the batching stage: torchvision's own detection input pipeline.

Run with Debian's /usr/bin/python3 (python3-torch 1.13.1, python3-torchvision
0.14.1):

    /usr/bin/python3 rcnn_transform_parity.py IN_DIR OUT_DIR

IN_DIR/manifest.json describes a batch that pasteflow prepared:

    {"training": bool, "min_size": [int, ...], "chosen_min_sizes": [int, ...],
     "max_size": int, "mean": [3 floats], "std": [3 floats],
     "size_divisible": int,
     "images": [{"pixels": "img0.u8", "height": H, "width": W, "channels": 1|3,
                 "flip": bool, "bbox": [[x, y, w, h], ...], "iscrowd": [0|1, ...],
                 "masks": "masks0.u8" | null}, ...]}

Pixels are the raw decoded bytes (H x W x C, row-major) so that no JPEG
decoder takes part in the comparison; masks are N x H x W uint8.

Each image goes through what torchvision's references/detection train script
does before the model (ConvertCocoPolysToMask: crowd dropped, xywh -> xyxy,
clamp, empty boxes dropped; RandomHorizontalFlip with the flip decided by
pasteflow; PILToTensor; ConvertImageDtype(float)) and then through the
model's GeneralizedRCNNTransform.forward. In training mode torch_choice
returns the sizes pasteflow drew ("chosen_min_sizes"), in order.

The pipeline runs twice: once with the tensor layout PILToTensor produces (a
permuted HWC buffer, i.e. channels-last strides) and once with contiguous
CHW tensors (pasteflow's layout). OUT_DIR receives:

    meta.txt         "N C H W" then one line "h w n_boxes has_masks" per image
    images.f32       batched images, contiguous-layout run (N*C*H*W float32)
    images_pil.f32   batched images, PILToTensor-layout run
    boxes<i>.f32     resized boxes of image i (n x 4 float32)
    masks<i>.u8      resized masks of image i (n x h x w uint8)
"""

import json
import os
import sys

import numpy as np
import torch
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.transforms import functional as F


def load_sample(in_dir, spec):
    h, w, c = spec["height"], spec["width"], spec["channels"]
    raw = np.fromfile(os.path.join(in_dir, spec["pixels"]), dtype=np.uint8)
    hwc = torch.from_numpy(raw).view(h, w, c)
    if c == 1:  # PIL convert("RGB") repeats the grey value
        hwc = hwc.repeat(1, 1, 3)

    # ConvertCocoPolysToMask (references/detection/coco_utils.py)
    crowd = spec["iscrowd"]
    keep_ann = [i for i in range(len(spec["bbox"])) if crowd[i] == 0]
    boxes = torch.as_tensor([spec["bbox"][i] for i in keep_ann], dtype=torch.float32).reshape(-1, 4)
    boxes[:, 2:] += boxes[:, :2]
    boxes[:, 0::2].clamp_(min=0, max=w)
    boxes[:, 1::2].clamp_(min=0, max=h)
    keep = (boxes[:, 3] > boxes[:, 1]) & (boxes[:, 2] > boxes[:, 0])
    target = {"boxes": boxes[keep], "labels": torch.ones(int(keep.sum()), dtype=torch.int64)}
    if spec["masks"] is not None:
        n_all = len(spec["bbox"])
        masks = np.fromfile(os.path.join(in_dir, spec["masks"]), dtype=np.uint8).reshape(n_all, h, w)
        masks = torch.from_numpy(masks)[keep_ann]
        target["masks"] = masks[keep]
    return hwc, target


def flip_target(target, width):
    # references/detection/transforms.py RandomHorizontalFlip
    target["boxes"][:, [0, 2]] = width - target["boxes"][:, [2, 0]]
    if "masks" in target:
        target["masks"] = target["masks"].flip(-1)


def run(manifest, in_dir, layout):
    images, targets = [], []
    for spec in manifest["images"]:
        hwc, target = load_sample(in_dir, spec)
        if spec["flip"]:
            hwc = hwc.flip(1).contiguous()  # F.hflip on the PIL image
            flip_target(target, spec["width"])
        if layout == "pil":
            chw = hwc.permute((2, 0, 1))  # F.pil_to_tensor: no copy, channels-last strides
        else:
            chw = hwc.permute((2, 0, 1)).contiguous()
        images.append(F.convert_image_dtype(chw, torch.float))
        targets.append(target)

    transform = GeneralizedRCNNTransform(
        min_size=tuple(manifest["min_size"]),
        max_size=manifest["max_size"],
        image_mean=manifest["mean"],
        image_std=manifest["std"],
        size_divisible=manifest["size_divisible"],
    )
    chosen = iter(manifest.get("chosen_min_sizes", []))

    def forced_choice(k):
        size = next(chosen)
        assert size in k, (size, k)
        return size

    transform.torch_choice = forced_choice
    transform.train(manifest["training"])
    with torch.no_grad():
        image_list, out_targets = transform(images, targets)
    return image_list, out_targets


def main():
    in_dir, out_dir = sys.argv[1], sys.argv[2]
    with open(os.path.join(in_dir, "manifest.json")) as f:
        manifest = json.load(f)
    os.makedirs(out_dir, exist_ok=True)

    image_list, targets = run(manifest, in_dir, "contiguous")
    pil_list, _ = run(manifest, in_dir, "pil")

    batch = image_list.tensors
    lines = [" ".join(str(int(s)) for s in batch.shape)]
    for i, ((h, w), t) in enumerate(zip(image_list.image_sizes, targets)):
        has_masks = "masks" in t
        lines.append(f"{int(h)} {int(w)} {t['boxes'].shape[0]} {int(has_masks)}")
        t["boxes"].contiguous().numpy().astype(np.float32).tofile(os.path.join(out_dir, f"boxes{i}.f32"))
        if has_masks:
            t["masks"].contiguous().numpy().astype(np.uint8).tofile(os.path.join(out_dir, f"masks{i}.u8"))
    batch.contiguous().numpy().tofile(os.path.join(out_dir, "images.f32"))
    pil_list.tensors.contiguous().numpy().tofile(os.path.join(out_dir, "images_pil.f32"))
    with open(os.path.join(out_dir, "meta.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
