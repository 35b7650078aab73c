"""The data set registry: the `{name: loader}` table, `list_datasets()` and
`load_dataset()` over it and over folders of images.

One entry point for every data source the package knows: the embedded
`"shapes"` data set (NumPy, fed through a `keras.utils.PyDataset`, no
TensorFlow needed; see `keras_cvlec.data.shapes`), tensorflow-datasets names
(a `tf.data.Dataset`, see `keras_cvlec.data.tfds`) and folders of the user's
own images (see `keras_cvlec.data.folders`). The options every loader takes
and the batches it yields are described in `keras_cvlec.data.options`.
"""

import os

from keras_cvlec.data import options
from keras_cvlec.data.folders import _load_folder
from keras_cvlec.data.options import LoaderOptions
from keras_cvlec.data.shapes import _load_shapes
from keras_cvlec.data.tfds import TFDS_DATASETS, _load_tfds
from keras_cvlec.tasks import TRAINABLE_TASKS
from keras_cvlec.utils.deprecation import moved_names

__all__ = ["list_datasets", "load_dataset"]

# Each loader is called as `loader(name, options, **source_options)`.
_LOADERS = {"shapes": _load_shapes, **dict.fromkeys(TFDS_DATASETS, _load_tfds)}

# The names this module held before the shared pieces moved out: where each
# one is now.
__getattr__ = moved_names(
    __name__,
    {
        "DatasetInfo": ("keras_cvlec.data.options.DatasetInfo", options.DatasetInfo),
        "SPLITS": ("keras_cvlec.data.options.SPLITS", options.SPLITS),
        "TASKS": ("keras_cvlec.tasks.TRAINABLE_TASKS", TRAINABLE_TASKS),
        "map_batches": ("keras_cvlec.data.options.map_batches", options.map_batches),
        "resolve_transform": (
            "keras_cvlec.data.options.resolve_transform",
            options.resolve_transform,
        ),
    },
)


def list_datasets():
    """Every registered data set name, sorted.

    Returns:
        A list of strings accepted by `load_dataset` (a folder path is
        accepted too).

    Example:

    >>> list_datasets()
    ['cifar10', 'cifar100', 'imagenette', 'oxford_iiit_pet', 'shapes']
    """
    return sorted(_LOADERS)


def load_dataset(
    name_or_path,
    split="train",
    *,
    data_dir=None,
    num_classes=None,
    ignore_class=255,
    skip_bad_files=False,
    **options,
):
    """Loads a data set as batches of `(images, targets)` for `model.fit`.

    Args:
        name_or_path: a name from `list_datasets()` or a folder of images
            (see `keras_cvlec.data.folders.load_folder`).
        split: `"train"`, `"validation"` or `"test"`.
        data_dir: tensorflow-datasets data directory (tfds names only).
        num_classes: folders only: the number of classes, None to infer it
            (class sub-folders, or the largest training mask value + 1).
        ignore_class: folders only: the mask value of "void" pixels (in no
            class), None to read every value as a class.
        skip_bad_files: folders only: leave out, with a warning, image and
            mask files that cannot be decoded instead of raising.
        **options: the options every loader takes, see `LoaderOptions`:
            `task`, `image_size`, `batch_size`, `shuffle`, `augment`,
            `num_images`, `seed`, `one_hot`.

    Returns:
        `(dataset, info)`: for "shapes" a `keras.utils.PyDataset` (no
        TensorFlow needed), otherwise a batched `tf.data.Dataset`; `info` is
        a `DatasetInfo`.

    Example:

    >>> dataset, info = load_dataset("shapes", "test", num_images=8, image_size=32)
    >>> info.task, info.num_classes, dataset[0][0].shape
    ('segmentation', 4, (8, 32, 32, 3))
    """
    loader = _LOADERS.get(name_or_path) if isinstance(name_or_path, str) else None
    if loader is not None:
        if num_classes is not None or ignore_class != 255 or skip_bad_files is not False:
            raise ValueError(
                "`num_classes`, `ignore_class` and `skip_bad_files` are for folders of images "
                f"only. Received: num_classes={num_classes!r}, ignore_class={ignore_class!r}, "
                f"skip_bad_files={skip_bad_files!r} with the {name_or_path!r} data set"
            )
        source_options = {"data_dir": data_dir} if name_or_path in TFDS_DATASETS else {}
        source = f"the {name_or_path!r} data set"
    elif isinstance(name_or_path, (str, os.PathLike)) and os.path.isdir(name_or_path):
        loader = _load_folder
        source_options = {
            "num_classes": num_classes,
            "ignore_class": ignore_class,
            "skip_bad_files": skip_bad_files,
        }
        source = f"the folder {os.fspath(name_or_path)!r}"
    else:
        raise ValueError(
            f"Unknown data set: {name_or_path!r} is neither a registered name nor an "
            f"existing folder. Registered data sets: {', '.join(list_datasets())}."
        )
    if data_dir is not None and "data_dir" not in source_options:
        raise ValueError(
            f"`data_dir` is for tensorflow-datasets names only. Received: "
            f"data_dir={data_dir!r} with {source}"
        )
    return loader(
        name_or_path, LoaderOptions.from_keywords("load_dataset", split, options), **source_options
    )
