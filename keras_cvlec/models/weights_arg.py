"""The `weights` argument of the backbone builders, checked and loaded in one place.

`weights` is `None` (random initialisation), `"imagenet"` (the weights of a
keras.applications model, transferred by `keras_cvlec.weights`) or the path
(str or `os.PathLike`) of a `.weights.h5` file saved from the same
architecture. Everything is checked before any layer is built or anything is
downloaded, and the ImageNet weights are downloaded before the model is built.
"""

import os

from keras_cvlec.weights import (
    fetch_imagenet_weights,
    load_imagenet_weights,
    load_weights_file,
    weights_file_shapes,
)

IMAGENET_CLASSES = 1000


def check_weights_arg(
    weights, *, imagenet_source, description, available, include_top, num_classes
):
    """Validates `weights`; returns the keras.applications name for imagenet.

    Args:
        weights: the builder's `weights` argument.
        imagenet_source: name of the `keras.applications` model whose ImageNet
            weights fit the requested architecture, or None if there is none.
        description: the requested architecture, for the error message
            (e.g. `"variant='resnet18', version='v1'"`).
        available: the architectures that have ImageNet weights, for the
            error message.
        include_top: the builder's `include_top`.
        num_classes: the builder's `num_classes`.

    Returns:
        `imagenet_source` when `weights == "imagenet"`, else None.
    """
    if weights is None:
        return None
    if isinstance(weights, str) and weights == "imagenet":
        if imagenet_source is None:
            raise ValueError(
                f"No ImageNet weights for {description}. "
                f"Available: {', '.join(available)}."
            )
        if include_top and num_classes != IMAGENET_CLASSES:
            raise ValueError(
                f"`weights='imagenet'` with `include_top=True` needs "
                f"num_classes={IMAGENET_CLASSES}. Received: num_classes={num_classes}"
            )
        return imagenet_source
    if isinstance(weights, (str, os.PathLike)) and os.fspath(weights).endswith(
        ".weights.h5"
    ):
        if not os.path.exists(weights):
            raise ValueError(f"`weights` file not found: {os.fspath(weights)!r}")
        weights_file_shapes(weights)  # a readable HDF5 file
        return None
    raise ValueError(
        f"`weights` must be None, 'imagenet' or the path of a '.weights.h5' "
        f"file. Received: weights={weights!r}"
    )


def prepare_imagenet_weights(application, channels, input_shape, include_top):
    """Checks that the model takes RGB images (3 `channels`) and downloads the
    ImageNet weights of `application`, before the model is built."""
    if channels != 3:
        raise ValueError(
            f"`weights='imagenet'` needs 3 input channels. Received: "
            f"input_shape={input_shape}"
        )
    fetch_imagenet_weights(application, include_top)


def load_weights_arg(model, weights, imagenet_source, include_top):
    """Loads what `check_weights_arg` accepted into the built `model`."""
    if imagenet_source is not None:
        load_imagenet_weights(model, imagenet_source, include_top=include_top)
    elif weights is not None:
        load_weights_file(model, weights)
    return model
