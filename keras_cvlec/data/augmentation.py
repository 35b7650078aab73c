"""Data augmentation with Keras's own preprocessing layers.

An `Augmentation` is a callable `(images, targets) -> (images, targets)` on a
batch: float32 channels-last images in `[0, 1]` and int32 labels `(B,)` or
masks `(B, H, W)`. It runs eagerly on any backend (the shapes
`keras.utils.PyDataset`) and inside `tf.data.Dataset.map` (Keras's
preprocessing layers switch to TensorFlow ops there).

Segmentation: the layers get `{"images": ..., "segmentation_masks": ...}`,
so every geometric layer draws one transform and applies it to the image
(bilinear) and to its mask (nearest, so mask values stay class ids);
brightness and contrast leave masks untouched.

Classification: flips, translations and zooms (a random crop that keeps the
size), RandAugment, and optionally CutMix and MixUp. Mixing blends labels, so
with `mixup_alpha` or `cutmix_alpha` > 0 the labels become one-hot float32
`(B, num_classes)` soft targets: train with
`keras.losses.CategoricalCrossentropy(label_smoothing=...)` and load the
evaluation splits one-hot as well (or evaluate with a sparse loss in a
second `compile`). Without mixing the labels stay sparse int32 and
`keras_cvlec.losses.SparseCategoricalCrossentropy(label_smoothing=...)`
applies.

Cost: Keras's affine layers (translation, zoom, rotation) and RandAugment are
cheap as a TensorFlow graph but slow eagerly off the TF backend, so an
`Augmentation` called on NumPy arrays (the shapes `PyDataset`) runs as a
`tf.function` when TensorFlow is installed, whatever the Keras backend (as
Keras's layers do inside `tf.data`). Measured on this 2-core CPU (busy), one
batch of 32 64x64 images, RandAugment (2 ops) + CutMix + MixUp: eager 7.9 s
on torch and 3.2 s on JAX, as a graph 0.28 s and 0.58 s
(`python benchmarks/augmentation.py`). The first call traces the graph:
RandAugment's takes about 4 s on the TF backend but about 50 s on JAX (Keras
builds a much larger graph there), once per `Augmentation` and batch shape.
Without TensorFlow it runs eagerly on the backend.
"""

import importlib.util

import keras
import numpy as np

from keras_cvlec.tasks import TRAINABLE_TASKS
from keras_cvlec.utils.validation import (
    MAX_SEED,
    check_choice,
    check_float,
    check_positive_int,
    check_seed,
)

__all__ = [
    "FLIP_MODES",
    "Augmentation",
    "RandomRotation",
    "classification_augmentation",
    "default_augmentation",
    "segmentation_augmentation",
]

FLIP_MODES = ("horizontal", "vertical", "horizontal_and_vertical")


def is_tf_tensor(x):
    """Whether `x` is a TensorFlow tensor (inside `tf.data` or a
    `tf.function`, whatever the Keras backend)."""
    return type(x).__module__.startswith("tensorflow")


def _tensor_ops(x):
    """The op namespace for `x`: `tf` for TensorFlow tensors, `keras.ops`
    otherwise."""
    if is_tf_tensor(x):
        import tensorflow as tf

        return tf
    return keras.ops


class RandomRotation(keras.layers.RandomRotation):
    """`keras.layers.RandomRotation` that rotates masks like their images.

    Keras 3.15's torch `affine_transform` swaps the entries of its transform
    matrix in place, so the mask (transformed second) got another rotation
    than its image; each use gets a copy of the matrix here.
    """

    def _copied(self, transformation):
        matrix = self.backend.numpy.copy(transformation["rotation_matrix"])
        return {**transformation, "rotation_matrix": matrix}

    def transform_images(self, images, transformation, training=True):
        return super().transform_images(images, self._copied(transformation), training)

    def transform_segmentation_masks(self, segmentation_masks, transformation, training=True):
        return super().transform_segmentation_masks(
            segmentation_masks, self._copied(transformation), training
        )


class Augmentation:
    """Random augmentation of `(images, targets)` batches by Keras layers.

    Build one with `segmentation_augmentation`, `classification_augmentation`
    or `default_augmentation`.

    Args:
        task: `"segmentation"` or `"classification"`.
        layers: the Keras preprocessing layers, applied in order.
        num_classes: the number of classes; needed (and only used) to
            one-hot encode sparse labels before a mixing layer.

    Attributes:
        pipeline: the `keras.layers.Pipeline` of `layers`.
        one_hot: whether the targets come out one-hot (mixing layers).
    """

    def __init__(self, task, layers, *, num_classes=None):
        self.task = check_choice("task", task, TRAINABLE_TASKS)
        self.pipeline = keras.layers.Pipeline(list(layers))
        self.one_hot = any(
            isinstance(layer, (keras.layers.MixUp, keras.layers.CutMix)) for layer in layers
        )
        if self.one_hot:
            if task != "classification":
                raise ValueError(
                    "MixUp and CutMix blend labels: they are for the classification "
                    f"task only. Received: task={task!r}"
                )
            check_positive_int("num_classes", num_classes, minimum=2)
        self.num_classes = num_classes
        self._graph = None
        self._tensorflow_installed = importlib.util.find_spec("tensorflow") is not None

    def __call__(self, images, targets):
        if isinstance(images, np.ndarray) and self._tensorflow_installed:
            if self._graph is None:
                import tensorflow as tf

                self._graph = tf.function(self._apply, reduce_retracing=True)
            images, targets = self._graph(images, targets)
            return images.numpy(), targets.numpy()
        return self._apply(images, targets)

    def _apply(self, images, targets):
        ops = _tensor_ops(images)
        images, targets = ops.convert_to_tensor(images), ops.convert_to_tensor(targets)
        if self.task == "segmentation":
            masks = ops.cast(ops.expand_dims(targets, -1), "float32")
            data = self.pipeline({"images": images, "segmentation_masks": masks})
            # Nearest interpolation copies mask values, so the cast is exact.
            return data["images"], ops.cast(ops.squeeze(data["segmentation_masks"], -1), "int32")
        sparse = len(targets.shape) == 1
        if self.one_hot and sparse:
            targets = ops.one_hot(ops.cast(targets, "int32"), self.num_classes)
            sparse = False
        data = self.pipeline({"images": images, "labels": targets})
        return data["images"], ops.cast(data["labels"], "int32" if sparse else "float32")


def _geometric_layers(flip, translation, zoom, rotation):
    """`(layer class, arguments)` of the geometric layers (None or 0 leaves
    one out)."""
    layers = []
    if flip is not None:
        layers.append((keras.layers.RandomFlip, {"mode": check_choice("flip", flip, FLIP_MODES)}))
    if check_float("translation", translation, 0.0):
        layers.append(
            (
                keras.layers.RandomTranslation,
                {"height_factor": translation, "width_factor": translation},
            )
        )
    if check_float("zoom", zoom, 0.0):
        layers.append((keras.layers.RandomZoom, {"height_factor": (-zoom, zoom)}))
    if check_float("rotation", rotation, 0.0):
        layers.append((RandomRotation, {"factor": rotation}))
    return layers


def _build(layers, seed):
    """Builds `(layer class, arguments)` pairs as float32 layers (outputs
    stay float32 under a mixed-precision policy), layer `i` seeded with
    `seed + i`, modulo `MAX_SEED + 1` (unseeded when `seed` is None)."""
    seed = check_seed("seed", seed)
    return [
        cls(
            **kwargs,
            dtype="float32",
            seed=None if seed is None else (seed + index) % (MAX_SEED + 1),
        )
        for index, (cls, kwargs) in enumerate(layers)
    ]


def segmentation_augmentation(
    *,
    flip="horizontal",
    translation=0.1,
    zoom=0.1,
    rotation=0.0,
    brightness=0.2,
    contrast=0.2,
    seed=None,
):
    """The same geometric transform on image and mask, photometric on the image.

    Args:
        flip: None or a `keras.layers.RandomFlip` mode (`"horizontal"`,
            `"vertical"`, `"horizontal_and_vertical"`).
        translation: largest shift, a fraction of height and width (0: none).
        zoom: largest zoom in or out, a fraction (0: none).
        rotation: largest rotation, a fraction of a full turn (0: none).
        brightness: `keras.layers.RandomBrightness` factor (0: none).
        contrast: `keras.layers.RandomContrast` factor (0: none).
        seed: None or an int; layer `i` is seeded with `seed + i`.

    Returns:
        An `Augmentation` of `(images, masks)` batches.

    Example:

    >>> augment = segmentation_augmentation(seed=0)
    >>> images, masks = augment(np.zeros((2, 16, 16, 3), "float32"), np.zeros((2, 16, 16), "int32"))
    >>> tuple(masks.shape)
    (2, 16, 16)
    """
    layers = _geometric_layers(flip, translation, zoom, rotation)
    unit_range = {"value_range": (0.0, 1.0)}
    if check_float("brightness", brightness, 0.0):
        layers.append((keras.layers.RandomBrightness, {"factor": brightness, **unit_range}))
    if check_float("contrast", contrast, 0.0):
        layers.append((keras.layers.RandomContrast, {"factor": contrast, **unit_range}))
    return Augmentation("segmentation", _build(layers, seed))


def classification_augmentation(
    num_classes=None,
    *,
    flip="horizontal",
    translation=0.1,
    zoom=0.0,
    rand_augment_ops=0,
    rand_augment_factor=0.5,
    cutmix_alpha=0.0,
    mixup_alpha=0.0,
    seed=None,
):
    """Flip, translate/zoom, and optionally RandAugment, CutMix and MixUp.

    Args:
        num_classes: the number of classes, required with mixing (the labels
            are then one-hot encoded).
        flip: None or a `keras.layers.RandomFlip` mode.
        translation: largest shift, a fraction of height and width (0: none).
        zoom: largest zoom in or out, a fraction (0: none).
        rand_augment_ops: `keras.layers.RandAugment`'s `num_ops` (0: no
            RandAugment; see the module docstring for its cost).
        rand_augment_factor: RandAugment's strength `factor` in `[0, 1]`.
        cutmix_alpha: `keras.layers.CutMix`'s `factor` (0: no CutMix).
        mixup_alpha: `keras.layers.MixUp`'s `alpha` (0: no MixUp). With both,
            CutMix is applied first, then MixUp blends the results.
        seed: None or an int; layer `i` is seeded with `seed + i`.

    Returns:
        An `Augmentation` of `(images, labels)` batches; its targets are
        one-hot float32 when a mixing layer is on (`augmentation.one_hot`).

    Example:

    >>> augment = classification_augmentation(3, mixup_alpha=0.2, seed=0)
    >>> _, labels = augment(np.zeros((4, 16, 16, 3), "float32"), np.array([0, 1, 2, 0]))
    >>> tuple(labels.shape)
    (4, 3)
    """
    layers = _geometric_layers(flip, translation, zoom, 0.0)
    if check_positive_int("rand_augment_ops", rand_augment_ops, minimum=0):
        factor = check_float("rand_augment_factor", rand_augment_factor, 0.0)
        layers.append(
            (
                keras.layers.RandAugment,
                {"value_range": (0.0, 1.0), "num_ops": rand_augment_ops, "factor": factor},
            )
        )
    if check_float("cutmix_alpha", cutmix_alpha, 0.0):
        layers.append((keras.layers.CutMix, {"factor": cutmix_alpha}))
    if check_float("mixup_alpha", mixup_alpha, 0.0):
        layers.append((keras.layers.MixUp, {"alpha": mixup_alpha}))
    return Augmentation("classification", _build(layers, seed), num_classes=num_classes)


def default_augmentation(task, *, num_classes=None, seed=None):
    """The augmentation `load_dataset(..., augment=True)` uses: the defaults
    of `segmentation_augmentation` or `classification_augmentation` (no
    mixing, so targets stay sparse int32; no RandAugment)."""
    check_choice("task", task, TRAINABLE_TASKS)
    if task == "segmentation":
        return segmentation_augmentation(seed=seed)
    return classification_augmentation(num_classes, seed=seed)
