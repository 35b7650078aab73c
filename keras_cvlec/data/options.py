"""What every loader shares: the options it takes (`LoaderOptions`), the
record it returns (`DatasetInfo`), the per-batch transform (one-hot
labels, then augmentation) it maps over its batches (`resolve_transform`,
`map_batches`), and the epoch its shuffling is at (`set_epoch`).

Every loader yields `(images, targets)` batches: float32 channels-last images
in `[0, 1]` and int32 labels `(B,)` or masks `(B, H, W)` with values in
`0..num_classes-1` (one-hot float32 labels `(B, num_classes)` with
`one_hot=True`).
"""

import dataclasses

import numpy as np

from keras_cvlec.data._tf_pipeline import epoch_variable, keep_epoch_variable
from keras_cvlec.data.augmentation import default_augmentation, is_tf_tensor
from keras_cvlec.data.pydataset import ArrayDataset
from keras_cvlec.tasks import TRAINABLE_TASKS
from keras_cvlec.utils.validation import (
    check_bool,
    check_choice,
    check_image_size,
    check_positive_int,
    check_seed,
)

__all__ = [
    "SPLITS",
    "DatasetInfo",
    "LoaderOptions",
    "map_batches",
    "resolve_transform",
    "set_epoch",
]

SPLITS = ("train", "validation", "test")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a loaded data set holds.

    Attributes:
        name: the registered name (`"shapes"`, `"cifar10"`, ...) or the
            folder path.
        task: `"classification"` (targets are labels `(B,)`) or
            `"segmentation"` (targets are masks `(B, H, W)`).
        num_classes: the number of classes; targets are in
            `0..num_classes-1`.
        class_names: a tuple of `num_classes` strings.
        image_size: `(height, width)` of the batches.
        num_examples: the number of examples of the loaded split (after
            `num_images`), or None where the source cannot tell cheaply.
        ignore_class: None, or the target value that marks pixels to leave
            out of the loss and metrics (255, "void", in segmentation
            folders).
        splits: the splits the source has (a tuple of `SPLITS`); a source
            without `"test"` is evaluated on its validation split only.
    """

    name: str
    task: str
    num_classes: int
    class_names: tuple
    image_size: tuple
    num_examples: int = None
    ignore_class: int = None
    splits: tuple = SPLITS


@dataclasses.dataclass(frozen=True)
class LoaderOptions:
    """The options every loader takes, checked on construction.

    `load_dataset`, `load_tfds` and `load_folder` take these as keyword
    arguments (`split` also positionally) and build one `LoaderOptions`.

    Args:
        split: `"train"`, `"validation"` or `"test"`.
        task: `"classification"` or `"segmentation"`; None for the data
            set's natural task ("shapes": segmentation, also classification;
            "oxford_iiit_pet": segmentation, also its 37 breeds; cifar and
            imagenette: classification only; a folder: the one its layout
            holds).
        image_size: int or `(height, width)` of the batches; None for the
            data set's default (shapes 64, cifar 32, oxford_iiit_pet 128,
            imagenette 160, folders 128).
        batch_size: int >= 1.
        shuffle: reshuffle every epoch; None means True for `"train"`
            (the attribute holds the resolved bool).
        augment: False; True for the task's default augmentation
            (`keras_cvlec.data.augmentation.default_augmentation`, sparse
            targets kept); or a callable `(images, targets) -> (images,
            targets)` such as `classification_augmentation(...)` with MixUp
            or CutMix. Training split only.
        num_images: None or an int: use only the first `num_images`
            examples of the split (folders: a subset drawn by `seed`), for
            tiny runs and tests.
        seed: int seed of the data (shapes), a folder's validation share
            and `num_images` subset, shuffling and augmentation. None leaves
            them unseeded, different in every run (the shapes data is then
            that of seed 0; a folder's validation share is drawn once per
            process, so the splits loaded in one run stay disjoint).
        one_hot: classification only: labels as one-hot float32
            `(B, num_classes)` (for `keras.losses.CategoricalCrossentropy`,
            e.g. to evaluate a model trained with MixUp or CutMix).

    Example:

    >>> options = LoaderOptions("validation", image_size=32)
    >>> options.shuffle, options.resolve_task("shapes", ("segmentation", "classification"))
    (False, 'segmentation')
    """

    split: str = "train"
    task: str = None
    image_size: object = None
    batch_size: int = 32
    shuffle: bool = None
    augment: object = False
    num_images: int = None
    seed: int = 0
    one_hot: bool = False

    @classmethod
    def from_keywords(cls, caller, split, options):
        """`LoaderOptions(split, **options)` for the loader function `caller`;
        an unknown keyword is a TypeError that names `caller` and lists the
        options."""
        allowed = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise TypeError(
                f"{caller}() got an unexpected keyword argument {unknown[0]!r}. "
                f"Loader options: {', '.join(allowed)}."
            )
        return cls(split=split, **options)

    def __post_init__(self):
        check_choice("split", self.split, SPLITS)
        check_positive_int("batch_size", self.batch_size)
        check_seed("seed", self.seed)
        if self.num_images is not None:
            check_positive_int("num_images", self.num_images)
        if self.shuffle is None:
            object.__setattr__(self, "shuffle", self.split == "train")
        check_bool("shuffle", self.shuffle)
        if not (isinstance(self.augment, bool) or callable(self.augment)):
            raise TypeError(
                "`augment` must be a bool or a callable (images, targets) -> (images, "
                f"targets). Received: augment={self.augment!r}"
            )
        check_bool("one_hot", self.one_hot)
        if self.augment is not False and self.split != "train":
            raise ValueError(
                f"`augment` is for training data only. Received: augment={self.augment!r} "
                f"with split={self.split!r}"
            )
        if self.task is not None:
            check_choice("task", self.task, TRAINABLE_TASKS)
        check_image_size(self.image_size)

    def resolve_task(self, name, supported):
        """The task to load from data set `name`.

        Args:
            name: the data set's name or folder, for the error message.
            supported: the tasks it has, its natural one first.

        Returns:
            `task`, or `supported[0]` when `task` is None.
        """
        if self.task is None:
            return supported[0]
        if self.task not in supported:
            raise ValueError(
                f"Data set {name!r} has no {self.task!r} task. It supports: "
                f"{', '.join(repr(t) for t in supported)}."
            )
        return self.task

    def transform(self, task, num_classes):
        """The per-batch transform these options ask of a data set of `task`
        and `num_classes` (see `resolve_transform`)."""
        return resolve_transform(self.augment, self.one_hot, task, num_classes, self.seed)


def _one_hot_labels(num_classes):
    """`(images, labels) -> (images, one-hot float32 labels)`, in TensorFlow
    inside `tf.data`, in NumPy otherwise."""

    def encode(images, labels):
        if is_tf_tensor(labels):
            import tensorflow as tf

            return images, tf.one_hot(labels, num_classes, dtype="float32")
        return images, np.eye(num_classes, dtype="float32")[np.asarray(labels)]

    return encode


def resolve_transform(augment, one_hot, task, num_classes, seed):
    """The per-batch transform of a loader: the labels one-hot encoded, then
    augmented.

    Args:
        augment: False, True (the task's `default_augmentation`, seeded by
            `seed`) or a callable `(images, targets) -> (images, targets)`.
        one_hot: whether to one-hot encode the labels (classification only).
        task: `"classification"` or `"segmentation"`.
        num_classes: the number of classes.
        seed: None or an int, the seed of the default augmentation.

    Returns:
        A callable `(images, targets) -> (images, targets)`, or None when
        there is nothing to do.

    Example:

    >>> encode = resolve_transform(False, True, "classification", 3, seed=0)
    >>> encode(np.zeros((2, 4, 4, 3)), np.array([0, 2]))[1]
    array([[1., 0., 0.],
           [0., 0., 1.]], dtype=float32)
    """
    if augment is True:
        augment = default_augmentation(task, num_classes=num_classes, seed=seed)
    augment = augment or None
    if not one_hot:
        return augment
    if task != "classification":
        raise ValueError(
            f"`one_hot` encodes class labels: it is for the classification task only. "
            f"Received: one_hot=True with task={task!r}"
        )
    encode = _one_hot_labels(num_classes)
    if augment is None:
        return encode
    return lambda images, labels: augment(*encode(images, labels))


def map_batches(dataset, transform):
    """`dataset` with `transform` applied to each of its batches.

    Args:
        dataset: a loader's dataset: an `ArrayDataset` or a batched
            `tf.data.Dataset`.
        transform: a callable `(images, targets) -> (images, targets)`, e.g.
            an augmentation built once the data set's size is known.

    Returns:
        A dataset of the same kind: an `ArrayDataset` whose transform runs
        `transform` after its own, or the `tf.data.Dataset` mapped and
        prefetched (its epoch, see `set_epoch`, is that of `dataset`).
    """
    if not callable(transform):
        raise TypeError(f"`transform` must be a callable. Received: transform={transform!r}")
    if isinstance(dataset, ArrayDataset):
        first = dataset.transform
        return ArrayDataset(
            dataset.images,
            dataset.targets,
            batch_size=dataset.batch_size,
            shuffle=dataset.shuffle,
            seed=dataset.seed,
            transform=transform if first is None else lambda x, y: transform(*first(x, y)),
        )
    import tensorflow as tf

    mapped = dataset.map(transform, num_parallel_calls=tf.data.AUTOTUNE)
    return keep_epoch_variable(mapped.prefetch(tf.data.AUTOTUNE), dataset)


def set_epoch(dataset, epoch):
    """Orders the next pass over a loader's dataset as pass `epoch` (0: the
    first) of one loaded afresh, e.g. for a run that resumes there.

    A shuffled split with a seed orders pass `e` by `(seed, e)` and moves on
    one epoch at every pass over it; without a seed (or without shuffling)
    the epoch changes nothing. A resumed `train` sets the epoch its backup
    restarts at, so it takes the examples in the order of a run not stopped,
    on every backend and distribution.

    Args:
        dataset: an `ArrayDataset`, or a `tf.data.Dataset` from a loader
            (tensorflow-datasets or a folder), also after `map_batches`.
        epoch: int >= 0.

    Example:

    >>> x, y = np.zeros((4, 2, 2, 3), "float32"), np.arange(4)
    >>> dataset = ArrayDataset(x, y, batch_size=4, shuffle=True)
    >>> set_epoch(dataset, 1)
    >>> dataset.epoch
    1
    """
    epoch = check_positive_int("epoch", epoch, minimum=0)
    if isinstance(dataset, ArrayDataset):
        dataset.set_epoch(epoch)
        return
    variable = epoch_variable(dataset)
    if variable is None:
        raise TypeError(
            "`dataset` must be an ArrayDataset or a tf.data.Dataset from a keras_cvlec "
            "loader (or `map_batches` of one): another dataset has no epoch to set. "
            f"Received: dataset of type {type(dataset).__name__}"
        )
    variable.assign(epoch)
