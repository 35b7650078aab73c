"""Losses for integer class labels and segmentation masks.

Keras 3's `SparseCategoricalCrossentropy` has no `label_smoothing`, which
forces users to one-hot encode masks (tensorflow #46849, keras #23487). The
loss here smooths labels without materialising the one-hot tensor.

Every loss here, and every metric in `keras_cvlec.metrics`, checks its
labels with `class_labels`:

- Shapes. `y_true` must have the shape of `y_pred` without its class axis;
  a trailing label axis of size 1 is dropped. Known (static) sizes that
  differ raise a `ValueError` naming both shapes, eagerly and while a graph
  is traced. Sizes unknown at trace time (TensorFlow graphs with `None`
  dimensions) that differ at run time make the loss NaN, or raise the
  backend's error where the shapes do not broadcast.
- Label values that can be read: NumPy arrays, eager TensorFlow tensors,
  JAX arrays outside `jax.jit`, and torch tensors (torch's `model.fit`
  runs eagerly). A label that is neither an integer in `[0, num_classes)`
  nor `ignore_class` raises a `ValueError` naming the bad values, the valid
  range and, for non-integer floats such as 1.7, the dtype. Integer-valued
  floats (1.0) are fine.
- Label values inside a traced graph (`tf.function`, `jax.jit`: `fit`,
  `evaluate` and `predict` on TensorFlow and JAX), where they cannot be
  read: the loss of each such element is NaN (of its whole sample for the
  Dice losses), so the batch's loss is NaN and `TerminateOnNaN` (or
  `keras-cvlec train`) stops. Gradients stay finite, so the weights are
  not damaged. A wrong label is never read as another class, nor quietly
  left out: either would make a wrong data set look like a slightly worse
  model.

Elements labelled `ignore_class` count in no loss. NaN predictions give a
NaN loss.
"""

import math
from typing import NamedTuple

import keras
import numpy as np
from keras import ops

from keras_cvlec.utils.validation import check_float, check_rate, is_int

__all__ = [
    "CrossentropyDiceLoss",
    "DiceLoss",
    "SparseCategoricalCrossentropy",
    "check_ignore_class",
    "check_labels",
    "class_labels",
    "dice_loss",
    "sparse_categorical_crossentropy",
    "standardize_labels",
]

_EPSILON = 1e-7


def check_ignore_class(ignore_class):
    """`ignore_class` as given: None or an int (bools are refused)."""
    if ignore_class is not None and not is_int(ignore_class):
        raise TypeError(
            f"`ignore_class` must be None or an int. Received: ignore_class={ignore_class!r}"
        )
    return ignore_class


def check_labels(y_true, num_classes, ignore_class=None):
    """Raises a `ValueError` if a concrete label is not an integer in
    `[0, num_classes)` or `ignore_class`.

    Args:
        y_true: labels or masks (array-like, any rank, integer or float).
        num_classes: the number of classes.
        ignore_class: a label value allowed besides the classes.

    Example:

    >>> check_labels([[0, 3]], num_classes=3)
    Traceback (most recent call last):
    ...
    ValueError: `y_true` must hold integer labels in [0, 3). Received label values [3].
    """
    labels = np.asarray(keras.ops.convert_to_numpy(y_true))
    allowed = f"[0, {num_classes})" + (
        "" if ignore_class is None else f" or ignore_class={ignore_class}"
    )
    if labels.dtype.kind == "f":
        fractional = labels != np.floor(labels)
        if fractional.any():
            raise ValueError(
                f"`y_true` must hold integer labels in {allowed}. Received {labels.dtype} "
                f"labels with non-integer values {np.unique(labels[fractional])[:10].tolist()}."
            )
    valid = (labels >= 0) & (labels < num_classes)
    if ignore_class is not None:
        valid |= labels == ignore_class
    if not valid.all():
        bad = [int(v) if np.isfinite(v) else v for v in np.unique(labels[~valid])[:10].tolist()]
        raise ValueError(
            f"`y_true` must hold integer labels in {allowed}. Received label values {bad}."
        )


def standardize_labels(y_true, y_pred, axis=-1):
    """`y_true` as a tensor, checked to have the shape of `y_pred` without
    its class `axis`; a trailing label axis of size 1 is dropped.

    Raises:
        ValueError: the known sizes of the two shapes differ.
    """
    y_true = ops.convert_to_tensor(y_true)
    if len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] == 1:
        y_true = ops.squeeze(y_true, axis=-1)
    expected = _without_axis(y_pred.shape, axis)
    if len(y_true.shape) != len(expected) or any(
        a is not None and b is not None and a != b for a, b in zip(y_true.shape, expected)
    ):
        raise ValueError(
            f"`y_true` must have the shape of `y_pred` without its class axis "
            f"(axis={axis}), optionally with a trailing axis of size 1. Received: "
            f"y_true.shape={tuple(y_true.shape)}, y_pred.shape={tuple(y_pred.shape)}"
        )
    return y_true


def _without_axis(shape, axis):
    shape = list(shape)
    del shape[axis]
    return shape


def _run_time_shape_mismatch(y_true, y_pred, axis):
    """A scalar bool tensor: whether sizes of `y_true` and `y_pred` that
    were unknown at trace time differ (None when all sizes are known)."""
    expected = _without_axis(y_pred.shape, axis)
    unknown = [i for i, (a, b) in enumerate(zip(y_true.shape, expected)) if a is None or b is None]
    if not unknown:
        return None
    true_shape, pred_shape = ops.shape(y_true), _without_axis(ops.shape(y_pred), axis)
    return ops.any(ops.stack([ops.not_equal(true_shape[i], pred_shape[i]) for i in unknown]))


def _readable_values(x):
    """The values of tensor `x` as a NumPy array, or None inside a traced
    graph (`tf.function`, `jax.jit`, Keras's shape inference)."""
    try:
        return ops.convert_to_numpy(x)
    except (NotImplementedError, TypeError):  # TF, torch "meta"; JAX tracers
        return None


class ClassLabels(NamedTuple):
    """Labels split by `class_labels`: `classes`, int32 class ids (0 where
    the label is not a class); boolean masks `ignored` (labelled
    `ignore_class`) and `invalid` (any other label that is not a class)."""

    classes: object
    ignored: object
    invalid: object


def class_labels(y_true, y_pred, num_classes, ignore_class=None, axis=-1):
    """The labels of predictions `y_pred`, checked as the module describes.

    Args:
        y_true: labels, shape `y_pred.shape` without `axis` (a trailing
            axis of size 1 is allowed), integer or integer-valued float.
        y_pred: the predictions (only their shape is used).
        num_classes: the number of classes.
        ignore_class: None, or a label value that is not a class.
        axis: the class axis of `y_pred`.

    Returns:
        A `ClassLabels`. `invalid` is all False where the values could be
        read (they were checked).
    """
    y_true = standardize_labels(y_true, y_pred, axis)
    values = _readable_values(y_true)
    if values is not None:
        check_labels(values, num_classes, ignore_class)
    # float32 holds every label below 2**24 exactly and cannot overflow.
    labels = ops.cast(y_true, "float32")
    if ignore_class is None:
        ignored = ops.zeros_like(labels, dtype="bool")
    else:
        ignored = ops.equal(labels, float(ignore_class))
    is_class = ops.logical_and(
        ops.logical_and(labels >= 0, labels < num_classes),
        ops.equal(labels, ops.floor(labels)),
    )
    invalid = ops.logical_not(ops.logical_or(is_class, ignored))
    mismatch = _run_time_shape_mismatch(y_true, y_pred, axis)
    if mismatch is not None:
        invalid = ops.logical_or(invalid, mismatch)
    classes = ops.cast(ops.where(is_class, labels, 0.0), "int32")
    return ClassLabels(classes, ignored, invalid)


def nan_where(condition, x):
    """`x` with NaN where `condition` holds."""
    return ops.where(condition, ops.full_like(x, math.nan), x)


def _log_probabilities(y_pred, from_logits, axis):
    if from_logits:
        return ops.log_softmax(y_pred, axis=axis)
    # As keras.losses.categorical_crossentropy: renormalise, then clip.
    y_pred = y_pred / ops.sum(y_pred, axis=axis, keepdims=True)
    return ops.log(ops.clip(y_pred, _EPSILON, 1.0 - _EPSILON))


def _crossentropy(labels, y_pred, from_logits, label_smoothing, axis):
    """`sparse_categorical_crossentropy` of `ClassLabels`."""
    log_probs = _log_probabilities(y_pred, from_logits, axis)
    true_log_prob = ops.squeeze(
        ops.take_along_axis(log_probs, ops.expand_dims(labels.classes, axis), axis=axis),
        axis=axis,
    )
    loss = -true_log_prob
    if label_smoothing:
        loss = (1.0 - label_smoothing) * loss - label_smoothing * ops.mean(log_probs, axis=axis)
    loss = ops.where(labels.ignored, ops.zeros_like(loss), loss)
    return nan_where(labels.invalid, loss)


def sparse_categorical_crossentropy(
    y_true, y_pred, from_logits=False, label_smoothing=0.0, ignore_class=None, axis=-1
):
    """Cross-entropy of integer labels with label smoothing, per element.

    With `K` classes and smoothing `e`, the target distribution is
    `(1 - e) * one_hot(y) + e / K`, so the loss is
    `-(1 - e) * log p[y] - e * mean_k log p[k]`: the same value as
    `keras.losses.categorical_crossentropy(one_hot(y), y_pred,
    label_smoothing=e)`, without building `one_hot(y)`. Labels are checked
    as the module describes.

    Args:
        y_true: integer labels, shape `y_pred.shape` without `axis` (a
            trailing axis of size 1 is allowed).
        y_pred: probabilities or logits, classes along `axis`.
        from_logits: whether `y_pred` holds logits.
        label_smoothing: float in `[0, 1]`.
        ignore_class: a label whose elements get loss 0.
        axis: the class axis of `y_pred`.

    Returns:
        The loss of each element, shape of `y_true`; NaN where a label in a
        traced graph is not a class.
    """
    y_pred = ops.convert_to_tensor(y_pred)
    labels = class_labels(y_true, y_pred, y_pred.shape[axis], ignore_class, axis)
    return _crossentropy(labels, y_pred, from_logits, label_smoothing, axis)


class _MaskedMeanLoss(keras.losses.Loss):
    """A loss whose mean runs over the elements not equal to `ignore_class`."""

    def __call__(self, y_true, y_pred, sample_weight=None):
        if self.ignore_class is None:
            return super().__call__(y_true, y_pred, sample_weight)
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = standardize_labels(y_true, y_pred, self.axis)
        valid = ops.cast(ops.not_equal(y_true, self.ignore_class), "float32")
        if self.reduction in ("sum_over_batch_size", "mean"):
            # Keras divides by the element count; rescale so it divides by
            # the number of valid elements instead.
            count = ops.cast(ops.size(valid), "float32")
            valid = valid * ops.divide_no_nan(count, ops.sum(valid))
        if sample_weight is not None:
            sample_weight = ops.convert_to_tensor(sample_weight, "float32")
            while len(sample_weight.shape) < len(valid.shape):
                sample_weight = ops.expand_dims(sample_weight, -1)
            valid = valid * sample_weight
        return super().__call__(y_true, y_pred, valid)


@keras.saving.register_keras_serializable(package="keras_cvlec")
class SparseCategoricalCrossentropy(_MaskedMeanLoss):
    """Cross-entropy for integer labels and masks, with label smoothing.

    Equal to `keras.losses.CategoricalCrossentropy(label_smoothing=...)` on
    one-hot targets, without materialising them (see
    `sparse_categorical_crossentropy`). Elements labelled `ignore_class`
    contribute nothing: with the default reduction the loss is the mean over
    the other elements. Labels are checked as the module describes: a bad
    label raises eagerly and gives a NaN loss in a traced graph.

    Args:
        label_smoothing: float in `[0, 1)`.
        ignore_class: optional int label to ignore (e.g. 255 for "void").
        from_logits: whether predictions are logits.
        axis: the class axis of predictions.
        reduction: a Keras loss reduction.
        name: the loss's name.

    Example:

    >>> loss = SparseCategoricalCrossentropy(label_smoothing=0.1, from_logits=True)
    >>> masks = keras.ops.zeros((2, 8, 8), "int32")
    >>> float(loss(masks, keras.ops.zeros((2, 8, 8, 3))))  # log(3)
    1.0986...
    """

    def __init__(
        self,
        label_smoothing=0.0,
        ignore_class=None,
        from_logits=False,
        axis=-1,
        reduction="sum_over_batch_size",
        name="sparse_categorical_crossentropy",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.label_smoothing = check_rate("label_smoothing", label_smoothing)
        self.ignore_class = check_ignore_class(ignore_class)
        self.from_logits = bool(from_logits)
        self.axis = axis

    def call(self, y_true, y_pred):
        return sparse_categorical_crossentropy(
            y_true,
            y_pred,
            from_logits=self.from_logits,
            label_smoothing=self.label_smoothing,
            ignore_class=self.ignore_class,
            axis=self.axis,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "label_smoothing": self.label_smoothing,
                "ignore_class": self.ignore_class,
                "from_logits": self.from_logits,
                "axis": self.axis,
            }
        )
        return config


def _class_probabilities(y_pred, from_logits, axis):
    """Probabilities with classes along `axis`; one channel means binary."""
    if y_pred.shape[axis] == 1:
        foreground = ops.sigmoid(y_pred) if from_logits else y_pred
        return ops.concatenate([1.0 - foreground, foreground], axis=axis)
    return ops.softmax(y_pred, axis=axis) if from_logits else y_pred


def _dice(labels, y_pred, from_logits, smooth, axis):
    """`dice_loss` of `ClassLabels`."""
    probs = _class_probabilities(y_pred, from_logits, axis)
    one_hot = ops.one_hot(labels.classes, probs.shape[axis], axis=axis, dtype=probs.dtype)
    counted = ops.expand_dims(ops.cast(ops.logical_not(labels.ignored), probs.dtype), axis)
    probs, one_hot = probs * counted, one_hot * counted
    rank = len(probs.shape)
    class_axis = axis % rank
    reduce_axes = [a for a in range(1, rank) if a != class_axis]
    intersection = ops.sum(probs * one_hot, axis=reduce_axes)
    total = ops.sum(probs, axis=reduce_axes) + ops.sum(one_hot, axis=reduce_axes)
    dice = (2.0 * intersection + smooth) / (total + smooth)
    invalid = ops.reshape(labels.invalid, (ops.shape(labels.invalid)[0], -1))
    return nan_where(ops.any(invalid, axis=1), 1.0 - ops.mean(dice, axis=-1))


def dice_loss(y_true, y_pred, from_logits=False, ignore_class=None, smooth=1.0, axis=-1):
    """Soft multi-class Dice loss of each sample.

    `1 - mean_c (2 * sum(p_c * t_c) + smooth) / (sum(p_c) + sum(t_c) + smooth)`
    over the pixels of a sample, `p` the predicted probabilities, `t` the
    one-hot labels. A single prediction channel is a binary problem (its
    sigmoid, or probability, is the foreground class 1). Labels are checked
    as the module describes.

    Returns:
        The loss of each sample, shape `(batch,)`; NaN for a sample with a
        label that is not a class (in a traced graph).
    """
    y_pred = ops.convert_to_tensor(y_pred)
    num_classes = max(2, y_pred.shape[axis])
    labels = class_labels(y_true, y_pred, num_classes, ignore_class, axis)
    return _dice(labels, y_pred, from_logits, smooth, axis)


@keras.saving.register_keras_serializable(package="keras_cvlec")
class DiceLoss(keras.losses.Loss):
    """Soft Dice loss for multi-class (or single-logit binary) segmentation.

    Computed per sample over its pixels and averaged over classes (see
    `dice_loss`); pixels labelled `ignore_class` are left out. Labels are
    checked as the module describes (a sample with a bad label in a traced
    graph has loss NaN).

    Args:
        from_logits: whether predictions are logits (softmax, or sigmoid for
            one channel, is applied).
        ignore_class: optional int label to ignore.
        smooth: positive float added to numerator and denominator, so empty
            classes score 1 and gradients stay finite.
        axis: the class axis of predictions.
        reduction: a Keras loss reduction.
        name: the loss's name.

    Example:

    >>> loss = DiceLoss(from_logits=True)
    >>> masks = keras.ops.ones((2, 8, 8), "int32")
    >>> float(loss(masks, keras.ops.zeros((2, 8, 8, 2)))) > 0
    True
    """

    def __init__(
        self,
        from_logits=False,
        ignore_class=None,
        smooth=1.0,
        axis=-1,
        reduction="sum_over_batch_size",
        name="dice_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = bool(from_logits)
        self.ignore_class = check_ignore_class(ignore_class)
        self.smooth = check_float("smooth", smooth, 0.0, inclusive=False)
        self.axis = axis

    def call(self, y_true, y_pred):
        return dice_loss(
            y_true,
            y_pred,
            from_logits=self.from_logits,
            ignore_class=self.ignore_class,
            smooth=self.smooth,
            axis=self.axis,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "from_logits": self.from_logits,
                "ignore_class": self.ignore_class,
                "smooth": self.smooth,
                "axis": self.axis,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_cvlec")
class CrossentropyDiceLoss(keras.losses.Loss):
    """`crossentropy_weight * CE + dice_weight * Dice`, per sample.

    The common segmentation combination: cross-entropy gives every pixel a
    gradient, Dice balances small classes against the background. Each
    sample's cross-entropy is the mean over its pixels not labelled
    `ignore_class`; its Dice term is `dice_loss`. Labels are checked as the
    module describes.

    Args:
        crossentropy_weight: float >= 0, weight of the cross-entropy.
        dice_weight: float >= 0, weight of the Dice loss.
        label_smoothing: the cross-entropy's label smoothing, in `[0, 1)`.
        ignore_class: optional int label ignored by both terms.
        from_logits: whether predictions are logits.
        smooth: the Dice loss's smoothing.
        axis: the class axis of predictions.
        reduction: a Keras loss reduction.
        name: the loss's name.

    Example:

    >>> loss = CrossentropyDiceLoss(label_smoothing=0.1, from_logits=True)
    >>> masks = keras.ops.zeros((2, 8, 8), "int32")
    >>> float(loss(masks, keras.ops.zeros((2, 8, 8, 3)))) > 1.0986
    True
    """

    def __init__(
        self,
        crossentropy_weight=1.0,
        dice_weight=1.0,
        label_smoothing=0.0,
        ignore_class=None,
        from_logits=False,
        smooth=1.0,
        axis=-1,
        reduction="sum_over_batch_size",
        name="crossentropy_dice_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.crossentropy_weight = check_float("crossentropy_weight", crossentropy_weight, 0.0)
        self.dice_weight = check_float("dice_weight", dice_weight, 0.0)
        self.label_smoothing = check_rate("label_smoothing", label_smoothing)
        self.ignore_class = check_ignore_class(ignore_class)
        self.from_logits = bool(from_logits)
        self.smooth = check_float("smooth", smooth, 0.0, inclusive=False)
        self.axis = axis

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        labels = class_labels(y_true, y_pred, y_pred.shape[self.axis], self.ignore_class, self.axis)
        pixel_loss = _crossentropy(
            labels, y_pred, self.from_logits, self.label_smoothing, self.axis
        )
        pixel_axes = list(range(1, len(pixel_loss.shape)))
        counted = ops.cast(ops.logical_not(labels.ignored), pixel_loss.dtype)
        crossentropy = ops.divide_no_nan(
            ops.sum(pixel_loss, axis=pixel_axes), ops.sum(counted, axis=pixel_axes)
        )
        dice = _dice(labels, y_pred, self.from_logits, self.smooth, self.axis)
        return self.crossentropy_weight * crossentropy + self.dice_weight * dice

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "crossentropy_weight": self.crossentropy_weight,
                "dice_weight": self.dice_weight,
                "label_smoothing": self.label_smoothing,
                "ignore_class": self.ignore_class,
                "from_logits": self.from_logits,
                "smooth": self.smooth,
                "axis": self.axis,
            }
        )
        return config
