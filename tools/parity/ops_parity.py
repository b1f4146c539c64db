#!/usr/bin/python3
"""Oracle for pasteflow::model::ops: torchvision's own operators.

Run with Debian's /usr/bin/python3 (python3-torch 1.13.1, python3-torchvision
0.14.1):

    /usr/bin/python3 ops_parity.py OUT_FILE [SEED]

Draws random inputs (seeded), runs torchvision.ops.roi_align (forward and
backward), nms, batched_nms (both internal strategies), box_area, box_iou,
clip_boxes_to_image, remove_small_boxes, BoxCoder.encode_single /
decode_single and roi_heads.paste_masks_in_image on them, and writes inputs
and outputs to OUT_FILE in the "PFTENSOR" format:

    8 bytes   b"PFTENSOR"
    uint32    number of tensors
    per tensor:
      uint32  name length, then the UTF-8 name ("roi_align/3/input", ...)
      uint8   dtype: 0 float32, 1 float64, 2 int64, 3 uint8 (bool)
      uint32  number of dims, then int64 dims
      raw C-order little-endian data

Scalars (thresholds, flags, image sizes) are stored as float64 tensors
("<op>/<case>/params"). All integers little-endian.
"""

import struct
import sys

import torch
import torchvision
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.roi_heads import paste_masks_in_image
from torchvision.ops import boxes as box_ops

DTYPES = {torch.float32: 0, torch.float64: 1, torch.int64: 2, torch.uint8: 3, torch.bool: 3}


class Writer:
    def __init__(self):
        self.items = []

    def add(self, name, t):
        t = t.detach().cpu().contiguous()
        if t.dtype == torch.bool:
            t = t.to(torch.uint8)
        self.items.append((name, t))

    def params(self, name, values):
        self.add(name, torch.tensor([float(v) for v in values], dtype=torch.float64))

    def save(self, path):
        with open(path, "wb") as f:
            f.write(b"PFTENSOR")
            f.write(struct.pack("<I", len(self.items)))
            for name, t in self.items:
                raw = name.encode("utf-8")
                f.write(struct.pack("<I", len(raw)))
                f.write(raw)
                f.write(struct.pack("<B", DTYPES[t.dtype]))
                f.write(struct.pack("<I", t.dim()))
                for d in t.shape:
                    f.write(struct.pack("<q", d))
                f.write(t.numpy().tobytes())


def random_boxes(g, n, size, min_wh=0.0, max_wh=None, dtype=torch.float32):
    max_wh = max_wh if max_wh is not None else size / 2
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * size
    wh = torch.rand(n, 2, generator=g, dtype=torch.float64) * (max_wh - min_wh) + min_wh
    return torch.cat([xy, xy + wh], dim=1).to(dtype)


def roi_align_cases(w, g):
    # (spatial_scale, output (h, w), sampling_ratio, aligned, dtype)
    configs = [
        (1.0, (7, 7), 2, False, torch.float32),
        (1.0, (7, 7), 2, True, torch.float32),
        (0.25, (7, 7), 0, True, torch.float32),
        (0.125, (14, 14), -1, False, torch.float32),
        (0.5, (5, 3), 0, False, torch.float32),
        (0.0625, (14, 14), 2, True, torch.float32),
        (1.0, (4, 6), 3, True, torch.float64),
        (0.25, (7, 7), 0, False, torch.float64),
        (0.3, (7, 7), 2, False, torch.float32),  # scale not a power of two
        (1.0 / 3.0, (5, 5), 0, True, torch.float64),
    ]
    for k, (scale, (ph, pw), sr, aligned, dtype) in enumerate(configs):
        n, c, h, wd = 2, 3, 13 + k, 17 - k
        x = torch.randn(n, c, h, wd, generator=g, dtype=torch.float64).to(dtype)
        img = max(h, wd) / scale
        boxes = random_boxes(g, 40, img, 0.0, img / 2, torch.float64)
        # a few special rois: reaching past the border, degenerate, tiny, whole image
        special = torch.tensor(
            [
                [-img * 0.3, -img * 0.2, img * 0.4, img * 0.5],
                [img * 0.5, img * 0.5, img * 1.3, img * 1.2],
                [img * 0.3, img * 0.3, img * 0.3, img * 0.6],  # zero width
                [img * 0.7, img * 0.2, img * 0.7 + 0.3, img * 0.2 + 0.2],  # tiny
                [0.0, 0.0, img, img],
                [img * 1.2, img * 1.2, img * 1.5, img * 1.6],  # fully outside
                [img * 0.6, img * 0.6, img * 0.4, img * 0.5],  # inverted
            ],
            dtype=torch.float64,
        )
        boxes = torch.cat([boxes, special]).to(dtype)
        idx = torch.randint(0, n, (boxes.shape[0], 1), generator=g).to(dtype)
        rois = torch.cat([idx, boxes], dim=1)
        xin = x.clone().requires_grad_(True)
        out = torchvision.ops.roi_align(xin, rois, (ph, pw), scale, sr, aligned)
        gout = torch.randn(out.shape, generator=g, dtype=torch.float64).to(dtype)
        out.backward(gout)
        name = f"roi_align/{k}"
        w.add(name + "/input", x)
        w.add(name + "/rois", rois)
        w.add(name + "/grad_output", gout)
        w.add(name + "/output", out)
        w.add(name + "/grad_input", xin.grad)
        w.params(name + "/params", [scale, ph, pw, sr, int(aligned)])
    return len(configs)


def nms_cases(w, g):
    k = 0
    for n, thr, quant in [(60, 0.5, 0), (200, 0.3, 10), (200, 0.7, 3), (500, 0.5, 0), (300, 0.0, 5), (1, 0.5, 0), (0, 0.5, 0)]:
        boxes = random_boxes(g, n, 100.0, 1.0, 40.0)
        if n >= 10:
            # exact duplicates and duplicates with the same score
            boxes[n // 2 : n // 2 + 5] = boxes[0:5]
        scores = torch.rand(n, generator=g)
        if quant:
            scores = torch.floor(scores * quant) / quant  # many ties
        if n >= 10:
            scores[n // 2 : n // 2 + 3] = scores[0:3]
        if k == 2:
            boxes, scores = boxes.double(), scores.double()
        keep = torchvision.ops.nms(boxes, scores, thr)
        name = f"nms/{k}"
        w.add(name + "/boxes", boxes)
        w.add(name + "/scores", scores)
        w.add(name + "/keep", keep)
        w.params(name + "/params", [thr])
        k += 1
    return k


def batched_nms_cases(w, g):
    k = 0
    # 200 boxes (numel 800, coordinate trick) and 1500 (numel 6000, vanilla).
    for n, thr, quant, classes in [(200, 0.5, 0, 4), (200, 0.6, 4, 3), (1500, 0.5, 0, 5), (1500, 0.4, 8, 7), (0, 0.5, 0, 1)]:
        boxes = random_boxes(g, n, 200.0, 1.0, 60.0)
        scores = torch.rand(n, generator=g)
        if quant:
            scores = torch.floor(scores * quant) / quant
        idxs = torch.randint(0, classes, (n,), generator=g)
        keep = torchvision.ops.batched_nms(boxes, scores, idxs, thr)
        trick = box_ops._batched_nms_coordinate_trick(boxes, scores, idxs, thr)
        name = f"batched_nms/{k}"
        w.add(name + "/boxes", boxes)
        w.add(name + "/scores", scores)
        w.add(name + "/idxs", idxs)
        w.add(name + "/keep", keep)
        w.add(name + "/keep_trick", trick)
        if n > 0:
            w.add(name + "/keep_vanilla", box_ops._batched_nms_vanilla(boxes, scores, idxs, thr))
        w.params(name + "/params", [thr])
        k += 1
    return k


def box_cases(w, g):
    b1 = random_boxes(g, 37, 300.0, 0.0, 80.0)
    b2 = random_boxes(g, 23, 300.0, 0.0, 80.0)
    b2[3] = b1[5]
    w.add("boxes/b1", b1)
    w.add("boxes/b2", b2)
    w.add("boxes/area", box_ops.box_area(b1))
    w.add("boxes/iou", box_ops.box_iou(b1, b2))
    big = (random_boxes(g, 50, 400.0, 0.0, 200.0) - 100.0)
    w.add("boxes/big", big)
    w.add("boxes/clipped", box_ops.clip_boxes_to_image(big, (240, 310)))
    w.add("boxes/small_keep", box_ops.remove_small_boxes(b1, 10.5))
    w.params("boxes/params", [240, 310, 10.5])
    # box coder, float32, two weight sets
    anchors = random_boxes(g, 64, 500.0, 2.0, 120.0)
    gt = random_boxes(g, 64, 500.0, 2.0, 120.0)
    for k, weights in enumerate([(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)]):
        coder = det_utils.BoxCoder(weights)
        codes = coder.encode_single(gt, anchors)
        rel = torch.randn(64, 8, generator=g) * 2.0
        rel[0, 2] = 50.0  # beyond bbox_xform_clip
        w.add(f"coder/{k}/anchors", anchors)
        w.add(f"coder/{k}/gt", gt)
        w.add(f"coder/{k}/codes", codes)
        w.add(f"coder/{k}/rel", rel)
        w.add(f"coder/{k}/decoded", coder.decode_single(rel, anchors))
        w.add(f"coder/{k}/decoded_list", coder.decode(rel, [anchors[:20], anchors[20:]]))
        w.params(f"coder/{k}/params", list(weights))
    return 2


def paste_cases(w, g):
    k = 0
    for n, m, im_h, im_w, padding in [(12, 28, 120, 160, 1), (6, 14, 57, 43, 1), (5, 28, 80, 80, 2), (0, 28, 30, 40, 1)]:
        masks = torch.rand(n, 1, m, m, generator=g)
        # inside the image (torchvision itself fails on boxes wholly outside it)
        boxes = random_boxes(g, n, 1.0, 0.0, 0.6)
        boxes = box_ops.clip_boxes_to_image(boxes * torch.tensor([im_w, im_h, im_w, im_h]), (im_h, im_w))
        if n >= 4:
            boxes[0] = torch.tensor([0.0, 0.0, im_w, im_h])  # whole image
            boxes[1] = torch.tensor([-7.5, -3.2, 20.4, 11.0])  # past the top-left
            boxes[2] = torch.tensor([im_w - 10.0, im_h - 12.0, im_w + 9.0, im_h + 4.0])  # past the bottom-right
            boxes[3] = torch.tensor([5.2, 6.0, 5.4, 6.1])  # tiny
        masks_copy = masks.clone()
        out = paste_masks_in_image(masks_copy, boxes, (im_h, im_w), padding=padding)
        name = f"paste/{k}"
        w.add(name + "/masks", masks)
        w.add(name + "/boxes", boxes)
        w.add(name + "/out", out)
        w.params(name + "/params", [im_h, im_w, padding])
        k += 1
    return k


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: ops_parity.py OUT_FILE [SEED]")
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 20240611
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(seed)
    w = Writer()
    counts = [
        roi_align_cases(w, g),
        nms_cases(w, g),
        batched_nms_cases(w, g),
        box_cases(w, g),
        paste_cases(w, g),
    ]
    w.params("counts", counts)
    w.save(sys.argv[1])


if __name__ == "__main__":
    main()
