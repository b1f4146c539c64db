"""pasteflow.augment and pasteflow.stats.

augment: oracle is the loader itself (the same stages in the flow graph): one
sample augmented from Python equals, pixel for pixel and annotation for
annotation, the loader's sample at that stream position (read through
pasteflow.Loader's torchvision output, [0, 1] floats that are exact x / 255).
stats: oracle is pycocotools + torchvision via
tests/data/golden/coco_mini_train2017_anchors.json (the paper's Table 2)."""
import json
import os
import unittest

import numpy as np
import torch

import pasteflow

SOURCE = os.environ.get("PASTEFLOW_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.environ.get("PASTEFLOW_TEST_DATA", os.path.join(SOURCE, "tests", "data"))
CONFIG = os.path.join(SOURCE, "configs", "base.yaml")
ANNOTATIONS = os.path.join(SOURCE, "data", "sample", "annotations.json")
IMAGES = os.path.join(SOURCE, "data", "sample", "images")
AUG = {"augment.strategy": "several", "augment.num_objects": 3, "augment.copies": 2, "seed": 5}


def sample_stream(aug_mode):
    """Epoch 0 of the loader, one sample per batch, unflipped and unresized."""
    overrides = dict(AUG, **{"sampler.aug_mode": aug_mode, "loader.batch_size": 1, "batch.hflip": False})
    with pasteflow.Loader(CONFIG, overrides=overrides, annotations=ANNOTATIONS, images=IMAGES,
                          output="torchvision") as l:
        return [(ims[0], tg[0]) for ims, tg in l]


def to_uint8(image):
    """[3, H, W] floats x / 255 -> the H x W x 3 uint8 pixels (exact)."""
    return (image * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


class AugmentEqualsTheLoader(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.plain = sample_stream("none")
        cls.augmented = sample_stream("replace")
        with open(ANNOTATIONS) as f:
            doc = json.load(f)
        cls.anns = {}
        cls.max_id = max(a["id"] for a in doc["annotations"])
        for a in doc["annotations"]:
            cls.anns.setdefault(a["image_id"], []).append(a)

    def test_every_sample_of_the_epoch(self):
        placed = 0
        self.assertEqual(len(self.plain), 16)
        for position, ((image, target), (aug_image, aug_target)) in enumerate(zip(self.plain, self.augmented)):
            image_id = int(target["image_id"][0])
            self.assertEqual(int(aug_target["image_id"][0]), image_id)
            pixels = to_uint8(image)
            out, anns, counters = pasteflow.augment(pixels, self.anns.get(image_id, []), CONFIG, overrides=AUG,
                                                    sample_id=position, id_base=self.max_id)
            self.assertEqual(out.dtype, np.uint8)
            self.assertEqual(out.shape, pixels.shape)
            np.testing.assert_array_equal(out, to_uint8(aug_image), err_msg=f"image {image_id}")
            # The loader's targets drop crowd instances; augment returns every instance.
            ids = [a["id"] for a in anns if not a["iscrowd"]]
            self.assertEqual(ids, aug_target["annotation_ids"].tolist())
            self.assertEqual(counters["placed"], sum(a["pasted"] for a in anns))
            placed += counters["placed"]
            for a in anns:
                if a["pasted"]:
                    self.assertIn(a["source_id"], [b["id"] for b in self.anns[image_id]])
                    self.assertIsInstance(a["segmentation"]["counts"], str)
                    self.assertEqual(a["area"], float(pasteflow.mask.area(a["segmentation"])))
        self.assertGreater(placed, 10)

    def test_same_arguments_same_result_other_sample_id_other_result(self):
        image, target = self.plain[0]
        image_id = int(target["image_id"][0])
        pixels = to_uint8(image)
        a = pasteflow.augment(pixels, self.anns[image_id], overrides=AUG, sample_id=3)
        b = pasteflow.augment(pixels, self.anns[image_id], overrides=AUG, sample_id=3)
        c = pasteflow.augment(pixels, self.anns[image_id], overrides=AUG, sample_id=4)
        np.testing.assert_array_equal(a[0], b[0])
        self.assertEqual(a[1], b[1])
        self.assertFalse(np.array_equal(a[0], c[0]) and a[1] == c[1])

    def test_tensor_in_tensor_out(self):
        image, target = self.plain[1]
        image_id = int(target["image_id"][0])
        chw = (image * 255).round().to(torch.uint8)
        out, anns, _ = pasteflow.augment(chw, self.anns[image_id], overrides=AUG, sample_id=1)
        self.assertIsInstance(out, torch.Tensor)
        self.assertEqual(out.shape, chw.shape)
        ref, ref_anns, _ = pasteflow.augment(to_uint8(image), self.anns[image_id], overrides=AUG, sample_id=1)
        np.testing.assert_array_equal(out.permute(1, 2, 0).numpy(), ref)
        self.assertEqual(anns, ref_anns)

    def test_input_is_not_modified(self):
        image, target = self.plain[2]
        pixels = to_uint8(image)
        before = pixels.copy()
        pasteflow.augment(pixels, self.anns[int(target["image_id"][0])], overrides=AUG)
        np.testing.assert_array_equal(pixels, before)

    def test_bad_inputs_raise(self):
        with self.assertRaises(TypeError):
            pasteflow.augment(np.zeros((8, 8, 3), np.float32), [])
        with self.assertRaises(pasteflow.InputError):
            pasteflow.augment(np.zeros((8, 8, 4), np.uint8), [])
        with self.assertRaises(pasteflow.InputError):  # a 4-number polygon
            pasteflow.augment(np.zeros((8, 8, 3), np.uint8),
                              [{"category_id": 1, "bbox": [0, 0, 2, 2], "segmentation": [[0, 0, 2, 2]]}])
        with self.assertRaises(pasteflow.ConfigError):
            pasteflow.augment(np.zeros((8, 8, 3), np.uint8), [], overrides={"augment.strategy": "most"})


class Table2(unittest.TestCase):
    def test_equals_the_oracle(self):
        with open(os.path.join(DATA, "golden", "coco_mini_train2017_anchors.json")) as f:
            golden = json.load(f)
        path = os.path.join(DATA, "coco_mini", "instances_train2017.json")
        table = pasteflow.stats(path)
        with open(path) as f:
            from_dict = pasteflow.stats(json.load(f))
        self.assertEqual(table, from_dict)
        for size, row in golden["table"].items():
            for key, value in row.items():
                self.assertAlmostEqual(table["table"][size][key], value, delta=1e-5, msg=f"{size}.{key}")

    def test_missing_file_names_it(self):
        with self.assertRaises(pasteflow.Error) as e:
            pasteflow.stats("/nonexistent/instances.json")
        self.assertIn("/nonexistent/instances.json", str(e.exception))


if __name__ == "__main__":
    unittest.main()
