"""pasteflow.Loader: pasteflow's prefetching loader as a Python iterable.

The oneTBB flow graph (decode, paste augmentation, batching) runs in C++
threads; the Python thread only waits for ready batches, with the GIL
released, and receives them as torch tensors that share the C++ memory.
"""
import json
import os

from . import _pasteflow

__all__ = ["Loader"]


def _override_text(key, value):
    """One key=value override as the config loader reads it (YAML values)."""
    if not isinstance(key, str) or not key:
        raise TypeError(f"override keys must be non-empty strings, not {key!r}")
    if isinstance(value, str):
        text = json.dumps(value)  # a JSON string is a YAML double-quoted scalar
    elif isinstance(value, (bool, int, float, list, tuple)) or value is None:
        text = json.dumps(list(value) if isinstance(value, tuple) else value)
    else:
        raise TypeError(f"override {key}: unsupported value type {type(value).__name__}")
    return f"{key}={text}"


class Loader:
    """An iterable of training batches, one epoch per iteration.

    Loader(config, overrides={}, rank=0, world_size=1, output="model",
           annotations=None, images=None)

    config: a training config (its `data.train_annotations` / `train_images`
        and `pipeline` sections are used) or a pipeline config (then
        `annotations` and `images` are required). Paths in the config are
        relative to the working directory, as for the `pasteflow` program.
    overrides: {"augment.copies": 3, ...}; keys of a training config are
        relative to its `pipeline` section unless they start with one of its
        root keys ("data.train_fraction": 0.5).
    rank, world_size: this process's shard of every epoch (DistributedSampler
        semantics; torch.distributed users pass dist.get_rank() and
        dist.get_world_size()).
    output: "model" - each item is (images, targets) with images the
        normalised, resized, zero-padded float32 [N, 3, H, W] batch that
        pasteflow's own Mask R-CNN takes (targets carry "image_size");
        "torchvision" - images is a list of float32 [3, h, w] tensors in
        [0, 1] at their augmented sizes, as torchvision's detection models
        take them (they resize and normalise themselves).

    targets: one dict per image with "boxes" (float32 [n, 4] x1 y1 x2 y2),
    "labels" (int64 [n], 1..K; `categories` maps them back), "masks" (uint8
    [n, h, w], unless batch.keep_masks is off), "image_id" (int64 [1]),
    "area" (float32 [n]), "iscrowd" (int64 [n]) and "annotation_ids".

    Epochs: each iter() runs the next epoch (epoch 0 first); set_epoch(e)
    makes the next iter() run epoch e. Every random choice depends only on
    (seed, epoch, position), so state_dict() / load_state_dict() resume the
    stream exactly, at any thread count.
    """

    def __init__(self, config, overrides=None, rank=0, world_size=1, output="model", annotations=None,
                 images=None):
        items = [] if overrides is None else list(dict(overrides).items())
        self._c = _pasteflow.Loader(
            os.fspath(config), [_override_text(k, v) for k, v in items], int(rank), int(world_size), str(output),
            "" if annotations is None else os.fspath(annotations), "" if images is None else os.fspath(images))
        self.output = output
        self._resume = False  # load_state_dict / set_epoch chose where the next iter() starts

    # -- iteration ----------------------------------------------------------
    def __iter__(self):
        c = self._c
        if not self._resume and c.batch != 0:
            # The previous iteration stopped mid-epoch: start the next one,
            # as a torch DataLoader would start afresh.
            c.seek(c.epoch + 1, 0)
        self._resume = False
        while True:
            item = c.next_batch()
            if item is None:
                return
            yield item

    def __len__(self):
        """Batches in the current epoch on this rank."""
        return self._c.batches_per_epoch(self._c.epoch)

    def set_epoch(self, epoch):
        """The next iter() runs epoch `epoch` from its first batch."""
        epoch = int(epoch)
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, not {epoch}")
        self._c.seek(epoch, 0)
        self._resume = True

    @property
    def epoch(self):
        """The epoch the next batch belongs to."""
        return self._c.epoch

    # -- resumable sampling -------------------------------------------------
    def state_dict(self):
        """Where the stream is: the next batch is batch `batch` of `epoch`."""
        c = self._c
        return {"epoch": c.epoch, "batch": c.batch, "seed": c.seed, "batch_size": c.batch_size,
                "rank": c.rank, "world_size": c.world_size}

    def load_state_dict(self, state):
        """Continue exactly where state_dict() was taken: the next iter()
        yields the remaining batches of that epoch."""
        c = self._c
        for key in ("seed", "batch_size", "world_size", "rank"):
            if key in state and int(state[key]) != getattr(c, key):
                raise ValueError(f"state_dict[{key!r}] is {state[key]}, this loader's is {getattr(c, key)}: "
                                 "the stream would not be the one saved")
        epoch, batch = int(state["epoch"]), int(state["batch"])
        if epoch < 0 or batch < 0:
            raise ValueError(f"state_dict epoch {epoch} / batch {batch} must be >= 0")
        c.seek(epoch, batch)
        self._resume = True

    # -- facts --------------------------------------------------------------
    def stats(self):
        """Counters: per-stage calls and seconds (summed over threads), the
        consumer's wait, batches, samples, skipped samples by reason, TIFF
        tile cache."""
        return self._c.stats()

    @property
    def categories(self):
        """[(dataset category id, name)] of labels 1..K in order."""
        return self._c.categories()

    @property
    def num_classes(self):
        """K + 1 (background): torchvision's num_classes."""
        return len(self._c.categories()) + 1

    @property
    def batch_size(self):
        return self._c.batch_size

    def config_yaml(self):
        """The pipeline config in effect, every key (pasteflow's dump)."""
        return self._c.config_yaml()

    def close(self):
        """Stops and drains the graph now (also done when the loader is
        garbage-collected)."""
        self._c.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
