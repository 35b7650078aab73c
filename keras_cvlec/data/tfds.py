"""tensorflow-datasets loaders with `tf.data` pipelines.

Each data set is a row of `TFDS_DATASETS`. Splits map the same way for all:
`"train"` is the first 90 % of tfds's `train` split, `"validation"` its last
10 % (tfds split slicing: none of these data sets has a validation split
separate from its test split), and `"test"` is the held-out split (`test`
for cifar10/cifar100/oxford_iiit_pet, `validation` for imagenette, whose
labelled held-out split tfds calls validation).

oxford_iiit_pet's `segmentation_mask` is a trimap with 1 = pet, 2 =
background, 3 = border (the pixels around the pet's outline); it is remapped
to 0 = background, 1 = pet, 2 = border. Its classification task predicts the
37 breeds (`label`).

The pipeline: decode, resize (bilinear for images, nearest for masks) to
`image_size` (no aspect-ratio preservation), cache as uint8, shuffle, batch,
scale to float32 `[0, 1]`, augment, prefetch.

Install: `pip install keras-cvlec[tfds]` (TensorFlow and tensorflow-datasets).

Data: a data set is read from `data_dir` (None: tfds's default,
`$TFDS_DATA_DIR` or `~/tensorflow_datasets`). When it is not there, it is
downloaded and prepared there on first use, after a check that its server
answers within `PROBE_TIMEOUT` seconds; without a connection the loader
raises `DatasetUnavailableError` within seconds. For an offline machine,
prepare the data on a connected one with the same tensorflow-datasets version
(`tfds build cifar10`, or `tfds.load("cifar10")` in Python) and copy its
`~/tensorflow_datasets/cifar10/` folder into `data_dir`.
"""

import dataclasses
import os

from keras_cvlec.data._tf_pipeline import batch_tf_dataset
from keras_cvlec.data.options import SPLITS, DatasetInfo, LoaderOptions
from keras_cvlec.utils.validation import check_choice, check_image_size

__all__ = [
    "TFDS_DATASETS",
    "DatasetUnavailableError",
    "TfdsSpec",
    "download_and_prepare",
    "load_tfds",
    "tfds_split",
]

PET_MASK_CLASSES = ("background", "pet", "border")

# Seconds a data set's download server has to answer before the loader gives
# up: tfds itself retries a failed connection for minutes.
PROBE_TIMEOUT = 5


class DatasetUnavailableError(FileNotFoundError, RuntimeError):
    """A tensorflow-datasets data set is not in `data_dir` and cannot be
    downloaded (e.g. on a machine without internet access).

    A `RuntimeError` (the arguments are fine, the machine lacks the data) and
    a `FileNotFoundError` (the data set's files are missing), which the
    `keras-cvlec` command reports as a one-line message.
    """


@dataclasses.dataclass(frozen=True)
class TfdsSpec:
    """One tensorflow-datasets data set.

    Attributes:
        tasks: the tasks it supports, the natural one first.
        image_size: the default height and width of its batches.
        test_split: the tfds split served as `"test"`.
    """

    tasks: tuple
    image_size: int
    test_split: str


TFDS_DATASETS = {
    "cifar10": TfdsSpec(("classification",), 32, "test"),
    "cifar100": TfdsSpec(("classification",), 32, "test"),
    "imagenette": TfdsSpec(("classification",), 160, "validation"),
    "oxford_iiit_pet": TfdsSpec(("segmentation", "classification"), 128, "test"),
}


def tfds_split(name, split):
    """The tfds split string that `split` reads for data set `name`."""
    check_choice("split", split, SPLITS)
    return {
        "train": "train[:90%]",
        "validation": "train[90%:]",
        "test": TFDS_DATASETS[name].test_split,
    }[split]


def _pet_trimap_to_classes(mask):
    """tfds's trimap (1 pet, 2 background, 3 border) -> 0 background, 1 pet,
    2 border; any other value fails the pipeline with a message."""
    import tensorflow as tf

    mask = tf.cast(mask, "int32")
    message = (
        "oxford_iiit_pet segmentation_mask values must be 1 (pet), 2 (background) or 3 (border)"
    )
    checks = [
        tf.debugging.assert_greater_equal(mask, 1, message=message),
        tf.debugging.assert_less_equal(mask, 3, message=message),
    ]
    with tf.control_dependencies(checks):
        return tf.gather(tf.constant([0, 1, 0, 2]), mask)


def _unavailable_message(builder, error):
    import tensorflow_datasets as tfds

    name = builder.name
    data_dir = os.fspath(builder.data_dir_root)
    return (
        f"The data set {name!r} is not prepared in data_dir {data_dir!r} and "
        "cannot be downloaded here. To use it offline: on a machine with "
        f"internet access and tensorflow-datasets {tfds.__version__}, run "
        f"`tfds build {name}` (or `tfds.load({name!r})` in Python), then copy "
        f"its folder ~/tensorflow_datasets/{name}/ into {data_dir} (so that "
        f"{os.fspath(builder.data_path)}/dataset_info.json exists), or point "
        "data_dir (or the TFDS_DATA_DIR environment variable) at a folder that "
        f"holds it. Download error: {type(error).__name__}: {error}"
    )


def download_and_prepare(builder):
    """Downloads and prepares a tfds data set, failing fast without network.

    Args:
        builder: a `tfds.core.DatasetBuilder` whose data is not prepared.

    Raises:
        DatasetUnavailableError: its download server does not answer within
            `PROBE_TIMEOUT` seconds, or the download fails.
    """
    import requests
    import tensorflow_datasets as tfds

    try:
        urls = builder.url_infos or {}
        if urls:
            requests.head(next(iter(urls)), timeout=PROBE_TIMEOUT)
        builder.download_and_prepare()
    except (requests.RequestException, tfds.download.DownloadError) as error:
        raise DatasetUnavailableError(_unavailable_message(builder, error)) from error


def load_tfds(name, split="train", *, data_dir=None, **options):
    """Loads a tensorflow-datasets data set as batches of `(images, targets)`.

    Args:
        name: one of `TFDS_DATASETS`: `"cifar10"`, `"cifar100"`,
            `"imagenette"`, `"oxford_iiit_pet"`.
        split: `"train"`, `"validation"` or `"test"` (see the module
            docstring for what each reads).
        data_dir: tfds data directory; None for tfds's default
            (`$TFDS_DATA_DIR` or `~/tensorflow_datasets`). A data set not
            prepared there is downloaded (see the module docstring).
        **options: the options every loader takes, see `LoaderOptions`:
            `task`, `image_size`, `batch_size`, `shuffle`, `augment`,
            `num_images` (the first examples of the split), `seed`,
            `one_hot`.

    Returns:
        `(dataset, info)`: a batched `tf.data.Dataset` of float32 images in
        `[0, 1]` and int32 labels `(B,)` or masks `(B, H, W)`, and its
        `DatasetInfo` (with `num_examples`, the examples in the split after
        `num_images`).

    Raises:
        DatasetUnavailableError: the data set is not in `data_dir` and cannot
            be downloaded.

    Example:

    ```python
    dataset, info = load_tfds("oxford_iiit_pet", "train", image_size=128)
    model.fit(dataset, epochs=10)
    ```
    """
    return _load_tfds(
        name, LoaderOptions.from_keywords("load_tfds", split, options), data_dir=data_dir
    )


def _load_tfds(name, options, *, data_dir=None):
    """`load_tfds` with its `LoaderOptions` built."""
    check_choice("name", name, tuple(TFDS_DATASETS))
    spec = TFDS_DATASETS[name]
    task = options.resolve_task(name, spec.tasks)
    size = check_image_size(options.image_size, spec.image_size)
    try:
        import tensorflow as tf
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise ImportError(
            f"Loading {name!r} needs tensorflow and tensorflow-datasets: "
            "pip install 'keras-cvlec[tfds]'"
        ) from error

    builder = tfds.builder(name, data_dir=data_dir)
    source_split = tfds_split(name, options.split)
    # Read first and prepare only when tfds finds no data ("could not find data
    # in data_dir"): `tfds.testing.mock_data` serves unprepared data sets.
    try:
        dataset = builder.as_dataset(split=source_split)
    except AssertionError:
        if builder.is_prepared():
            raise
        download_and_prepare(builder)
        dataset = builder.as_dataset(split=source_split)
    segmentation = task == "segmentation"
    if segmentation:
        class_names = PET_MASK_CLASSES
    else:
        class_names = tuple(builder.info.features["label"].names)

    def decode(example):
        image = tf.image.resize(example["image"], size, method="bilinear")
        image = tf.cast(tf.round(image), "uint8")
        if not segmentation:
            return image, tf.cast(example["label"], "int32")
        mask = _pet_trimap_to_classes(example["segmentation_mask"])
        mask = tf.image.resize(mask, size, method="nearest")
        return image, tf.cast(mask[..., 0], "int32")

    if options.num_images is not None:
        dataset = dataset.take(options.num_images)
    # tfds asserts the cardinality of the (sliced) split: its split info.
    num_examples = int(dataset.cardinality())
    dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    info = DatasetInfo(
        name,
        task,
        len(class_names),
        class_names,
        size,
        num_examples=num_examples if num_examples >= 0 else None,
        splits=SPLITS,
    )
    dataset = batch_tf_dataset(
        dataset,
        options.batch_size,
        shuffle=options.shuffle,
        seed=options.seed,
        augment=options.transform(task, info.num_classes),
    )
    return dataset, info
