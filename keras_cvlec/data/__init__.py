"""Data: the embedded shapes data set, tensorflow-datasets loaders, folders of
images, augmentation, and `load_dataset` over all of them."""

from keras_cvlec.data.augmentation import (
    Augmentation,
    classification_augmentation,
    default_augmentation,
    segmentation_augmentation,
)
from keras_cvlec.data.folders import load_folder
from keras_cvlec.data.pydataset import ArrayDataset
from keras_cvlec.data.registry import DatasetInfo, list_datasets, load_dataset, map_batches
from keras_cvlec.data.shapes import CLASS_NAMES, make_shapes, shapes_dataset
from keras_cvlec.data.tfds import TFDS_DATASETS, DatasetUnavailableError, load_tfds
