#!/usr/bin/python3
"""Two prediction runs of the same model compared (e.g. fp32 and bf16 inference).

    tools/compare_results.py GT.json A/ B/

A/ and B/ are `pasteflow predict` output directories (results.json); GT.json
is the COCO file they were predicted on. Prints the COCO numbers of both
(evaluated by `pasteflow eval`, found next to this script in ../build unless
PASTEFLOW is set) and matches B's detections to A's per image and category
(greedily by A's score, box IoU >= 0.5): how many match, their box IoU,
score and coordinate differences. Standard library only.
"""
import json
import os
import subprocess
import sys
from collections import defaultdict

NAMES = ["AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
         "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large"]


def coco_stats(pasteflow, gt, results, iou_type):
    out = subprocess.run([pasteflow, "eval", "--gt", gt, "--results", results, "--type", iou_type, "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["stats"]


def box_iou(p, q):
    x0, y0 = max(p[0], q[0]), max(p[1], q[1])
    x1, y1 = min(p[0] + p[2], q[0] + q[2]), min(p[1] + p[3], q[1] + q[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = p[2] * p[3] + q[2] * q[3] - inter
    return inter / union if union > 0 else 0.0


def percentile(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100.0 * (len(s) - 1))))] if s else float("nan")


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    gt, a_dir, b_dir = sys.argv[1:]
    here = os.path.dirname(os.path.abspath(__file__))
    pasteflow = os.environ.get("PASTEFLOW", os.path.join(here, "..", "build", "pasteflow"))
    a_res, b_res = os.path.join(a_dir, "results.json"), os.path.join(b_dir, "results.json")
    for iou_type in ("bbox", "segm"):
        sa, sb = coco_stats(pasteflow, gt, a_res, iou_type), coco_stats(pasteflow, gt, b_res, iou_type)
        print(iou_type + ": " + ", ".join(f"{n} {x:.4f} / {y:.4f} ({y - x:+.4f})"
                                          for n, x, y in zip(NAMES, sa, sb) if n in
                                          ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AR100")))
    with open(a_res) as f:
        ra = json.load(f)
    with open(b_res) as f:
        rb = json.load(f)
    by_image = defaultdict(list)
    for d in rb:
        by_image[d["image_id"]].append(d)
    used = set()
    ious, scores, coords = [], [], []
    for d in sorted(ra, key=lambda d: -d["score"]):
        best, best_j = -1.0, None
        for j, e in enumerate(by_image[d["image_id"]]):
            if (d["image_id"], j) in used or e["category_id"] != d["category_id"]:
                continue
            v = box_iou(d["bbox"], e["bbox"])
            if v > best:
                best, best_j = v, j
        if best >= 0.5:
            used.add((d["image_id"], best_j))
            e = by_image[d["image_id"]][best_j]
            ious.append(best)
            scores.append(abs(e["score"] - d["score"]))
            coords.append(max(abs(e["bbox"][k] - d["bbox"][k]) for k in range(4)))
    print(f"detections: {len(ra)} / {len(rb)}; {len(ious)} of A's matched in B at box IoU >= 0.5")
    if ious:
        print(f"matched: box IoU median {percentile(ious, 50):.4f} (5th percentile {percentile(ious, 5):.4f}); "
              f"|score difference| median {percentile(scores, 50):.4f}, max {max(scores):.4f}; "
              f"largest coordinate difference median {percentile(coords, 50):.3f} px "
              f"(95th percentile {percentile(coords, 95):.3f} px)")


if __name__ == "__main__":
    main()
