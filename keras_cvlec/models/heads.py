"""The classification top shared by the backbones."""

import keras

from keras_cvlec.utils.validation import check_bool, check_choice, check_positive_int

__all__ = ["POOLING_CHOICES", "check_head_args", "classification_head"]

POOLING_CHOICES = (None, "avg", "max")


def check_head_args(include_top, num_classes, pooling):
    """Validates the head arguments of a classification builder."""
    check_bool("include_top", include_top)
    check_positive_int("num_classes", num_classes)
    check_choice("pooling", pooling, POOLING_CHOICES)


def classification_head(
    x,
    *,
    include_top,
    num_classes,
    pooling,
    classifier_activation,
    data_format,
    norm=None,
):
    """Global pooling (+ `norm`) + `Dense`, or only the pooling when headless.

    Args:
        x: the last feature map.
        include_top: whether to add the `Dense` classifier (named
            `predictions`, computed in float32 under mixed precision).
        num_classes: the classifier's width.
        pooling: `None`, `"avg"` or `"max"`: the global pooling of a headless
            model (`include_top=False`). The top always averages.
        classifier_activation: the classifier's activation (`None` = logits).
        data_format: the feature map's data format.
        norm: optional layer applied after the pooling (ConvNeXt's head norm),
            only when `include_top` is true.

    Returns:
        The output tensor.
    """
    if include_top or pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(data_format=data_format, name="avg_pool")(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(data_format=data_format, name="max_pool")(x)
    if not include_top:
        return x
    if norm is not None:
        x = norm(x)
    return keras.layers.Dense(
        num_classes,
        activation=classifier_activation,
        dtype="float32",
        name="predictions",
    )(x)
