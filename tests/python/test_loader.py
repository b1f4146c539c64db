"""pasteflow.Loader from Python: the batches equal the C++ consumer's bit for
bit (oracle: pipeline::Loader driven from C++, tests/python/dump_batches.cpp),
the torchvision output is what torchvision's Mask R-CNN takes, resuming and
epochs behave, and Ctrl-C / garbage collection mid-epoch stop the graph
cleanly. Data: the bundled sample (data/sample: 16 real COCO images)."""
import gc
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

import numpy as np
import torch

import pasteflow

SOURCE = os.environ.get("PASTEFLOW_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BINARY = os.environ.get("PASTEFLOW_BINARY_DIR", os.path.join(SOURCE, "build"))
CONFIG = os.path.join(SOURCE, "configs", "base.yaml")
ANNOTATIONS = os.path.join(SOURCE, "data", "sample", "annotations.json")
IMAGES = os.path.join(SOURCE, "data", "sample", "images")
# Paste augmentation on every copy, small images: every stage has work.
OVERRIDES = {"sampler.aug_mode": "replace", "augment.strategy": "several", "augment.num_objects": 3,
             "augment.copies": 2, "batch.min_size": 320, "batch.max_size": 512, "batch.hflip": True,
             "loader.batch_size": 3, "seed": 7}


def loader(**kw):
    args = dict(overrides=OVERRIDES, annotations=ANNOTATIONS, images=IMAGES)
    args.update(kw)
    return pasteflow.Loader(CONFIG, **args)


def cxx_batches(n, overrides):
    """The first n batches of the C++ consumer: {name: (bytes, shape, dtype)}."""
    with tempfile.TemporaryDirectory() as d:
        args = [os.path.join(BINARY, "tests", "dump_batches"), CONFIG, ANNOTATIONS, IMAGES, d, str(n)]
        args += [pasteflow.loader._override_text(k, v) for k, v in overrides.items()]
        subprocess.run(args, check=True)
        with open(os.path.join(d, "manifest.json")) as f:
            manifest = json.load(f)
        out = {}
        for name, meta in manifest.items():
            if isinstance(meta, dict):
                with open(os.path.join(d, name + ".bin"), "rb") as f:
                    out[name] = (f.read(), meta["shape"], meta["dtype"])
            else:
                out[name] = meta
        return out


def raw(t):
    return t.contiguous().numpy().tobytes()


class BitExact(unittest.TestCase):
    def check(self, output, threads):
        overrides = dict(OVERRIDES, **{"batch.output": output, "loader.threads": 2})
        ref = cxx_batches(3, overrides)
        with loader(output=output, overrides=dict(OVERRIDES, **{"loader.threads": threads})) as l:
            it = iter(l)
            for b in range(3):
                images, targets = next(it)
                p = f"b{b}"
                if output == "model":
                    data, shape, _ = ref[p + "_images"]
                    self.assertEqual(list(images.shape), shape)
                    self.assertEqual(images.dtype, torch.float32)
                    self.assertTrue(raw(images) == data, f"batch {b} images differ")
                else:
                    self.assertIsInstance(images, list)
                    for i, im in enumerate(images):
                        data, shape, _ = ref[f"{p}_image{i}"]
                        self.assertEqual(list(im.shape), shape)
                        self.assertTrue(raw(im) == data, f"batch {b} image {i} differs")
                for i, t in enumerate(targets):
                    q = f"{p}_t{i}_"
                    for key, name in (("boxes", "boxes"), ("labels", "labels"), ("masks", "masks"),
                                      ("area", "area"), ("annotation_ids", "annotation_ids")):
                        data, shape, _ = ref[q + name]
                        self.assertEqual(list(t[key].shape), shape, q + name)
                        self.assertTrue(raw(t[key]) == data, f"{q}{name} differs")
                    self.assertEqual(int(t["image_id"][0]), ref[q + "image_id"])
                    self.assertEqual(t["iscrowd"].dtype, torch.int64)

    def test_model_batches_equal_the_cxx_consumer(self):
        self.check("model", threads=1)

    def test_torchvision_batches_equal_the_cxx_consumer(self):
        self.check("torchvision", threads=2)


class TorchvisionFormat(unittest.TestCase):
    def test_images_in_unit_range_at_their_sizes_and_targets_in_that_frame(self):
        with loader(output="torchvision") as l:
            images, targets = next(iter(l))
        self.assertEqual(len(images), 3)
        for im, t in zip(images, targets):
            self.assertEqual(im.dim(), 3)
            self.assertEqual(im.shape[0], 3)
            self.assertGreaterEqual(float(im.min()), 0.0)
            self.assertLessEqual(float(im.max()), 1.0)
            h, w = im.shape[1:]
            self.assertEqual(t["masks"].shape[1:], (h, w))
            self.assertEqual(t["masks"].dtype, torch.uint8)
            self.assertEqual(t["boxes"].dtype, torch.float32)
            self.assertEqual(t["labels"].dtype, torch.int64)
            b = t["boxes"]
            self.assertTrue(bool((b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()))
            self.assertTrue(bool((b[:, 2] <= w).all() and (b[:, 3] <= h).all()))
            # Each box encloses its mask (the mask's own box, up to the pixel grid).
            for box, m in zip(b, t["masks"]):
                ys, xs = torch.nonzero(m, as_tuple=True)
                if len(xs):
                    self.assertLessEqual(float(box[0]), float(xs.min()) + 1)
                    self.assertGreaterEqual(float(box[2]), float(xs.max()))

    def test_torchvision_mask_rcnn_trains_on_pasteflow_batches(self):
        import torchvision
        torch.manual_seed(0)
        with loader(output="torchvision", overrides=dict(OVERRIDES, **{"loader.batch_size": 2})) as l:
            # From scratch (no weights here), small inputs; the sample's categories.
            model = torchvision.models.detection.maskrcnn_resnet50_fpn(
                weights=None, weights_backbone=None, num_classes=l.num_classes, min_size=256, max_size=384)
            model.train()
            opt = torch.optim.SGD(model.parameters(), lr=0.005, momentum=0.9, weight_decay=1e-4)
            images, targets = next(iter(l))
            losses = []
            for _ in range(5):  # the same batch: the loss falls when the targets fit the model's conventions
                loss_dict = model(images, targets)
                self.assertEqual(set(loss_dict), {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness",
                                                  "loss_rpn_box_reg"})
                loss = sum(loss_dict.values())
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
                opt.step()
                losses.append(float(loss))
        self.assertTrue(all(np.isfinite(losses)), losses)
        self.assertLess(losses[-1], 0.7 * losses[0], losses)


class Epochs(unittest.TestCase):
    def test_len_epochs_and_resume(self):
        with loader(output="torchvision") as l:
            self.assertEqual(len(l), (16 + 2) // 3)  # 16 images, batch 3, replace: one copy each
            ids0 = [[int(t["image_id"]) for t in tg] for _, tg in l]
            self.assertEqual(sum(len(x) for x in ids0), 16)
            self.assertEqual(l.state_dict()["epoch"], 1)
            ids1 = [[int(t["image_id"]) for t in tg] for _, tg in l]
            self.assertNotEqual(ids0, ids1)  # shuffled per epoch
            l.set_epoch(0)
            self.assertEqual([[int(t["image_id"]) for t in tg] for _, tg in l], ids0)
            # Resume mid-epoch: the remaining batches, bit for bit.
            l.set_epoch(1)
            it = iter(l)
            next(it)
            next(it)
            state = l.state_dict()
            self.assertEqual((state["epoch"], state["batch"]), (1, 2))
            rest = [(raw(ims[0]), [int(t["image_id"]) for t in tg]) for ims, tg in it]
        with loader(output="torchvision", overrides=dict(OVERRIDES, **{"loader.threads": 1})) as l2:
            l2.load_state_dict(state)
            again = [(raw(ims[0]), [int(t["image_id"]) for t in tg]) for ims, tg in l2]
        self.assertEqual(again, rest)
        self.assertEqual([x[1] for x in again], ids1[2:])

    def test_ranks_split_an_epoch(self):
        seen = []
        for rank in range(2):
            with loader(rank=rank, world_size=2, output="torchvision") as l:
                seen.append([int(t["image_id"]) for _, tg in l for t in tg])
        self.assertEqual(len(seen[0]), 8)
        with open(ANNOTATIONS) as f:
            ids = sorted(im["id"] for im in json.load(f)["images"])
        self.assertEqual(sorted(seen[0] + seen[1]), ids)

    def test_state_dict_of_another_stream_is_refused(self):
        with loader() as l:
            with self.assertRaises(ValueError):
                l.load_state_dict({"epoch": 0, "batch": 1, "seed": 8})

    def test_stats_count_stages_and_waits(self):
        with loader() as l:
            for _ in l:
                pass
            s = l.stats()
        self.assertEqual(set(s["stages"]), {"load", "augment", "prepare", "batch"})
        self.assertGreaterEqual(s["stages"]["load"]["calls"], 16)  # the graph prefetches into the next epoch
        self.assertEqual(s["samples"], 16)
        self.assertEqual(s["batches"], 6)
        self.assertGreaterEqual(s["wait_seconds"], 0.0)
        self.assertEqual(s["skipped"], 0)


class Errors(unittest.TestCase):
    def test_unknown_key_names_the_key(self):
        with self.assertRaises(pasteflow.ConfigError) as e:
            loader(overrides={"augment.copiez": 2})
        self.assertIn("augment.copiez", str(e.exception))

    def test_missing_annotations_file_names_it(self):
        with self.assertRaises(pasteflow.Error) as e:
            pasteflow.Loader(CONFIG, annotations="/nonexistent/a.json", images=IMAGES)
        self.assertIn("/nonexistent/a.json", str(e.exception))

    def test_pipeline_config_without_data_is_refused(self):
        with self.assertRaises(pasteflow.ConfigError):
            pasteflow.Loader(CONFIG)

    def test_bad_output_and_rank(self):
        with self.assertRaises(pasteflow.ConfigError):
            loader(output="detectron2")
        with self.assertRaises(pasteflow.ConfigError):
            loader(rank=2, world_size=2)

    def test_broken_image_under_skip_is_counted(self):
        with tempfile.TemporaryDirectory() as d:
            with open(ANNOTATIONS) as f:
                doc = json.load(f)
            for name in os.listdir(IMAGES):
                os.symlink(os.path.join(IMAGES, name), os.path.join(d, name))
            broken = doc["images"][0]["file_name"]
            os.unlink(os.path.join(d, broken))
            with open(os.path.join(d, broken), "wb") as f:
                f.write(b"not a jpeg")
            ann = os.path.join(d, "a.json")
            with open(ann, "w") as f:
                json.dump(doc, f)
            with pasteflow.Loader(CONFIG, overrides={"loader.on_error": "skip"}, annotations=ann, images=d) as l:
                n = sum(len(tg) for _, tg in l)
                self.assertEqual(n, 15)
                self.assertEqual(l.stats()["skipped"], 1)
            with pasteflow.Loader(CONFIG, annotations=ann, images=d) as l:
                with self.assertRaises(pasteflow.Error) as e:
                    for _ in l:
                        pass
                self.assertIn(broken, str(e.exception))


class Shutdown(unittest.TestCase):
    def test_garbage_collection_mid_epoch_stops_the_graph(self):
        for _ in range(3):
            l = loader(overrides=dict(OVERRIDES, **{"loader.prefetch": 4}))
            it = iter(l)
            next(it)
            t0 = time.monotonic()
            del it, l
            gc.collect()
            self.assertLess(time.monotonic() - t0, 30.0)
        # A loader made afterwards works as before.
        with loader() as l:
            self.assertEqual(sum(len(tg) for _, tg in l), 16)

    def test_ctrl_c_mid_epoch_exits_cleanly(self):
        script = textwrap.dedent(f"""
            import sys, pasteflow
            l = pasteflow.Loader({CONFIG!r}, overrides={{"loader.batch_size": 1, "loader.max_epochs": 0}},
                                 annotations={ANNOTATIONS!r}, images={IMAGES!r})
            try:
                while True:
                    for images, targets in l:
                        print("batch", flush=True)
            except KeyboardInterrupt:
                print("interrupted", flush=True)
                raise
        """)
        p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=os.environ)
        p.stdout.readline()  # the first batch arrived: the graph is running
        p.stdout.readline()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        self.assertIn("interrupted", out)
        self.assertIn("KeyboardInterrupt", err)
        self.assertNotIn("Fatal Python error", err)
        # Non-zero: Python ends an unhandled KeyboardInterrupt by re-raising SIGINT (-2).
        self.assertIn(p.returncode, (1, -signal.SIGINT))


if __name__ == "__main__":
    unittest.main()
