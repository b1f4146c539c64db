# oracle: pycocotools (cocoapi 8c9bcc3) COCOeval via
# tests/data/eval/coco_mini_val2017_expected.json: the 12 summary numbers and
# per-category AP (area all, maxDets 100) for bbox and segm of
# tests/data/eval/coco_mini_val2017_{bbox,segm}_results.json on
# tests/data/coco_mini/instances_val2017.json (the ground truth the C++
# golden test tests/eval/coco_eval_golden_test.cpp uses; see
# tests/data/eval/README.md). Contract: 1e-9.
"""pasteflow.coco_eval against pycocotools' COCOeval."""
import copy
import json
import os
import pathlib
import unittest

import numpy as np

import pasteflow
from pasteflow.evaluation import STATS_ORDER, coco_eval

DATA = os.environ.get("PASTEFLOW_TEST_DATA",
                      os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data"))
GT = os.path.join(DATA, "coco_mini", "instances_val2017.json")


def results_path(iou_type):
    return os.path.join(DATA, "eval", f"coco_mini_val2017_{iou_type}_results.json")


def load_json(path):
    with open(path, "rb") as f:
        return json.load(f)


EXPECTED = load_json(os.path.join(DATA, "eval", "coco_mini_val2017_expected.json"))
TOL = 1e-9


class CocoEvalGolden(unittest.TestCase):
    def check(self, result, iou_type):
        exp = EXPECTED[iou_type]
        self.assertEqual(list(STATS_ORDER), EXPECTED["stats_order"])
        self.assertEqual(len(result["stats"]), 12)
        for i, name in enumerate(EXPECTED["stats_order"]):
            self.assertAlmostEqual(result["stats"][i], exp["stats"][i], delta=TOL, msg=name)
            self.assertIsInstance(result[name], float)
            self.assertEqual(result[name], result["stats"][i], msg=name)
        want = {int(k): v for k, v in exp["per_category_ap"].items()}
        got = result["per_category_ap"]
        self.assertEqual(set(got), set(want))
        self.assertTrue(all(isinstance(k, int) for k in got))
        for cat, ap in want.items():
            self.assertAlmostEqual(got[cat], ap, delta=TOL, msg=f"category {cat}")
        # categories 58 and 88 have no ground truth in coco_mini val
        self.assertEqual(sorted(c for c, ap in got.items() if ap == -1), [58, 88])
        self.assertEqual(result["max_dets"], [1, 10, 100])
        self.assertEqual(result["skipped"], {})
        self.assertEqual(len(result["summary"].splitlines()), 12)

    def test_paths(self):
        for iou_type in ("bbox", "segm"):
            with self.subTest(iou_type=iou_type):
                self.check(coco_eval(GT, results_path(iou_type), iou_type), iou_type)

    def test_pathlike(self):
        r = coco_eval(pathlib.Path(GT), pathlib.Path(results_path("bbox")), iou_type="bbox")
        self.check(r, "bbox")

    def test_default_is_bbox(self):
        self.check(coco_eval(GT, results_path("bbox")), "bbox")

    def test_in_memory(self):
        gt = load_json(GT)
        gt_before = copy.deepcopy(gt)
        for iou_type in ("bbox", "segm"):
            with self.subTest(iou_type=iou_type):
                results = load_json(results_path(iou_type))
                self.check(coco_eval(gt, results, iou_type), iou_type)
                self.check(coco_eval(GT, results, iou_type), iou_type)
                self.check(coco_eval(gt, results_path(iou_type), iou_type), iou_type)
        self.assertEqual(gt, gt_before)  # inputs are not modified

    def test_in_memory_bytes_counts_and_numpy_values(self):
        # What a model loop builds with pasteflow.mask.encode: bytes counts,
        # numpy scores and ids.
        results = load_json(results_path("segm"))
        for r in results:
            r["segmentation"]["counts"] = r["segmentation"]["counts"].encode()
            r["score"] = np.float64(r["score"])
            r["image_id"] = np.int64(r["image_id"])
        self.check(coco_eval(GT, results, "segm"), "segm")

    def test_threads_do_not_change_results(self):
        one = coco_eval(GT, results_path("segm"), "segm", threads=1)
        two = coco_eval(GT, results_path("segm"), "segm", threads=2)
        self.assertEqual(one["stats"], two["stats"])
        self.assertEqual(one["per_category_ap"], two["per_category_ap"])


class CocoEvalOptionsAndErrors(unittest.TestCase):
    def test_numpy_results_array(self):
        # loadRes' [n, 7] form (image_id, x, y, w, h, score, category_id) = the bbox results
        results = load_json(results_path("bbox"))
        arr = np.array([[r["image_id"], *r["bbox"], r["score"], r["category_id"]] for r in results])
        self.assertEqual(coco_eval(GT, arr)["stats"], coco_eval(GT, results_path("bbox"))["stats"])

    def test_cat_ids(self):
        r = coco_eval(GT, results_path("bbox"), cat_ids=[1, 13])
        self.assertEqual(set(r["per_category_ap"]), {1, 13})
        want = EXPECTED["bbox"]["per_category_ap"]
        self.assertAlmostEqual(r["per_category_ap"][1], want["1"], delta=TOL)
        self.assertAlmostEqual(r["per_category_ap"][13], want["13"], delta=TOL)

    def test_empty_results_evaluate_to_zero(self):
        r = coco_eval(GT, [], "bbox")
        self.assertEqual(r["stats"], [0.0] * 12)

    def test_bad_inputs_raise(self):
        results = load_json(results_path("bbox"))
        with self.assertRaises(ValueError):
            coco_eval(GT, results, "keypoints")
        with self.assertRaises(ValueError):
            coco_eval(GT, results, on_error="ignore")
        with self.assertRaises(TypeError):
            coco_eval(GT, results, nonsense=1)
        with self.assertRaises(TypeError):
            coco_eval(42, results)
        with self.assertRaises(TypeError):
            coco_eval(GT, {"image_id": 1})
        with self.assertRaises(pasteflow.InputError):
            coco_eval(os.path.join(DATA, "eval", "no_such_file.json"), results)
        with self.assertRaises(pasteflow.InputError):
            coco_eval(GT, os.path.join(DATA, "eval", "no_such_file.json"))
        bad = copy.deepcopy(results)
        bad[3]["image_id"] = 987654321  # not in the ground truth
        with self.assertRaisesRegex(pasteflow.InputError, r"\[3\]"):
            coco_eval(GT, bad)
        # segm evaluation of box-only results: the first result decides, no segmentation -> missing
        with self.assertRaises(pasteflow.InputError):
            coco_eval(GT, [{"image_id": results[0]["image_id"], "category_id": 1, "score": 0.5}], "segm")
        with self.assertRaises(pasteflow.InputError):
            coco_eval({"images": "x"}, results)

    def test_skip_policy_counts_bad_results(self):
        results = load_json(results_path("bbox"))
        bad = copy.deepcopy(results)
        bad.append(dict(results[0], image_id=987654321))
        r = coco_eval(GT, bad, on_error="skip")
        self.assertEqual(r["skipped"], {"unknown_image": 1})
        self.assertEqual(r["stats"], coco_eval(GT, results)["stats"])


if __name__ == "__main__":
    unittest.main()
