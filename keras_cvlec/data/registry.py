"""The data set registry: `list_datasets()` and `load_dataset()`.

One entry point for every data source the package knows: the embedded
`"shapes"` data set (NumPy, fed through a `keras.utils.PyDataset`, no
TensorFlow needed), tensorflow-datasets names (a `tf.data.Dataset`, see
`keras_cvlec.data.tfds`) and folders of the user's own images (see
`keras_cvlec.data.folders`). Every source yields `(images, targets)` batches:
float32 channels-last images in `[0, 1]` and int32 labels `(B,)` or masks
`(B, H, W)` with values in `0..num_classes-1`.
"""

import dataclasses
import numbers
import os

import numpy as np

from keras_cvlec.data import shapes
from keras_cvlec.data.augmentation import is_tf_tensor
from keras_cvlec.data.pydataset import ArrayDataset
from keras_cvlec.utils.validation import check_bool, check_choice, check_positive_int, check_seed

SPLITS = ("train", "validation", "test")
TASKS = ("classification", "segmentation")


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


def list_datasets():
    """Every registered data set name, sorted.

    Returns:
        A list of strings accepted by `load_dataset` (a folder path is
        accepted too).

    Example:

    >>> list_datasets()
    ['cifar10', 'cifar100', 'imagenette', 'oxford_iiit_pet', 'shapes']
    """
    from keras_cvlec.data.tfds import TFDS_DATASETS

    return sorted(["shapes", *TFDS_DATASETS])


def check_task(name, task, supported):
    """`task`, or the natural one (`supported[0]`) when None."""
    if task is None:
        return supported[0]
    check_choice("task", task, TASKS)
    if task not in supported:
        raise ValueError(
            f"Data set {name!r} has no {task!r} task. It supports: "
            f"{', '.join(repr(t) for t in supported)}."
        )
    return task


def check_image_size(image_size, default):
    """`image_size` (an int or an `(height, width)` pair, `default` when
    None) as an `(height, width)` tuple of ints."""
    if image_size is None:
        image_size = default
    if isinstance(image_size, numbers.Integral) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    if not (
        isinstance(image_size, (tuple, list))
        and len(image_size) == 2
        and all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in image_size)
        and min(image_size) >= 1
    ):
        raise ValueError(
            "`image_size` must be None, an int >= 1 or a (height, width) pair of "
            f"ints >= 1. Received: image_size={image_size!r}"
        )
    return tuple(int(s) for s in image_size)


def check_loader_options(split, batch_size, shuffle, augment, num_images, seed, one_hot):
    """Checks the options every loader shares.

    Returns:
        `(shuffle, augment)`: `shuffle` resolved (None -> True for
        `"train"`) and `augment` as given.
    """
    check_choice("split", split, SPLITS)
    check_positive_int("batch_size", batch_size)
    check_seed("seed", seed)
    if num_images is not None:
        check_positive_int("num_images", num_images)
    if shuffle is None:
        shuffle = split == "train"
    if not isinstance(shuffle, bool):
        raise TypeError(f"`shuffle` must be None or a bool. Received: shuffle={shuffle!r}")
    if not (isinstance(augment, bool) or callable(augment)):
        raise TypeError(
            "`augment` must be a bool or a callable (images, targets) -> (images, "
            f"targets). Received: augment={augment!r}"
        )
    check_bool("one_hot", one_hot)
    if augment is not False and split != "train":
        raise ValueError(
            f"`augment` is for training data only. Received: augment={augment!r} "
            f"with split={split!r}"
        )
    return shuffle, augment


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
    """The per-batch transform of a loader: the labels one-hot encoded (with
    `one_hot`), then the augmentation `augment` names; None for neither."""
    if augment is True:
        from keras_cvlec.data.augmentation import default_augmentation

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
        prefetched.
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

    return dataset.map(transform, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


SHUFFLE_BUFFER = 4096


def batch_tf_dataset(dataset, batch_size, *, shuffle, seed, augment):
    """The common end of the `tf.data` loaders.

    Args:
        dataset: a `tf.data.Dataset` of `(uint8 image (H, W, 3), int32
            target)` examples, already resized.
        batch_size: examples per batch.
        shuffle: reshuffle every epoch (a buffer of `SHUFFLE_BUFFER`
            examples, seeded by `seed`).
        seed: int seed of the shuffling.
        augment: None or a callable `(images, targets) -> (images, targets)`
            applied to every batch.

    Returns:
        The dataset cached (uint8, so it takes a quarter of float32's
        memory), shuffled, batched, scaled to float32 `[0, 1]`, augmented
        and prefetched.
    """
    import tensorflow as tf

    dataset = dataset.cache()
    if shuffle:
        dataset = dataset.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    dataset = dataset.map(
        lambda images, targets: (tf.cast(images, "float32") / 255.0, targets),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    if augment is not None:
        dataset = dataset.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _load_shapes(split, *, task, image_size, batch_size, shuffle, augment, num_images, seed,
                 one_hot):
    task = check_task("shapes", task, ("segmentation", "classification"))
    height, width = check_image_size(image_size, 64)
    if height != width:
        raise ValueError(
            "The 'shapes' data set has square images only. Received: "
            f"image_size={image_size!r}"
        )
    images, targets = shapes.shapes_dataset(
        split, num_images=num_images, image_size=height, task=task, seed=seed
    )
    class_names = shapes.CLASS_NAMES if task == "segmentation" else shapes.CLASS_NAMES[1:]
    info = DatasetInfo(
        "shapes", task, len(class_names), tuple(class_names), (height, width),
        num_examples=len(images),
    )
    dataset = ArrayDataset(
        images,
        targets,
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        transform=resolve_transform(augment, one_hot, task, info.num_classes, seed),
    )
    return dataset, info


def load_dataset(
    name_or_path,
    split="train",
    *,
    task=None,
    image_size=None,
    batch_size=32,
    shuffle=None,
    augment=False,
    num_images=None,
    seed=0,
    one_hot=False,
    data_dir=None,
    ignore_class=255,
    skip_bad_files=False,
):
    """Loads a data set as batches of `(images, targets)` for `model.fit`.

    Args:
        name_or_path: a name from `list_datasets()` or a folder of images
            (see `keras_cvlec.data.folders.load_folder`).
        split: `"train"`, `"validation"` or `"test"`.
        task: `"classification"` or `"segmentation"`; None for the data
            set's natural task ("shapes": segmentation, also classification;
            "oxford_iiit_pet": segmentation, also its 37 breeds; cifar and
            imagenette: classification only).
        image_size: int or `(height, width)` of the batches; None for the
            data set's default (shapes 64, cifar 32, pets 128, imagenette
            160, folders 128).
        batch_size: int >= 1.
        shuffle: reshuffle every epoch; None means True for `"train"`.
        augment: False; True for the task's default augmentation
            (`keras_cvlec.data.augmentation.default_augmentation`, sparse
            targets kept); or a callable `(images, targets) -> (images,
            targets)` such as `classification_augmentation(...)` with MixUp
            or CutMix. Training split only.
        num_images: None or an int: use only the first `num_images`
            examples of the split (folders: a subset drawn by `seed`), for
            tiny runs and tests.
        seed: int seed of the data (shapes), shuffling and augmentation.
        one_hot: classification only: labels as one-hot float32
            `(B, num_classes)` (for `keras.losses.CategoricalCrossentropy`,
            e.g. to evaluate a model trained with MixUp or CutMix).
        data_dir: tensorflow-datasets data directory (tfds names only).
        ignore_class: folders only: the mask value of "void" pixels (in no
            class), None to read every value as a class.
        skip_bad_files: folders only: leave out, with a warning, image and
            mask files that cannot be decoded instead of raising.

    Returns:
        `(dataset, info)`: for "shapes" a `keras.utils.PyDataset` (no
        TensorFlow needed), otherwise a batched `tf.data.Dataset`; `info` is
        a `DatasetInfo`.

    Example:

    >>> dataset, info = load_dataset("shapes", "test", num_images=8, image_size=32)
    >>> info.task, info.num_classes, dataset[0][0].shape
    ('segmentation', 4, (8, 32, 32, 3))
    """
    options = dict(
        task=task,
        image_size=image_size,
        batch_size=batch_size,
        shuffle=shuffle,
        augment=augment,
        num_images=num_images,
        seed=seed,
        one_hot=one_hot,
    )
    if name_or_path in list_datasets() and (ignore_class != 255 or skip_bad_files is not False):
        raise ValueError(
            "`ignore_class` and `skip_bad_files` are for folders of images only. "
            f"Received: ignore_class={ignore_class!r}, skip_bad_files={skip_bad_files!r} "
            f"with the {name_or_path!r} data set"
        )
    if name_or_path == "shapes":
        if data_dir is not None:
            raise ValueError(
                f"`data_dir` is for tensorflow-datasets names only. Received: "
                f"data_dir={data_dir!r} with the 'shapes' data set"
            )
        options["shuffle"], options["augment"] = check_loader_options(
            split, batch_size, shuffle, augment, num_images, seed, one_hot
        )
        return _load_shapes(split, **options)
    if name_or_path in list_datasets():
        from keras_cvlec.data.tfds import load_tfds

        return load_tfds(name_or_path, split, data_dir=data_dir, **options)
    if isinstance(name_or_path, (str, os.PathLike)) and os.path.isdir(name_or_path):
        if data_dir is not None:
            raise ValueError(
                f"`data_dir` is for tensorflow-datasets names only. Received: "
                f"data_dir={data_dir!r} with the folder {os.fspath(name_or_path)!r}"
            )
        from keras_cvlec.data.folders import load_folder

        return load_folder(
            name_or_path, split, ignore_class=ignore_class, skip_bad_files=skip_bad_files, **options
        )
    raise ValueError(
        f"Unknown data set: {name_or_path!r} is neither a registered name nor an "
        f"existing folder. Registered data sets: {', '.join(list_datasets())}."
    )
