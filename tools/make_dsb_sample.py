#!/usr/bin/env python3
"""Selects and copies the bundled demo sample data/dsb_sample/ from DSB 2018 stage1_train.

Rule (deterministic, recorded in data/dsb_sample/README.md):
  1. import the whole of stage1_train: pasteflow import masks STAGE1_TRAIN -o ALL.json
     (each image record carries "modality": fluorescence / brightfield / colour);
  2. quota per modality = max(1, round(40 * its share of the 664 images));
  3. candidates of a modality: its images whose larger side is <= 360 px, or, when it has
     none, its images of the smallest pixel count;
  4. within a modality, candidates ordered by sha256(folder id) in hex; the first `quota` are taken;
  5. each chosen folder (images/ and masks/) is copied unchanged.
Usage: make_dsb_sample.py STAGE1_TRAIN ALL.json OUT_DIR
"""
import collections
import hashlib
import json
import os
import shutil
import sys


def main():
    src, all_json, out = sys.argv[1:4]
    d = json.load(open(all_json))
    n_images = len(d["images"])
    by_modality = collections.defaultdict(list)
    for im in d["images"]:
        by_modality[im["modality"]].append(im)
    chosen = []
    for modality in sorted(by_modality):
        images = by_modality[modality]
        quota = max(1, round(40 * len(images) / n_images))
        small = [im for im in images if max(im["width"], im["height"]) <= 360]
        if not small:
            least = min(im["width"] * im["height"] for im in images)
            small = [im for im in images if im["width"] * im["height"] == least]
        ids = sorted((im["file_name"].split("/")[0] for im in small),
                     key=lambda f: hashlib.sha256(f.encode()).hexdigest())
        chosen += [(modality, f) for f in ids[:quota]]
    os.makedirs(out, exist_ok=True)
    for modality, f in chosen:
        shutil.copytree(os.path.join(src, f), os.path.join(out, f))
        print(modality, f)


if __name__ == "__main__":
    main()
