"""Default inputs for verification and int8 calibration.

Three-channel models get images of the embedded shapes data set (float32 in
`[0, 1]`, like the training data): the train split calibrates, the test
split verifies. Other models are verified on uniform noise in `[0, 1]`, and
int8 calibration needs the caller's own samples.
"""

import numpy as np

from keras_cvlec.data.shapes import shapes_dataset

__all__ = ["default_samples"]

DEFAULT_SPATIAL_SIZE = 64
MIN_SHAPES_SIZE = 16


def default_samples(input_shape, data_format, count, *, split="test"):
    """`count` inputs of `input_shape` (no batch), or None without a default.

    Unknown (None) height or width becomes `DEFAULT_SPATIAL_SIZE`. Shapes
    images are drawn at the larger side (at least 16) and cropped.
    Returns None when the model does not take 3 channels and `split` is
    `"train"` (calibration data must resemble the real inputs).
    """
    shape = [DEFAULT_SPATIAL_SIZE if size is None else size for size in input_shape]
    if data_format == "channels_first":
        channels, height, width = shape
    else:
        height, width, channels = shape
    if channels != 3:
        if split == "train":
            return None
        rng = np.random.default_rng(0)
        return rng.uniform(0.0, 1.0, (count, *shape)).astype("float32")
    size = max(height, width, MIN_SHAPES_SIZE)
    images, _ = shapes_dataset(split, num_images=count, image_size=size)
    images = images[:, :height, :width]
    if data_format == "channels_first":
        images = images.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(images)
