#!/usr/bin/env python3
"""Seed corpora of the fuzz targets, made from the real files in tests/data/
(and configs/): small slices of the big ones, in each target's input format.

    make_corpus.py SOURCE_DIR OUT_DIR     writes OUT_DIR/<target>/<name>

fuzz_decode's images are made by make_image_seeds (OpenCV, same OUT_DIR).
Deterministic: the same tree gives the same files.
"""
import json
import os
import struct
import sys


def write(out, target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def load(src, rel):
    with open(os.path.join(src, rel), encoding="utf-8") as f:
        return json.load(f)


def coco_slice(ds, image_ids):
    """The images `image_ids` with their annotations and categories."""
    anns = [a for a in ds["annotations"] if a["image_id"] in image_ids]
    cats = {a["category_id"] for a in anns}
    return {
        "images": [im for im in ds["images"] if im["id"] in image_ids],
        "annotations": anns,
        "categories": [c for c in ds["categories"] if c["id"] in cats],
    }


def shorten(ann, max_points=12):
    """Polygons cut to a few points so that a slice stays small."""
    seg = ann.get("segmentation")
    if isinstance(seg, list):
        ann = dict(ann, segmentation=[p[: 2 * max_points] for p in seg[:2]])
    return ann


def coco_seeds(src, out):
    for rel, tag in (("tests/data/coco_mini/instances_train2017.json", "train"),
                     ("tests/data/coco_mini/instances_val2017.json", "val")):
        ds = load(src, rel)
        crowd = sorted({a["image_id"] for a in ds["annotations"] if a.get("iscrowd")})
        plain = [im["id"] for im in ds["images"] if im["id"] not in crowd]
        picks = [plain[:1], plain[1:3]] + [[i] for i in crowd[:2]]
        for k, ids in enumerate(picks):
            s = coco_slice(ds, set(ids))
            s["annotations"] = [shorten(a) for a in s["annotations"]][:6]
            text = json.dumps(s, separators=(",", ":"))
            if len(text) <= 8000:
                write(out, "fuzz_coco", f"{tag}_{k}.json", text)
        # The top level with info/licenses and pretty-printed, as exports are.
        s = coco_slice(ds, {plain[3]})
        s["annotations"] = [shorten(a, 4) for a in s["annotations"]][:2]
        s = {"info": ds.get("info", {}), "licenses": ds.get("licenses", [])[:1], **s}
        write(out, "fuzz_coco", f"{tag}_extras.json", json.dumps(s, indent=1))
    voc = load(src, "tests/data/labelme_voc3/annotations.json")
    first = voc["images"][0]["id"]
    s = coco_slice(voc, {first})
    s["annotations"] = [shorten(a) for a in s["annotations"]]
    write(out, "fuzz_coco", "labelme_voc3.json", json.dumps(s))
    paste = load(src, "tests/data/paste/annotations.json")
    s = coco_slice(paste, {paste["images"][0]["id"]})
    s["annotations"] = [shorten(a) for a in s["annotations"]][:4]
    write(out, "fuzz_coco", "paste.json", json.dumps(s, separators=(",", ":")))
    # A compressed-RLE segmentation from the oracle, on its own image.
    masks = load(src, "tests/data/golden/coco_mini_val2017_masks.json")["masks"]
    m = min(masks, key=lambda m: len(m["counts"]))
    write(out, "fuzz_coco", "rle_string.json", json.dumps({
        "images": [{"id": m["image_id"], "width": m["size"][1], "height": m["size"][0], "file_name": "x.jpg"}],
        "categories": [{"id": 1, "name": "a", "supercategory": "s"}],
        "annotations": [{"id": m["id"], "image_id": m["image_id"], "category_id": 1, "iscrowd": 1,
                         "area": m["area"], "bbox": m["bbox"],
                         "segmentation": {"size": m["size"], "counts": m["counts"]}}]}))


def slice_seeds(out):
    """fuzz_slice: 8 setting bytes (fuzz_slice.cpp) before each fuzz_coco seed."""
    headers = [bytes([3, 20, 25, 0, 2, 0, 1, 0]),   # 112 px, overlap 0.2, ratio 0.1, slice all, strict
               bytes([0, 0, 0, 255, 7, 0, 2, 0]),   # 16 px, no overlap, keep empties, polygons, skip
               bytes([7, 50, 128, 64, 1, 40, 3, 0])]  # 240 px above 320 px, overlap 0.5, ratio 0.5
    d = os.path.join(out, "fuzz_coco")
    for k, name in enumerate(sorted(os.listdir(d))):
        with open(os.path.join(d, name), "rb") as f:
            write(out, "fuzz_slice", name, headers[k % len(headers)] + f.read())


def rle_seeds(src, out):
    edge = load(src, "tests/data/golden/mask_edge_cases.json")
    h, w = edge["height"], edge["width"]
    for i, case in enumerate(edge["cases"]):
        write(out, "fuzz_rle_string", f"edge_{i}", struct.pack("<HH", h, w) + case["counts"].encode())
    for key in ("union_counts", "intersect3_counts"):
        if key in edge:
            write(out, "fuzz_rle_string", key, struct.pack("<HH", h, w) + edge[key].encode())
    masks = load(src, "tests/data/golden/coco_mini_val2017_masks.json")["masks"]
    masks = sorted(masks, key=lambda m: len(m["counts"]))
    for i, m in enumerate(masks[:: max(1, len(masks) // 24)][:24]):
        hh, ww = m["size"]
        write(out, "fuzz_rle_string", f"val_{i}", struct.pack("<HH", hh, ww) + m["counts"].encode())


def polygon_seed(h, w, polygons, scale=1.0):
    """fuzz_polygon's format: h, w, part count, per part n and int16 1/8 px values."""
    data = struct.pack("<HHB", int(h * scale), int(w * scale), (len(polygons) - 1) % 4)
    for p in polygons[:4]:
        vals = [max(-32768, min(32767, round(v * scale * 8))) for v in p[:255]]
        data += struct.pack("<B", len(vals)) + struct.pack(f"<{len(vals)}h", *vals)
    return data


def polygon_seeds(src, out):
    edge = load(src, "tests/data/golden/mask_edge_cases.json")
    for i, case in enumerate(edge["cases"]):
        if case.get("polygons"):
            write(out, "fuzz_polygon", f"edge_{i}", polygon_seed(edge["height"], edge["width"], case["polygons"]))
    ds = load(src, "tests/data/coco_mini/instances_train2017.json")
    sizes = {im["id"]: (im["height"], im["width"]) for im in ds["images"]}
    polys = [a for a in ds["annotations"] if isinstance(a.get("segmentation"), list)]
    for i, a in enumerate(polys[:: max(1, len(polys) // 24)][:24]):
        h, w = sizes[a["image_id"]]
        write(out, "fuzz_polygon", f"train_{i}", polygon_seed(h, w, a["segmentation"], 0.5))


TORCH_SECTIONS = ("batch", "loader", "data", "model", "train", "solver", "eval")


def strip_sections(text):
    """Drops the top-level sections fuzz_config's root does not have."""
    keep, lines = True, []
    for line in text.splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            keep = line.split(":")[0].strip() not in TORCH_SECTIONS and not line.startswith("_base_")
        if keep:
            lines.append(line)
    return "\n".join(lines) + "\n"


def config_seeds(src, out):
    for d in ("configs", "configs/paper"):
        for name in sorted(os.listdir(os.path.join(src, d))):
            if name.endswith(".yaml"):
                with open(os.path.join(src, d, name), encoding="utf-8") as f:
                    text = strip_sections(f.read())
                if text.strip():
                    write(out, "fuzz_config", d.replace("/", "_") + "_" + name, text)
    # Overrides after \x01 (the target's format), as `pasteflow config --print C k=v` takes them.
    write(out, "fuzz_config", "overrides",
          "augment:\n  copies: 2\n\x01augment.placement.border=8\x01sampler.oversample=[1, 2]\x01seed=7")
    for root, _, files in sorted(os.walk(os.path.join(src, "tests/data/config"))):
        for name in sorted(files):
            with open(os.path.join(root, name), encoding="utf-8") as f:
                write(out, "fuzz_config", "tests_" + name, f.read())


# Compressed RLE (pycocotools rleToString) of a column-major run list.
def rle_to_string(counts):
    s = []
    for i, c in enumerate(counts):
        x = c - counts[i - 2] if i > 2 else c
        more = True
        while more:
            ch = x & 0x1F
            x >>= 5
            more = (x != -1) if (ch & 0x10) else (x != 0)
            if more:
                ch |= 0x20
            s.append(chr(ch + 48))
    return "".join(s)


def box_rle(h, w, x, y, bw, bh):
    """Runs of the pixel box [x, x+bw) x [y, y+bh) of an h x w image."""
    pixels = [1 if x <= c < x + bw and y <= r < y + bh else 0 for c in range(w) for r in range(h)]
    counts, cur, run = [], 0, 0
    for p in pixels:
        if p != cur:
            counts.append(run)
            cur, run = p, 0
        run += 1
    counts.append(run)
    return counts


def results_seeds(src, out):
    # fuzz_results reads against its own tiny ground truth: image 1 (40 x 30)
    # and 2 (24 x 32), categories 1 and 7. Real detections are mapped onto it.
    images = {1: (30, 40), 2: (32, 24)}
    bbox = load(src, "tests/data/eval/coco_mini_val2017_bbox_results.json")[:12]
    res = []
    for i, r in enumerate(bbox):
        image_id = 1 + i % 2
        h, w = images[image_id]
        x, y, bw, bh = r["bbox"]
        res.append({"image_id": image_id, "category_id": (1, 7)[i // 2 % 2],
                    "bbox": [round(x % w, 2), round(y % h, 2), round(min(bw, w) / 2, 2), round(min(bh, h) / 2, 2)],
                    "score": r["score"]})
    write(out, "fuzz_results", "bbox.json", json.dumps(res))
    write(out, "fuzz_results", "bbox_one.json", json.dumps(res[:1]))
    segm = load(src, "tests/data/eval/coco_mini_val2017_segm_results.json")[:6]
    res = []
    for i, r in enumerate(segm):
        image_id = 1 + i % 2
        h, w = images[image_id]
        box = (2 + i, 3, 10 + i, 8)
        res.append({"image_id": image_id, "category_id": (1, 7)[i % 2], "score": r["score"],
                    "segmentation": {"size": [h, w], "counts": rle_to_string(box_rle(h, w, *box))}})
    write(out, "fuzz_results", "segm.json", json.dumps(res))
    write(out, "fuzz_results", "segm_polygon.json", json.dumps([
        {"image_id": 1, "category_id": 1, "score": 0.9, "segmentation": [[2, 3, 12, 3, 12, 11, 2, 11]]},
        {"image_id": 2, "category_id": 1, "score": 0.5,
         "segmentation": {"size": [32, 24], "counts": [100, 50, 618]}}]))
    # The real file's first record as it is (unknown ids: an error path).
    write(out, "fuzz_results", "real_first.json", json.dumps(segm[:1]))


def mask_seeds(src, out):
    """fuzz_masks: mode 1 + each real DSB mask PNG of tests/data/dsb2018 (the
    smallest 24 files), and the label / raw seeds of tests/data/fuzz/fuzz_masks."""
    masks = []
    root = os.path.join(src, "tests/data/dsb2018")
    for dirpath, _, files in sorted(os.walk(root)):
        if os.path.basename(dirpath) == "masks":
            masks += [os.path.join(dirpath, f) for f in sorted(files) if f.endswith(".png")]
    masks.sort(key=lambda p: (os.path.getsize(p), p))
    for i, path in enumerate(masks[:24]):
        with open(path, "rb") as f:
            write(out, "fuzz_masks", "dsb_mask_%02d" % i, b"\x01" + f.read())
    seeds = os.path.join(src, "tests/data/fuzz/fuzz_masks")
    for name in sorted(os.listdir(seeds)):
        with open(os.path.join(seeds, name), "rb") as f:
            write(out, "fuzz_masks", name, f.read())


def shard_seeds(out):
    """fuzz_shard: evaluation shards as eval/shard.cpp writes them (one with
    a box and an RLE, one empty)."""
    rle = box_rle(4, 5, 1, 1, 2, 2)
    det = struct.pack("<Iqqd", 3, 7, 1, 0.75) + b"\x01" + struct.pack("<4d", 1.0, 2.0, 3.5, 4.25)
    det += b"\x01" + struct.pack("<IIQ", 4, 5, len(rle)) + struct.pack("<%dI" % len(rle), *rle)
    det2 = struct.pack("<Iqqd", 4, 8, 2, 0.5) + b"\x00\x00"
    write(out, "fuzz_shard", "two", struct.pack("<QQQ", 2, 1, 2) + det + det2)
    write(out, "fuzz_shard", "empty", struct.pack("<QQQ", 0, 0, 0))


def main():
    src, out = sys.argv[1], sys.argv[2]
    shard_seeds(out)
    mask_seeds(src, out)
    coco_seeds(src, out)
    slice_seeds(out)
    rle_seeds(src, out)
    polygon_seeds(src, out)
    config_seeds(src, out)
    results_seeds(src, out)


if __name__ == "__main__":
    main()
