# oracle: pycocotools (cocoapi 8c9bcc3) via tests/data/golden/mask_edge_cases.json
# and tests/data/golden/coco_mini_val2017_masks.json (values computed with
# pycocotools.mask; see tests/data/golden/README.md), for the annotations of
# tests/data/coco_mini/instances_val2017.json. Box IoUs without an oracle file
# are checked against bbIou's formula written out below (maskApi.c) and
# against the mask IoU of the same integer boxes.
"""pasteflow.mask as a drop-in replacement for pycocotools.mask."""
import json
import os
import unittest

import numpy as np

import pasteflow
from pasteflow import mask as maskUtils

DATA = os.environ.get("PASTEFLOW_TEST_DATA",
                      os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data"))


def load_json(*parts):
    with open(os.path.join(DATA, *parts), "rb") as f:
        return json.load(f)


EDGE = load_json("golden", "mask_edge_cases.json")
H, W = EDGE["height"], EDGE["width"]


def ann_to_rle(segm, h, w):
    """COCO.annToRLE (coco.py of the oracle), on pasteflow.mask."""
    if isinstance(segm, list):
        return maskUtils.merge(maskUtils.frPyObjects(segm, h, w))
    if isinstance(segm["counts"], list):
        return maskUtils.frPyObjects(segm, h, w)
    return segm


def bb_iou(d, g, crowd):
    """maskApi.c bbIou for one pair, written out."""
    w = min(d[2] + d[0], g[2] + g[0]) - max(d[0], g[0])
    if w <= 0:
        return 0.0
    h = min(d[3] + d[1], g[3] + g[1]) - max(d[1], g[1])
    if h <= 0:
        return 0.0
    i = w * h
    u = d[2] * d[3] if crowd else d[2] * d[3] + g[2] * g[3] - i
    return i / u


class EdgeCases(unittest.TestCase):
    """mask_edge_cases.json: 46 polygon cases on a 37 x 53 image."""

    def rle(self, case):
        return ann_to_rle(case["polygons"], case["height"], case["width"])

    def test_file_is_complete(self):
        self.assertEqual(len(EDGE["cases"]), 46)
        self.assertEqual(len(EDGE["iou_counts"]), 12)

    def test_counts_area_bbox_of_every_case(self):
        for i, case in enumerate(EDGE["cases"]):
            with self.subTest(case=i):
                r = self.rle(case)
                self.assertEqual(r["size"], [H, W])
                self.assertIsInstance(r["counts"], bytes)
                self.assertEqual(r["counts"], case["counts"].encode())
                a = maskUtils.area(r)
                self.assertIsInstance(a, np.uint32)
                self.assertEqual(int(a), case["area"])
                bb = maskUtils.toBbox(r)
                self.assertEqual(bb.dtype, np.float64)
                self.assertEqual(bb.shape, (4,))
                self.assertEqual(bb.tolist(), case["bbox"])

    def test_single_polygon_forms(self):
        # One part: the list form gives a one-element list, a flat polygon one dict.
        for i, case in enumerate(EDGE["cases"]):
            if len(case["polygons"]) != 1:
                continue
            with self.subTest(case=i):
                rles = maskUtils.frPyObjects(case["polygons"], H, W)
                self.assertIsInstance(rles, list)
                self.assertEqual(len(rles), 1)
                self.assertEqual(rles[0]["counts"], case["counts"].encode())
                one = maskUtils.frPyObjects(case["polygons"][0], H, W)
                self.assertIsInstance(one, dict)
                self.assertEqual(one["counts"], case["counts"].encode())
                # numpy polygons too
                arr = maskUtils.frPyObjects([np.array(case["polygons"][0])], H, W)
                self.assertEqual(arr[0]["counts"], case["counts"].encode())

    def test_list_forms_of_area_and_bbox(self):
        rles = [{"size": [H, W], "counts": c["counts"]} for c in EDGE["cases"]]  # str counts, as JSON gives
        areas = maskUtils.area(rles)
        self.assertIsInstance(areas, np.ndarray)
        self.assertEqual(areas.dtype, np.uint32)
        self.assertEqual(areas.tolist(), [c["area"] for c in EDGE["cases"]])
        boxes = maskUtils.toBbox(rles)
        self.assertEqual(boxes.dtype, np.float64)
        self.assertEqual(boxes.shape, (46, 4))
        self.assertEqual(boxes.tolist(), [c["bbox"] for c in EDGE["cases"]])
        self.assertEqual(maskUtils.toBbox([]).shape, (0, 4))
        self.assertEqual(maskUtils.area([]).dtype, np.uint32)

    def test_decode_encode_round_trip(self):
        rles = [{"size": [H, W], "counts": c["counts"]} for c in EDGE["cases"]]
        masks = maskUtils.decode(rles)
        self.assertEqual(masks.shape, (H, W, 46))
        self.assertEqual(masks.dtype, np.uint8)
        self.assertTrue(masks.flags["F_CONTIGUOUS"])
        self.assertEqual(masks.sum(axis=(0, 1)).tolist(), [c["area"] for c in EDGE["cases"]])
        self.assertTrue(set(np.unique(masks).tolist()) <= {0, 1})
        again = maskUtils.encode(masks)
        self.assertIsInstance(again, list)
        self.assertEqual([r["counts"] for r in again], [c["counts"].encode() for c in EDGE["cases"]])
        self.assertEqual([r["size"] for r in again], [[H, W]] * 46)
        for i, c in enumerate(EDGE["cases"]):
            with self.subTest(case=i):
                m = maskUtils.decode(rles[i])
                self.assertEqual(m.shape, (H, W))
                self.assertTrue(m.flags["F_CONTIGUOUS"])
                self.assertTrue(np.array_equal(m, masks[:, :, i]))
                r = maskUtils.encode(m)
                self.assertIsInstance(r, dict)
                self.assertEqual(r, {"size": [H, W], "counts": c["counts"].encode()})
                # a C-ordered copy and a bool mask encode the same
                self.assertEqual(maskUtils.encode(np.ascontiguousarray(m))["counts"], c["counts"].encode())
                self.assertEqual(maskUtils.encode(m.astype(bool))["counts"], c["counts"].encode())

    def test_bytes_and_str_counts_are_the_same(self):
        c = EDGE["cases"][0]
        as_str = {"size": [H, W], "counts": c["counts"]}
        as_bytes = {"size": [H, W], "counts": c["counts"].encode()}
        self.assertTrue(np.array_equal(maskUtils.decode(as_str), maskUtils.decode(as_bytes)))
        self.assertEqual(maskUtils.area(as_str), maskUtils.area(as_bytes))
        self.assertEqual(maskUtils.merge([as_str, as_bytes]), as_bytes)

    def test_iou_counts_are_the_first_twelve(self):
        rles = [self.rle(c) for c in EDGE["cases"][:12]]
        self.assertEqual([r["counts"] for r in rles], [s.encode() for s in EDGE["iou_counts"]])

    def test_iou_matrix(self):
        rles = [self.rle(c) for c in EDGE["cases"][:12]]
        o = maskUtils.iou(rles, rles, [0] * 12)
        self.assertIsInstance(o, np.ndarray)
        self.assertEqual(o.dtype, np.float64)
        self.assertEqual(o.shape, (12, 12))
        self.assertTrue(o.flags["F_CONTIGUOUS"])
        self.assertEqual(o.tolist(), EDGE["iou"])  # exactly
        # rows / columns: dt is the first argument
        o2 = maskUtils.iou(rles[:3], rles, np.zeros(12, dtype=np.uint8))
        self.assertEqual(o2.shape, (3, 12))
        self.assertEqual(o2.tolist(), EDGE["iou"][:3])

    def test_crowd_iou_matrix(self):
        rles = [self.rle(c) for c in EDGE["cases"][:12]]
        o = maskUtils.iou(rles, rles, [1] * 12)
        self.assertEqual(o.tolist(), EDGE["iou_crowd"])
        # mixed crowd flags: crowd columns from the crowd matrix, the others from the plain one
        flags = [i % 2 for i in range(12)]
        o = maskUtils.iou(rles, rles, flags)
        for d in range(12):
            for g in range(12):
                want = EDGE["iou_crowd"][d][g] if flags[g] else EDGE["iou"][d][g]
                self.assertEqual(o[d, g], want)

    def test_union_and_intersection(self):
        rles = [self.rle(c) for c in EDGE["cases"][:12]]
        u = maskUtils.merge(rles)
        self.assertEqual(u, {"size": [H, W], "counts": EDGE["union_counts"].encode()})
        self.assertEqual(maskUtils.merge(rles, intersect=0)["counts"], EDGE["union_counts"].encode())
        i3 = maskUtils.merge(rles[:3], intersect=1)
        self.assertEqual(i3["counts"], EDGE["intersect3_counts"].encode())
        self.assertEqual(maskUtils.merge(rles[:3], True)["counts"], EDGE["intersect3_counts"].encode())
        # the same on pixels
        m = maskUtils.decode(rles)
        self.assertTrue(np.array_equal(maskUtils.decode(u), m.max(axis=2)))
        self.assertTrue(np.array_equal(maskUtils.decode(i3), m[:, :, :3].min(axis=2)))
        # one mask: itself; none: the empty 0 x 0 RLE, as pycocotools
        self.assertEqual(maskUtils.merge(rles[:1]), rles[0])
        empty = maskUtils.merge([])
        self.assertEqual(empty, {"size": [0, 0], "counts": b""})
        self.assertEqual(maskUtils.decode(empty).shape, (0, 0))


class CocoMiniMasks(unittest.TestCase):
    """coco_mini_val2017_masks.json: every annotation of the coco_mini val set."""

    @classmethod
    def setUpClass(cls):
        cls.gt = load_json("coco_mini", "instances_val2017.json")
        cls.oracle = {m["id"]: m for m in load_json("golden", "coco_mini_val2017_masks.json")["masks"]}
        cls.images = {im["id"]: im for im in cls.gt["images"]}

    def test_every_annotation(self):
        anns = self.gt["annotations"]
        self.assertEqual(len(anns), 624)
        self.assertEqual(set(self.oracle), {a["id"] for a in anns})
        crowd = 0
        for ann in anns:
            with self.subTest(ann=ann["id"]):
                exp = self.oracle[ann["id"]]
                im = self.images[ann["image_id"]]
                h, w = im["height"], im["width"]
                r = ann_to_rle(ann["segmentation"], h, w)
                crowd += isinstance(ann["segmentation"], dict)
                self.assertEqual(r["size"], exp["size"])
                self.assertEqual(r["counts"], exp["counts"].encode())
                self.assertEqual(int(maskUtils.area(r)), exp["area"])
                self.assertEqual(maskUtils.toBbox(r).tolist(), exp["bbox"])
                m = maskUtils.decode(r)
                self.assertEqual(m.shape, (h, w))
                self.assertEqual(int(m.sum()), exp["area"])
                self.assertEqual(maskUtils.encode(m)["counts"], exp["counts"].encode())
        self.assertEqual(crowd, 5)

    def test_batched_area_bbox_iou_of_one_image(self):
        # The image with the most annotations: list forms against the oracle.
        by_image = {}
        for ann in self.gt["annotations"]:
            by_image.setdefault(ann["image_id"], []).append(ann)
        image_id = max(by_image, key=lambda k: len(by_image[k]))
        anns = by_image[image_id]
        rles = [{"size": self.oracle[a["id"]]["size"], "counts": self.oracle[a["id"]]["counts"]} for a in anns]
        self.assertEqual(maskUtils.area(rles).tolist(), [self.oracle[a["id"]]["area"] for a in anns])
        self.assertEqual(maskUtils.toBbox(rles).tolist(), [self.oracle[a["id"]]["bbox"] for a in anns])
        masks = maskUtils.decode(rles).astype(bool)
        iscrowd = [a["iscrowd"] for a in anns]
        o = maskUtils.iou(rles, rles, iscrowd)
        n = len(anns)
        self.assertEqual(o.shape, (n, n))
        for d in range(n):
            for g in range(n):
                inter = np.logical_and(masks[:, :, d], masks[:, :, g]).sum()
                if iscrowd[g]:
                    want = inter / masks[:, :, d].sum()
                else:
                    want = inter / np.logical_or(masks[:, :, d], masks[:, :, g]).sum()
                self.assertAlmostEqual(o[d, g], want, places=12)


class Encode(unittest.TestCase):
    def test_forms_and_round_trip(self):
        rng = np.random.default_rng(7)
        stack = np.asfortranarray((rng.random((23, 31, 5)) > 0.6).astype(np.uint8))
        stack[:, :, 1] = 0
        stack[:, :, 2] = 1
        rles = maskUtils.encode(stack)
        self.assertIsInstance(rles, list)
        self.assertEqual(len(rles), 5)
        for r in rles:
            self.assertEqual(set(r), {"size", "counts"})
            self.assertEqual(r["size"], [23, 31])
            self.assertIsInstance(r["counts"], bytes)
        back = maskUtils.decode(rles)
        self.assertTrue(back.flags["F_CONTIGUOUS"])
        self.assertTrue(np.array_equal(back, stack))
        self.assertEqual(maskUtils.area(rles).tolist(), stack.sum(axis=(0, 1)).tolist())
        self.assertEqual(rles[1]["counts"], maskUtils.encode(np.zeros((23, 31), np.uint8, order="F"))["counts"])
        # strided / C-ordered views encode the pixels they show
        view = np.ascontiguousarray(stack.transpose(1, 0, 2)).transpose(1, 0, 2)
        self.assertEqual(maskUtils.encode(view), rles)
        self.assertEqual(maskUtils.encode(stack[::-1, :, :]),
                         maskUtils.encode(np.asfortranarray(stack[::-1, :, :])))
        self.assertEqual(maskUtils.encode(stack[:, :, :0]), [])

    def test_zero_sized(self):
        r = maskUtils.encode(np.zeros((0, 5), np.uint8, order="F"))
        self.assertEqual(r, {"size": [0, 5], "counts": b"0"})
        self.assertEqual(maskUtils.decode(r).shape, (0, 5))


class BoxesAndUncompressed(unittest.TestCase):
    def test_frPyObjects_boxes(self):
        boxes = np.array([[2, 3, 10, 7], [0, 0, 53, 37], [40.5, 30.2, 20, 20]], dtype=np.float64)
        rles = maskUtils.frPyObjects(boxes, H, W)
        self.assertEqual(len(rles), 3)
        self.assertEqual(maskUtils.toBbox(rles)[:2].tolist(), boxes[:2].tolist())
        self.assertEqual(maskUtils.area(rles)[:2].tolist(), [70, 53 * 37])
        # list of 4-lists, int array, single box list / array: the same strings
        self.assertEqual(maskUtils.frPyObjects(boxes.tolist(), H, W), rles)
        self.assertEqual(maskUtils.frPyObjects(boxes[:2].astype(np.int64), H, W), rles[:2])
        self.assertEqual(maskUtils.frPyObjects([2, 3, 10, 7], H, W), rles[0])
        self.assertEqual(maskUtils.frPyObjects(boxes[0], H, W), rles[0])
        # the box is the polygon (x,y) (x,y+h) (x+w,y+h) (x+w,y), as rleFrBbox
        x, y, w, h = boxes[2]
        poly = [x, y, x, y + h, x + w, y + h, x + w, y]
        self.assertEqual(maskUtils.frPyObjects([poly], H, W)[0], rles[2])

    def test_frPyObjects_uncompressed(self):
        # 5 x 7 (column-major runs): 7 zeros, 2 ones, 3 zeros, 23 ones
        uc = {"size": [5, 7], "counts": [7, 2, 3, 23]}
        r = maskUtils.frPyObjects(uc, 5, 7)
        self.assertIsInstance(r, dict)
        self.assertIsInstance(r["counts"], bytes)
        m = maskUtils.decode(r)
        self.assertEqual(m.ravel(order="F").tolist(), [0] * 7 + [1] * 2 + [0] * 3 + [1] * 23)
        self.assertEqual(maskUtils.frPyObjects([uc, uc], 5, 7), [r, r])
        self.assertEqual(maskUtils.frPyObjects({"size": [5, 7], "counts": np.array([7, 2, 3, 23])}, 5, 7), r)
        # the dict's own size counts, as pycocotools' frUncompressedRLE
        self.assertEqual(maskUtils.frPyObjects(uc, 99, 99)["size"], [5, 7])
        # and it is the encoding of those pixels
        self.assertEqual(maskUtils.encode(np.asfortranarray(m)), r)
        # a compressed dict comes back checked, with bytes counts
        self.assertEqual(maskUtils.frPyObjects({"size": [5, 7], "counts": r["counts"].decode()}, 5, 7), r)
        self.assertEqual(maskUtils.frPyObjects([], 5, 7), [])


class BoxIou(unittest.TestCase):
    def setUp(self):
        rng = np.random.default_rng(3)
        self.dt = np.column_stack([rng.integers(0, 40, (9, 2)), rng.integers(1, 20, (9, 2))]).astype(np.float64)
        self.gt = np.column_stack([rng.integers(0, 40, (6, 2)), rng.integers(1, 20, (6, 2))]).astype(np.float64)
        self.dt[0] = self.gt[0]
        self.crowd = [0, 1, 0, 0, 1, 0]

    def test_formula(self):
        o = maskUtils.iou(self.dt, self.gt, self.crowd)
        self.assertEqual(o.dtype, np.float64)
        self.assertEqual(o.shape, (9, 6))
        self.assertTrue(o.flags["F_CONTIGUOUS"])
        for d in range(9):
            for g in range(6):
                self.assertEqual(o[d, g], bb_iou(self.dt[d], self.gt[g], self.crowd[g]))
        self.assertEqual(o[0, 0], 1.0)
        # lists of 4-lists and int arrays: the same
        self.assertEqual(maskUtils.iou(self.dt.tolist(), self.gt.tolist(), self.crowd).tolist(), o.tolist())
        self.assertEqual(maskUtils.iou(self.dt.astype(np.int32), self.gt, self.crowd).tolist(), o.tolist())

    def test_same_as_masks_of_integer_boxes(self):
        # Integer boxes inside the image rasterise to exactly their pixels.
        dt = np.minimum(self.dt, 30)
        gt = np.minimum(self.gt, 30)
        o = maskUtils.iou(dt, gt, self.crowd)
        od = maskUtils.iou(maskUtils.frPyObjects(dt, 64, 64), maskUtils.frPyObjects(gt, 64, 64), self.crowd)
        np.testing.assert_allclose(o, od, rtol=0, atol=1e-15)

    def test_empty_cases(self):
        # pycocotools: [] when there is no dt or no gt
        self.assertEqual(maskUtils.iou([], self.gt, self.crowd), [])
        self.assertEqual(maskUtils.iou(self.dt, [], []), [])
        self.assertEqual(maskUtils.iou(np.zeros((0, 4)), self.gt, self.crowd), [])
        self.assertEqual(maskUtils.iou([], [], []), [])
        r = maskUtils.frPyObjects([[1, 1, 5, 5]], 10, 10)
        self.assertEqual(maskUtils.iou(r, [], []), [])

    def test_masks_of_different_sizes(self):
        # pycocotools: -1 where the boxes overlap and the sizes differ
        a = maskUtils.frPyObjects([[1, 1, 5, 5]], 10, 10)
        b = maskUtils.frPyObjects([[1, 1, 5, 5]], 12, 10)
        self.assertEqual(maskUtils.iou(a, b, [0]).tolist(), [[-1.0]])


class BadInput(unittest.TestCase):
    """Malformed input raises a Python exception (never a crash)."""

    def test_compressed_strings(self):
        for counts in [b"\x01\x02", b"0\x7f", "é", b"Z", b"0<i01O00000000001O"]:
            with self.subTest(counts=counts):
                r = {"size": [H, W], "counts": counts}
                for fn in (maskUtils.decode, maskUtils.area, maskUtils.toBbox):
                    with self.assertRaises(pasteflow.InputError):
                        fn(r)
                with self.assertRaises(pasteflow.InputError):
                    maskUtils.merge([r, r])
                with self.assertRaises(pasteflow.InputError):
                    maskUtils.iou([r], [r], [0])
        # counts that add up to the wrong size
        good = EDGE["cases"][0]["counts"]
        with self.assertRaisesRegex(pasteflow.InputError, "add up to"):
            maskUtils.decode({"size": [H, W + 1], "counts": good})

    def test_rle_dict_structure(self):
        with self.assertRaises(KeyError):
            maskUtils.decode({"size": [3, 3]})
        with self.assertRaises(KeyError):
            maskUtils.area({"counts": b"9"})
        with self.assertRaises(TypeError):
            maskUtils.decode({"size": [3, 3], "counts": [9]})  # uncompressed: frPyObjects first
        with self.assertRaises(TypeError):
            maskUtils.decode({"size": [3, 3], "counts": 9})
        with self.assertRaises(ValueError):
            maskUtils.decode({"size": [3], "counts": b"9"})
        with self.assertRaises(ValueError):
            maskUtils.decode({"size": [-3, 3], "counts": b"9"})
        with self.assertRaises(TypeError):
            maskUtils.decode({"size": ["3", 3], "counts": b"9"})
        with self.assertRaises(TypeError):
            maskUtils.area([{"size": [3, 3], "counts": b"9"}, "x"])
        with self.assertRaises(TypeError):
            maskUtils.merge({"size": [3, 3], "counts": b"9"})
        with self.assertRaises(pasteflow.InputError):
            maskUtils.decode({"size": [1 << 20, 1 << 20], "counts": b"0"})

    def test_decode_of_nothing_or_mixed_sizes(self):
        with self.assertRaises(ValueError):
            maskUtils.decode([])
        a = maskUtils.encode(np.zeros((3, 4), np.uint8, order="F"))
        b = maskUtils.encode(np.zeros((4, 3), np.uint8, order="F"))
        with self.assertRaises(ValueError):
            maskUtils.decode([a, b])
        with self.assertRaisesRegex(pasteflow.InputError, "different sizes"):
            maskUtils.merge([a, b])

    def test_encode(self):
        with self.assertRaises(TypeError):
            maskUtils.encode([[0, 1], [1, 0]])
        with self.assertRaises(ValueError):
            maskUtils.encode(np.zeros(5, np.uint8))
        with self.assertRaises(ValueError):
            maskUtils.encode(np.zeros((2, 2, 2, 2), np.uint8))
        with self.assertRaises(ValueError):
            maskUtils.encode(np.zeros((3, 3), np.float64))

    def test_polygons(self):
        with self.assertRaisesRegex(pasteflow.InputError, "at least 3 points"):
            maskUtils.frPyObjects([[1, 1, 5, 1, 5, 5], [1, 2, 3, 4]], 10, 10)  # 4 numbers: not a polygon
        with self.assertRaisesRegex(pasteflow.InputError, "odd number"):
            maskUtils.frPyObjects([[1, 1, 5, 1, 5, 5, 7]], 10, 10)
        with self.assertRaisesRegex(pasteflow.InputError, "at least 3 points"):
            maskUtils.frPyObjects([[1, 1]], 10, 10)
        for bad in (float("nan"), float("inf"), 1e300):
            with self.assertRaises(pasteflow.InputError):
                maskUtils.frPyObjects([[1, 1, 5, 1, bad, 5]], 10, 10)
            with self.assertRaises(pasteflow.InputError):
                maskUtils.frPyObjects([[1, 1, bad, 5]], 10, 10)  # a box
        with self.assertRaises(TypeError):
            maskUtils.frPyObjects([[1, 1, 5, "a", 5, 5]], 10, 10)
        with self.assertRaises(ValueError):
            maskUtils.frPyObjects([[[1, 1], [5, 1], [5, 5]]], 10, 10)  # nested points, not flat
        with self.assertRaises(ValueError):
            maskUtils.frPyObjects([[1, 1, 3, 3], [1, 1, 5, 1, 5, 5]], 10, 10)  # boxes, then a polygon
        with self.assertRaises(TypeError):
            maskUtils.frPyObjects("polygon", 10, 10)
        with self.assertRaises(TypeError):
            maskUtils.frPyObjects([None], 10, 10)
        with self.assertRaises(ValueError):
            maskUtils.frPyObjects(np.zeros((3, 5)), 10, 10)
        with self.assertRaises(ValueError):
            maskUtils.frPyObjects([[1, 1, 5, 1, 5, 5]], -1, 10)
        with self.assertRaises(TypeError):
            maskUtils.frPyObjects([[1, 1, 5, 1, 5, 5]], 10.5, 10)
        with self.assertRaises(pasteflow.InputError):
            maskUtils.frPyObjects([[1, 1, 5, 1, 5, 5]], 1 << 20, 1 << 20)

    def test_uncompressed(self):
        with self.assertRaisesRegex(pasteflow.InputError, "add up to"):
            maskUtils.frPyObjects({"size": [5, 7], "counts": [7, 2, 3]}, 5, 7)
        with self.assertRaises(ValueError):
            maskUtils.frPyObjects({"size": [5, 7], "counts": [-1, 36]}, 5, 7)
        with self.assertRaises(TypeError):
            maskUtils.frPyObjects({"size": [5, 7], "counts": ["a"]}, 5, 7)
        with self.assertRaises(KeyError):
            maskUtils.frPyObjects({"size": [5, 7]}, 5, 7)
        with self.assertRaises(pasteflow.InputError):
            maskUtils.frPyObjects({"size": [5, 7], "counts": "!!"}, 5, 7)

    def test_iou(self):
        r = maskUtils.frPyObjects([[1, 1, 5, 1, 5, 5]], 10, 10)
        box = np.array([[1, 1, 3, 3]], dtype=np.float64)
        with self.assertRaises(TypeError):
            maskUtils.iou(r, box, [0])  # masks against boxes
        with self.assertRaises(ValueError):
            maskUtils.iou(np.zeros((2, 3)), box, [0])
        with self.assertRaises(ValueError):
            maskUtils.iou([r[0], [1, 2, 3, 4]], r, [0])
        with self.assertRaises(TypeError):
            maskUtils.iou(r[0], r, [0])  # a dict, not a list
        with self.assertRaises(ValueError):
            maskUtils.iou(r, r + r, [0])  # iscrowd shorter than gt
        with self.assertRaises(ValueError):
            maskUtils.iou(box, box, [0, 0, 0])
        with self.assertRaises(TypeError):
            maskUtils.iou(box, box, [None])


if __name__ == "__main__":
    unittest.main()
