"""Data: the embedded synthetic shapes data set."""

from keras_cvlec.data.shapes import CLASS_NAMES, make_shapes, shapes_dataset
