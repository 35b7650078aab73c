"""Data: the embedded shapes data set, tensorflow-datasets loaders, folders of
images, augmentation, and `load_dataset` over all of them.

One module per source (`shapes`, `tfds`, `folders`), the options, info
record, batch transforms and epoch of the shuffling (`set_epoch`) they share
in `options`, the `{name: loader}` table and `load_dataset` in `registry`, and
`shard_batches` (each process's part of every batch in a run over several
processes) in `sharding`.
"""

from keras_cvlec.data.augmentation import (
    Augmentation,
    classification_augmentation,
    default_augmentation,
    segmentation_augmentation,
)
from keras_cvlec.data.folders import load_folder
from keras_cvlec.data.options import DatasetInfo, LoaderOptions, map_batches, set_epoch
from keras_cvlec.data.pydataset import ArrayDataset
from keras_cvlec.data.registry import list_datasets, load_dataset
from keras_cvlec.data.shapes import CLASS_NAMES, make_shapes, shapes_dataset
from keras_cvlec.data.sharding import shard_batches
from keras_cvlec.data.tfds import TFDS_DATASETS, DatasetUnavailableError, load_tfds

__all__ = [
    "CLASS_NAMES",
    "TFDS_DATASETS",
    "ArrayDataset",
    "Augmentation",
    "DatasetInfo",
    "DatasetUnavailableError",
    "LoaderOptions",
    "classification_augmentation",
    "default_augmentation",
    "list_datasets",
    "load_dataset",
    "load_folder",
    "load_tfds",
    "make_shapes",
    "map_batches",
    "segmentation_augmentation",
    "set_epoch",
    "shapes_dataset",
    "shard_batches",
]
