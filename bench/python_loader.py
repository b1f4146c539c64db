#!/usr/bin/python3
"""images/s into a Python training loop: pasteflow.Loader vs its C++
consumer vs torchvision's DataLoader + SimpleCopyPaste, in one run.

    PYTHONPATH=build/python /usr/bin/python3 bench/python_loader.py \
        [--annotations data/sample/annotations.json --images data/sample/images]
        [--config configs/base.yaml] [--seconds 10] [--rounds 3]
        [--batch-size 2] [--threads 2] [--max-images N] [--json] [--out FILE]

Variants (each measured once per round; rounds interleave them, the order
rotated every two rounds and reversed every other round, because the
machine is shared and noisy):

  pf_torchvision_py   pasteflow.Loader(output="torchvision"), iterated in
                      Python: (list of float32 [3, h, w] in [0, 1], targets)
  pf_torchvision_cxx  the same loader's C++ consumer, loader._c.consume():
                      batches taken and dropped in C++, no Python objects
  pf_model_py         pasteflow.Loader(output="model"): normalised, resized
                      (800/1333), padded [N, 3, H, W] batch, in Python
  pf_model_cxx        its C++ consumer
  tv_dataloader       torch.utils.data.DataLoader(num_workers=--workers,
                      collate_fn = SimpleCopyPaste, as torchvision's
                      references/detection/train.py --use-copypaste), worker
                      processes started every epoch (persistent_workers=False,
                      the references' setting)
  tv_dataloader_persistent   the same with persistent_workers=True

pasteflow's config: --config plus the overrides loader.threads=--threads,
loader.batch_size=--batch-size, sampler.aug_mode=replace (every image's copy
augmented), augment.strategy=all (paste every eligible small object), and
any --set KEY=VALUE. torchvision's pipeline: a map-style dataset over the
same COCO json (every image, reshuffled each epoch: shuffle=True, as
pasteflow's sampler; drop_last=False), PIL decode + convert("RGB") (as torchvision.datasets.
CocoDetection), ConvertCocoPolysToMask (references/detection/coco_utils.py,
with pasteflow.mask standing in for pycocotools.mask), PILToTensor,
ConvertImageDtype(float), batch collated by SimpleCopyPaste(blending=True,
bilinear). train.py only allows --use-copypaste with the "lsj" augmentation
(ScaleJitter to 1024 + FixedSizeCrop); that resize is left out here, as
pasteflow's "torchvision" output does not resize either: this makes the
torchvision side cheaper than the references' real --use-copypaste run.
The two copy-paste algorithms differ (pasteflow: the paper's small-object
pasting, every image with small objects; SimpleCopyPaste: a random subset
of the neighbour image's objects, resized and Gaussian-blended): this
benchmark compares loader throughput, not augmentation quality.

Honesty rules: every variant runs one untimed epoch first (warm-up: page
cache, thread pools, lazy initialisation, the persistent workers); a
measurement is whole epochs, repeated until --seconds have passed
(time.perf_counter), and counts the images actually delivered (len(targets)
of every batch; the Python loop reads images[0].shape and nothing else, no
model). A pasteflow measurement starts a fresh flow graph at the next
epoch's first batch (timed, like the DataLoader's worker start-up) and
closes it afterwards (untimed), so no loader prefetches while another
variant is measured and none starts with batches ready. torch threads:
the main process uses --torch-threads (default 1: pasteflow's graph threads
call ATen, and the two cores are already used by --threads graph threads or
by the DataLoader's workers); each DataLoader worker sets
torch.set_num_threads(1) in its worker_init_fn (PyTorch's own default in
workers). Reported: per-variant medians of images/s over the rounds, the
Python/C++ ratio per output mode (median of the per-round ratios, and the
ratio of the medians), pasteflow (torchvision output, Python loop) over the
torchvision DataLoader, and machine facts.
"""
# SimpleCopyPaste, _copy_paste, PILToTensor, ConvertImageDtype, Compose,
# convert_coco_poly_to_mask and ConvertCocoPolysToMask below are ported from
# torchvision's references/detection (transforms.py, coco_utils.py,
# train.py's copypaste_collate_fn; v0.13/v0.14 era, which introduced
# SimpleCopyPaste; torchvision 0.14 does not ship them as a package).
# Copyright (c) Soumith Chintala 2016, and the torchvision authors; BSD
# 3-Clause License (https://github.com/pytorch/vision/blob/main/LICENSE).
# Changes: pycocotools.mask replaced by pasteflow.mask (its bit-exact
# drop-in), keypoint handling dropped, type annotations trimmed.
import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from typing import Dict, List, Tuple

import numpy as np
import PIL
import torch
import torch.utils.data
import torchvision
from PIL import Image
from torch import Tensor
from torchvision import ops
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F

import pasteflow
from pasteflow import mask as coco_mask  # pycocotools.mask stand-in


# --------------------------------------------------------------------------
# torchvision references/detection, ported (see the attribution above).
# --------------------------------------------------------------------------
def convert_coco_poly_to_mask(segmentations, height, width):
    masks = []
    for polygons in segmentations:
        rles = coco_mask.frPyObjects(polygons, height, width)
        mask = coco_mask.decode(rles)
        if len(mask.shape) < 3:
            mask = mask[..., None]
        mask = torch.as_tensor(mask, dtype=torch.uint8)
        mask = mask.any(dim=2)
        masks.append(mask)
    if masks:
        masks = torch.stack(masks, dim=0)
    else:
        masks = torch.zeros((0, height, width), dtype=torch.uint8)
    return masks


class ConvertCocoPolysToMask:
    def __call__(self, image, target):
        w, h = image.size

        image_id = target["image_id"]
        image_id = torch.tensor([image_id])

        anno = target["annotations"]

        anno = [obj for obj in anno if obj["iscrowd"] == 0]

        boxes = [obj["bbox"] for obj in anno]
        # guard against no boxes via resizing
        boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        boxes[:, 0::2].clamp_(min=0, max=w)
        boxes[:, 1::2].clamp_(min=0, max=h)

        classes = [obj["category_id"] for obj in anno]
        classes = torch.tensor(classes, dtype=torch.int64)

        segmentations = [obj["segmentation"] for obj in anno]
        masks = convert_coco_poly_to_mask(segmentations, h, w)

        keep = (boxes[:, 3] > boxes[:, 1]) & (boxes[:, 2] > boxes[:, 0])
        boxes = boxes[keep]
        classes = classes[keep]
        masks = masks[keep]

        target = {}
        target["boxes"] = boxes
        target["labels"] = classes
        target["masks"] = masks
        target["image_id"] = image_id

        # for conversion to coco api
        area = torch.tensor([obj["area"] for obj in anno])
        iscrowd = torch.tensor([obj["iscrowd"] for obj in anno])
        target["area"] = area
        target["iscrowd"] = iscrowd

        return image, target


class Compose:
    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, image, target):
        for t in self.transforms:
            image, target = t(image, target)
        return image, target


class PILToTensor(torch.nn.Module):
    def forward(self, image, target=None):
        image = F.pil_to_tensor(image)
        return image, target


class ConvertImageDtype(torch.nn.Module):
    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.dtype = dtype

    def forward(self, image, target=None):
        image = F.convert_image_dtype(image, self.dtype)
        return image, target


def _copy_paste(
    image: torch.Tensor,
    target: Dict[str, Tensor],
    paste_image: torch.Tensor,
    paste_target: Dict[str, Tensor],
    blending: bool = True,
    resize_interpolation: F.InterpolationMode = F.InterpolationMode.BILINEAR,
) -> Tuple[torch.Tensor, Dict[str, Tensor]]:

    # Random paste targets selection:
    num_masks = len(paste_target["masks"])

    if num_masks < 1:
        # Such degerante case with num_masks=0 can happen with LSJ
        # Let's just return (image, target)
        return image, target

    # We have to please torch script by explicitly specifying dtype as torch.long
    random_selection = torch.randint(0, num_masks, (num_masks,), device=paste_image.device)
    random_selection = torch.unique(random_selection).to(torch.long)

    paste_masks = paste_target["masks"][random_selection]
    paste_boxes = paste_target["boxes"][random_selection]
    paste_labels = paste_target["labels"][random_selection]

    masks = target["masks"]

    # We resize source and paste data if they have different sizes
    # This is something we introduced here as originally the algorithm works
    # on equal-sized data (for example, coming from LSJ data augmentations)
    size1 = image.shape[-2:]
    size2 = paste_image.shape[-2:]
    if size1 != size2:
        paste_image = F.resize(paste_image, size1, interpolation=resize_interpolation)
        paste_masks = F.resize(paste_masks, size1, interpolation=F.InterpolationMode.NEAREST)
        # resize bboxes:
        ratios = torch.tensor((size1[1] / size2[1], size1[0] / size2[0]), device=paste_boxes.device)
        paste_boxes = paste_boxes.view(-1, 2, 2).mul(ratios).view(paste_boxes.shape)

    paste_alpha_mask = paste_masks.sum(dim=0) > 0

    if blending:
        paste_alpha_mask = F.gaussian_blur(
            paste_alpha_mask.unsqueeze(0),
            kernel_size=(5, 5),
            sigma=[
                2.0,
            ],
        )

    # Copy-paste images:
    image = (image * (~paste_alpha_mask)) + (paste_image * paste_alpha_mask)

    # Copy-paste masks:
    masks = masks * (~paste_alpha_mask)
    non_all_zero_masks = masks.sum((-1, -2)) > 0
    masks = masks[non_all_zero_masks]

    # Do a shallow copy of the target dict
    out_target = {k: v for k, v in target.items()}

    out_target["masks"] = torch.cat([masks, paste_masks])

    # Copy-paste boxes and labels
    boxes = ops.masks_to_boxes(masks)
    out_target["boxes"] = torch.cat([boxes, paste_boxes])

    labels = target["labels"][non_all_zero_masks]
    out_target["labels"] = torch.cat([labels, paste_labels])

    # Update additional optional keys: area and iscrowd if exist
    if "area" in target:
        out_target["area"] = out_target["masks"].sum((-1, -2)).to(torch.float32)

    if "iscrowd" in target and "iscrowd" in paste_target:
        # target['iscrowd'] size can be differ from mask size (non_all_zero_masks)
        # For example, if previous transforms geometrically modifies masks/boxes/labels but
        # does not update "iscrowd"
        if len(target["iscrowd"]) == len(non_all_zero_masks):
            iscrowd = target["iscrowd"][non_all_zero_masks]
            paste_iscrowd = paste_target["iscrowd"][random_selection]
            out_target["iscrowd"] = torch.cat([iscrowd, paste_iscrowd])

    # Check for degenerated boxes and remove them
    boxes = out_target["boxes"]
    degenerate_boxes = boxes[:, 2:] <= boxes[:, :2]
    if degenerate_boxes.any():
        valid_targets = ~degenerate_boxes.any(dim=1)

        out_target["boxes"] = boxes[valid_targets]
        out_target["masks"] = out_target["masks"][valid_targets]
        out_target["labels"] = out_target["labels"][valid_targets]

        if "area" in out_target:
            out_target["area"] = out_target["area"][valid_targets]
        if "iscrowd" in out_target and len(out_target["iscrowd"]) == len(valid_targets):
            out_target["iscrowd"] = out_target["iscrowd"][valid_targets]

    return image, out_target


class SimpleCopyPaste(torch.nn.Module):
    def __init__(self, blending=True, resize_interpolation=F.InterpolationMode.BILINEAR):
        super().__init__()
        self.resize_interpolation = resize_interpolation
        self.blending = blending

    def forward(
        self, images: List[torch.Tensor], targets: List[Dict[str, Tensor]]
    ) -> Tuple[List[torch.Tensor], List[Dict[str, Tensor]]]:
        torch._assert(
            isinstance(images, (list, tuple)) and all([isinstance(v, torch.Tensor) for v in images]),
            "images should be a list of tensors",
        )
        torch._assert(
            isinstance(targets, (list, tuple)) and len(images) == len(targets),
            "targets should be a list of the same size as images",
        )
        for target in targets:
            # Can not check for instance type dict with inside torch.jit.script
            # torch._assert(isinstance(target, dict), "targets item should be a dict")
            for k in ["masks", "boxes", "labels"]:
                torch._assert(k in target, f"Key {k} should be present in targets")
                torch._assert(isinstance(target[k], torch.Tensor), f"Value for the key {k} should be a tensor")

        # images = [t1, t2, ..., tN]
        # Let's define paste_images as shifted list of input images
        # paste_images = [t2, t3, ..., tN, t1]
        # FYI: in TF they mix data on the dataset level
        images_rolled = images[-1:] + images[:-1]
        targets_rolled = targets[-1:] + targets[:-1]

        output_images: List[torch.Tensor] = []
        output_targets: List[Dict[str, Tensor]] = []

        for image, target, paste_image, paste_target in zip(images, targets, images_rolled, targets_rolled):
            output_image, output_data = _copy_paste(
                image,
                target,
                paste_image,
                paste_target,
                blending=self.blending,
                resize_interpolation=self.resize_interpolation,
            )
            output_images.append(output_image)
            output_targets.append(output_data)

        return output_images, output_targets


def collate_fn(batch):  # references/detection/utils.py
    return tuple(zip(*batch))


def copypaste_collate_fn(batch):  # references/detection/train.py
    copypaste = SimpleCopyPaste(blending=True, resize_interpolation=InterpolationMode.BILINEAR)
    return copypaste(*collate_fn(batch))


# --------------------------------------------------------------------------
# The torchvision-side dataset: torchvision.datasets.CocoDetection +
# references' CocoDetection wrapper, without pycocotools' COCO index.
# --------------------------------------------------------------------------
class CocoDetection(torch.utils.data.Dataset):
    def __init__(self, img_folder, ann_file, transforms):
        with open(ann_file, "rb") as f:
            coco = json.load(f)
        self.root = img_folder
        self.images = sorted(coco["images"], key=lambda im: im["id"])
        by_image = {}
        for a in coco.get("annotations", []):
            by_image.setdefault(a["image_id"], []).append(a)
        self.annotations = [by_image.get(im["id"], []) for im in self.images]
        self._transforms = transforms

    def __len__(self):
        return len(self.images)

    def __getitem__(self, idx):
        info = self.images[idx]
        img = Image.open(os.path.join(self.root, info["file_name"])).convert("RGB")
        target = dict(image_id=info["id"], annotations=self.annotations[idx])
        return self._transforms(img, target)


def _worker_init(_):
    torch.set_num_threads(1)


# --------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------
class Result:
    def __init__(self):
        self.images = 0
        self.batches = 0
        self.epochs = 0
        self.seconds = 0.0
        self.cpu_seconds = 0.0  # this process, every thread (not the DataLoader's worker processes)
        self.start_seconds = 0.0  # pasteflow: the fresh graph's construction (inside `seconds`)

    def rate(self):
        return self.images / self.seconds if self.seconds > 0 else 0.0


def _cpu():
    t = os.times()
    return t.user + t.system


def run_pf_python(loader, seconds, warmup=False):
    """Whole epochs of `for images, targets in loader` until `seconds` passed."""
    c = loader._c
    r = Result()
    cpu0 = _cpu()
    t0 = time.perf_counter()
    loader.set_epoch(c.epoch)  # a fresh graph at the next epoch's first batch (closed after the last run)
    r.start_seconds = time.perf_counter() - t0
    while True:
        for images, targets in loader:
            _ = images[0].shape  # the minimal touch
            if len(images) != len(targets):
                raise RuntimeError(f"batch with {len(images)} images and {len(targets)} targets")
            r.images += len(targets)
            r.batches += 1
        r.epochs += 1
        if warmup or time.perf_counter() - t0 >= seconds:
            break
    r.seconds = time.perf_counter() - t0
    r.cpu_seconds = _cpu() - cpu0
    c.close()  # untimed: no prefetching while other variants run
    return r


def run_pf_cxx(loader, seconds, warmup=False):
    """Whole epochs of the C++ consumer until `seconds` passed."""
    c = loader._c
    r = Result()
    cpu0 = _cpu()
    t0 = time.perf_counter()
    c.seek(c.epoch, 0)  # the same fresh graph as run_pf_python's set_epoch
    r.start_seconds = time.perf_counter() - t0
    while True:
        n = c.consume(1 << 62)  # stops at the epoch's end
        if n == 0:
            raise RuntimeError("the C++ consumer delivered an empty epoch")
        r.images += n
        r.epochs += 1
        if warmup or time.perf_counter() - t0 >= seconds:
            break
    r.seconds = time.perf_counter() - t0
    r.cpu_seconds = _cpu() - cpu0
    c.close()
    return r


def run_dataloader(dl, seconds, warmup=False):
    r = Result()
    cpu0 = _cpu()
    t0 = time.perf_counter()
    while True:
        for images, targets in dl:
            _ = images[0].shape
            if len(images) != len(targets):
                raise RuntimeError(f"batch with {len(images)} images and {len(targets)} targets")
            r.images += len(targets)
            r.batches += 1
        r.epochs += 1
        if warmup or time.perf_counter() - t0 >= seconds:
            break
    r.seconds = time.perf_counter() - t0
    r.cpu_seconds = _cpu() - cpu0
    return r


# --------------------------------------------------------------------------
def _parse_set(items):
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _subset(annotations, n, tmpdir):
    """The first n images (by id) of a COCO json and their annotations, written under tmpdir."""
    with open(annotations, "rb") as f:
        coco = json.load(f)
    images = sorted(coco["images"], key=lambda im: im["id"])[:n]
    keep = {im["id"] for im in images}
    coco["images"] = images
    coco["annotations"] = [a for a in coco.get("annotations", []) if a["image_id"] in keep]
    path = os.path.join(tmpdir, f"subset_{n}_{os.path.basename(annotations)}")
    with open(path, "w") as f:
        json.dump(coco, f)
    return path, len(images), len(coco["annotations"])


def _median(xs):
    return statistics.median(xs) if xs else float("nan")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--annotations", default="data/sample/annotations.json")
    p.add_argument("--images", default="data/sample/images")
    p.add_argument("--config", default="configs/base.yaml")
    p.add_argument("--max-images", type=int, default=0,
                   help="use only the first N images (by id): a subset json is written to a temporary "
                        "directory under /tmp and removed at the end")
    p.add_argument("--seconds", type=float, default=10.0, help="per measurement (whole epochs until then)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--threads", type=int, default=2, help="pasteflow's loader.threads")
    p.add_argument("--workers", type=int, default=-1, help="DataLoader num_workers (default: --threads)")
    p.add_argument("--torch-threads", type=int, default=1, help="torch.set_num_threads in the main process")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra pasteflow config override (YAML/JSON value), repeatable")
    p.add_argument("--variants", default="all",
                   help="comma-separated subset of: pf_torchvision_py, pf_torchvision_cxx, pf_model_py, "
                        "pf_model_cxx, tv_dataloader, tv_dataloader_persistent")
    p.add_argument("--json", action="store_true", help="print one final JSON line with every figure")
    p.add_argument("--out", help="also write that JSON to this file")
    args = p.parse_args()
    workers = args.threads if args.workers < 0 else args.workers

    torch_threads_default = torch.get_num_threads()
    torch.set_num_threads(args.torch_threads)
    torch.manual_seed(0)

    all_variants = ["pf_torchvision_py", "pf_torchvision_cxx", "pf_model_py", "pf_model_cxx",
                    "tv_dataloader", "tv_dataloader_persistent"]
    variants = all_variants if args.variants == "all" else [v.strip() for v in args.variants.split(",")]
    for v in variants:
        if v not in all_variants:
            raise SystemExit(f"unknown variant {v!r}")

    tmp = tempfile.TemporaryDirectory(prefix="pf_bench_", dir="/tmp")
    annotations = args.annotations
    if args.max_images > 0:
        annotations, n_img, n_ann = _subset(args.annotations, args.max_images, tmp.name)
        print(f"subset: {n_img} images, {n_ann} annotations -> {annotations}", flush=True)

    overrides = {"loader.threads": args.threads, "loader.batch_size": args.batch_size,
                 "sampler.aug_mode": "replace", "augment.strategy": "all"}
    overrides.update(_parse_set(args.set))

    runners = {}
    loaders = {}
    for mode in ("torchvision", "model"):
        if f"pf_{mode}_py" in variants or f"pf_{mode}_cxx" in variants:
            loaders[mode] = pasteflow.Loader(args.config, overrides=overrides, output=mode,
                                             annotations=annotations, images=args.images)
            runners[f"pf_{mode}_py"] = (run_pf_python, loaders[mode])
            runners[f"pf_{mode}_cxx"] = (run_pf_cxx, loaders[mode])
    any_loader = next(iter(loaders.values()), None)
    pf_epoch_images = any_loader._c.samples_per_epoch(0) if any_loader else None

    dataset = CocoDetection(args.images, annotations,
                            Compose([ConvertCocoPolysToMask(), PILToTensor(), ConvertImageDtype(torch.float)]))
    for name, persistent in (("tv_dataloader", False), ("tv_dataloader_persistent", True)):
        if name in variants:
            dl = torch.utils.data.DataLoader(
                dataset, batch_size=args.batch_size, shuffle=True, drop_last=False, num_workers=workers,
                collate_fn=copypaste_collate_fn, worker_init_fn=_worker_init,
                persistent_workers=persistent and workers > 0)
            runners[name] = (run_dataloader, dl)

    facts = {
        "nproc": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)),
        "loadavg_start": list(os.getloadavg()),
        "torch_threads_default": torch_threads_default,
        "torch_threads_main": torch.get_num_threads(),
        "torch_threads_dataloader_workers": 1,
        "torch_parallel_backend": "OpenMP" if "OpenMP" in torch.__config__.parallel_info() else "other",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "PIL": PIL.__version__,
        "pasteflow": pasteflow.__version__,
        "machine": platform.machine(),
    }
    print(f"data: {annotations} ({len(dataset)} images; pasteflow epoch: {pf_epoch_images} samples), "
          f"images {args.images}", flush=True)
    print(f"config: {args.config} + {overrides}; batch {args.batch_size}; pasteflow threads {args.threads}; "
          f"DataLoader workers {workers}; torch threads main {torch.get_num_threads()} (default was "
          f"{torch_threads_default}), workers 1; nproc {facts['nproc']}", flush=True)

    # Warm-up: one untimed epoch per variant.
    warm = {}
    for v in variants:
        fn, obj = runners[v]
        r = fn(obj, 0.0, warmup=True)
        warm[v] = {"images": r.images, "seconds": round(r.seconds, 3)}
        print(f"warm-up {v:26s} {r.images:5d} images in {r.seconds:7.2f} s", flush=True)
    if pf_epoch_images is not None and "tv_dataloader" in warm and warm["tv_dataloader"]["images"] != pf_epoch_images:
        print(f"note: epochs differ: pasteflow {pf_epoch_images} samples, DataLoader "
              f"{warm['tv_dataloader']['images']} images", flush=True)

    per = {v: [] for v in variants}
    for rnd in range(args.rounds):
        # Rotated every round and reversed every other round, so that each
        # Python/C++ pair runs in both orders (exactly balanced for even
        # --rounds) and no variant always follows the same neighbour.
        k = (rnd // 2) % len(variants)
        order = variants[k:] + variants[:k]
        if rnd % 2 == 1:
            order = order[::-1]
        for v in order:
            fn, obj = runners[v]
            r = fn(obj, args.seconds)
            per[v].append(r)
            print(f"round {rnd + 1}/{args.rounds} {v:26s} {r.rate():8.2f} images/s  ({r.images} images, "
                  f"{r.epochs} epochs, {r.seconds:.2f} s, process cpu {r.cpu_seconds / max(r.images, 1) * 1e3:.1f} "
                  f"ms/image)", flush=True)

    for l in loaders.values():
        l.close()

    out = {"benchmark": "python_loader", "annotations": args.annotations, "images": args.images,
           "max_images": args.max_images, "config": args.config, "overrides": overrides,
           "batch_size": args.batch_size, "threads": args.threads, "dataloader_workers": workers,
           "seconds": args.seconds, "rounds": args.rounds, "epoch_images": {v: warm[v]["images"] for v in variants},
           "images_per_s": {}, "images_per_s_rounds": {}, "cpu_ms_per_image": {}, "ratios": {}}
    for v in variants:
        rates = [r.rate() for r in per[v]]
        out["images_per_s"][v] = round(_median(rates), 3)
        out["images_per_s_rounds"][v] = [round(x, 3) for x in rates]
        if v.startswith("pf_"):
            out["cpu_ms_per_image"][v] = round(_median([r.cpu_seconds / max(r.images, 1) * 1e3 for r in per[v]]), 2)
    for mode in ("torchvision", "model"):
        py, cx = f"pf_{mode}_py", f"pf_{mode}_cxx"
        if py in per and cx in per:
            paired = [a.rate() / b.rate() for a, b in zip(per[py], per[cx])]
            out["ratios"][f"python_over_cxx_{mode}"] = round(_median(paired), 4)
            out["ratios"][f"python_over_cxx_{mode}_of_medians"] = round(
                out["images_per_s"][py] / out["images_per_s"][cx], 4)
            out["ratios"][f"python_over_cxx_{mode}_rounds"] = [round(x, 4) for x in paired]
    for dl in ("tv_dataloader", "tv_dataloader_persistent"):
        for pf in ("pf_torchvision_py", "pf_model_py"):
            if dl in per and pf in per:
                paired = [a.rate() / b.rate() for a, b in zip(per[pf], per[dl])]
                out["ratios"][f"{pf}_over_{dl}"] = round(_median(paired), 3)
    facts["loadavg_end"] = list(os.getloadavg())
    out["machine"] = facts

    print("\nmedian images/s over %d rounds of %.0f s:" % (args.rounds, args.seconds))
    for v in variants:
        extra = f"   (cpu {out['cpu_ms_per_image'][v]:.1f} ms/image in this process)" if v in out["cpu_ms_per_image"] else ""
        print(f"  {v:26s} {out['images_per_s'][v]:9.2f}{extra}")
    print("ratios (median of per-round ratios):")
    for k, val in out["ratios"].items():
        if not k.endswith("_rounds") and not k.endswith("_of_medians"):
            print(f"  {k:52s} {val:.3f}")
    for mode in ("torchvision", "model"):
        key = f"python_over_cxx_{mode}"
        if key in out["ratios"]:
            verdict = "meets" if out["ratios"][key] >= 0.95 else "MISSES"
            print(f"  python/cxx {mode}: {out['ratios'][key]:.3f} {verdict} the 0.95 target "
                  f"(per round: {out['ratios'][key + '_rounds']})")
    print(f"load average start {facts['loadavg_start']} end {facts['loadavg_end']}", flush=True)
    text = json.dumps(out, sort_keys=True)
    if args.out:
        # Atomically: a temporary file beside it, then a rename (no half-written file).
        out_dir = os.path.dirname(os.path.abspath(args.out))
        fd, part = tempfile.mkstemp(prefix=".python_loader.", dir=out_dir)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text + "\n")
            os.replace(part, args.out)
        except BaseException:
            os.unlink(part)
            raise
    if args.json:
        print(text)
    tmp.cleanup()


if __name__ == "__main__":
    main()
