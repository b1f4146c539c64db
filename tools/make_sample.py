#!/usr/bin/env python3
"""Derives data/sample/ from coco_mini: the 16 train2017 images with the most
small objects (area < 32^2), their annotations, and the categories in use.
Kept for provenance; run once: tools/make_sample.py SHARED_COCO_MINI OUT_DIR."""
import json, shutil, sys, os

src, out = sys.argv[1], sys.argv[2]
d = json.load(open(os.path.join(src, "annotations/instances_train2017.json")))
small = {}
for a in d["annotations"]:
    if a["area"] < 32 * 32 and not a["iscrowd"]:
        small[a["image_id"]] = small.get(a["image_id"], 0) + 1
ranked = sorted(d["images"], key=lambda im: (-small.get(im["id"], 0), im["id"]))
keep = ranked[:12] + [im for im in ranked if small.get(im["id"], 0) == 0][:4]
ids = {im["id"] for im in keep}
anns = [a for a in d["annotations"] if a["image_id"] in ids]
os.makedirs(os.path.join(out, "images"), exist_ok=True)
for im in keep:
    shutil.copy(os.path.join(src, "train2017", im["file_name"]), os.path.join(out, "images", im["file_name"]))
d["images"] = sorted(keep, key=lambda im: im["id"])
d["annotations"] = anns
with open(os.path.join(out, "annotations.json"), "w") as f:
    json.dump(d, f)
print(len(keep), "images", len(anns), "annotations")
