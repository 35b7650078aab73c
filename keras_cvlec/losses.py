"""Losses for integer class labels and segmentation masks.

Keras 3's `SparseCategoricalCrossentropy` has no `label_smoothing`, which
forces users to one-hot encode masks (tensorflow #46849, keras #23487). The
loss here smooths labels without materialising the one-hot tensor.

Labels outside `[0, num_classes)` (other than `ignore_class`) cannot be
detected inside a compiled graph and give undefined values there (TF and torch
raise, JAX clamps the index); `keras_cvlec.losses.check_labels` checks a batch
eagerly, and the package's data loaders check masks before training.
"""

import keras
import numpy as np
from keras import ops

from keras_cvlec.utils.validation import check_float, check_rate

_EPSILON = 1e-7


def _check_ignore_class(ignore_class):
    if ignore_class is not None and (
        isinstance(ignore_class, bool) or not isinstance(ignore_class, int)
    ):
        raise TypeError(
            f"`ignore_class` must be None or an int. Received: "
            f"ignore_class={ignore_class!r}"
        )
    return ignore_class


def check_labels(y_true, num_classes, ignore_class=None):
    """Raises a `ValueError` if a concrete label is outside `[0, num_classes)`.

    Args:
        y_true: integer labels or masks (array-like, any rank).
        num_classes: the number of classes.
        ignore_class: a label value allowed besides the classes.
    """
    labels = np.asarray(keras.ops.convert_to_numpy(y_true))
    valid = (labels >= 0) & (labels < num_classes)
    if ignore_class is not None:
        valid |= labels == ignore_class
    if not valid.all():
        bad = np.unique(labels[~valid])[:10]
        raise ValueError(
            f"Labels must be in [0, {num_classes})"
            f"{'' if ignore_class is None else f' or equal ignore_class={ignore_class}'}. "
            f"Received label values {bad.tolist()}."
        )


def _log_probabilities(y_pred, from_logits, axis):
    if from_logits:
        return ops.log_softmax(y_pred, axis=axis)
    # As keras.losses.categorical_crossentropy: renormalise, then clip.
    y_pred = y_pred / ops.sum(y_pred, axis=axis, keepdims=True)
    return ops.log(ops.clip(y_pred, _EPSILON, 1.0 - _EPSILON))


def _squeeze_labels(y_true, y_pred):
    if len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] == 1:
        y_true = ops.squeeze(y_true, axis=-1)
    return y_true


def sparse_categorical_crossentropy(
    y_true, y_pred, from_logits=False, label_smoothing=0.0, ignore_class=None, axis=-1
):
    """Cross-entropy of integer labels with label smoothing, per element.

    With `K` classes and smoothing `e`, the target distribution is
    `(1 - e) * one_hot(y) + e / K`, so the loss is
    `-(1 - e) * log p[y] - e * mean_k log p[k]`: the same value as
    `keras.losses.categorical_crossentropy(one_hot(y), y_pred,
    label_smoothing=e)`, without building `one_hot(y)`.

    Args:
        y_true: integer labels, shape `y_pred.shape` without `axis` (a
            trailing axis of size 1 is allowed).
        y_pred: probabilities or logits, classes along `axis`.
        from_logits: whether `y_pred` holds logits.
        label_smoothing: float in `[0, 1]`.
        ignore_class: a label whose elements get loss 0.
        axis: the class axis of `y_pred`.

    Returns:
        The loss of each element, shape of `y_true`.
    """
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = _squeeze_labels(ops.convert_to_tensor(y_true), y_pred)
    labels = ops.cast(y_true, "int32")
    if ignore_class is not None:
        valid = ops.not_equal(labels, ignore_class)
        labels = ops.where(valid, labels, 0)
    log_probs = _log_probabilities(y_pred, from_logits, axis)
    true_log_prob = ops.squeeze(
        ops.take_along_axis(log_probs, ops.expand_dims(labels, axis), axis=axis),
        axis=axis,
    )
    loss = -true_log_prob
    if label_smoothing:
        loss = (1.0 - label_smoothing) * loss - label_smoothing * ops.mean(
            log_probs, axis=axis
        )
    if ignore_class is not None:
        loss = ops.where(valid, loss, ops.zeros_like(loss))
    return loss


class _MaskedMeanLoss(keras.losses.Loss):
    """A loss whose mean runs over the elements not equal to `ignore_class`."""

    def __call__(self, y_true, y_pred, sample_weight=None):
        if self.ignore_class is None:
            return super().__call__(y_true, y_pred, sample_weight)
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = _squeeze_labels(ops.convert_to_tensor(y_true), y_pred)
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
    the other elements.

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
        self.ignore_class = _check_ignore_class(ignore_class)
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


def dice_loss(y_true, y_pred, from_logits=False, ignore_class=None, smooth=1.0, axis=-1):
    """Soft multi-class Dice loss of each sample.

    `1 - mean_c (2 * sum(p_c * t_c) + smooth) / (sum(p_c) + sum(t_c) + smooth)`
    over the pixels of a sample, `p` the predicted probabilities, `t` the
    one-hot labels. A single prediction channel is a binary problem (its
    sigmoid, or probability, is the foreground class 1).

    Returns:
        The loss of each sample, shape `(batch,)`.
    """
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = _squeeze_labels(ops.convert_to_tensor(y_true), y_pred)
    probs = _class_probabilities(y_pred, from_logits, axis)
    num_classes = probs.shape[axis]
    labels = ops.cast(y_true, "int32")
    if ignore_class is not None:
        valid = ops.not_equal(labels, ignore_class)
        labels = ops.where(valid, labels, 0)
    one_hot = ops.one_hot(labels, num_classes, axis=axis, dtype=probs.dtype)
    if ignore_class is not None:
        valid = ops.expand_dims(ops.cast(valid, probs.dtype), axis)
        probs, one_hot = probs * valid, one_hot * valid
    rank = len(probs.shape)
    class_axis = axis % rank
    reduce_axes = [a for a in range(1, rank) if a != class_axis]
    intersection = ops.sum(probs * one_hot, axis=reduce_axes)
    total = ops.sum(probs, axis=reduce_axes) + ops.sum(one_hot, axis=reduce_axes)
    dice = (2.0 * intersection + smooth) / (total + smooth)
    return 1.0 - ops.mean(dice, axis=-1)


@keras.saving.register_keras_serializable(package="keras_cvlec")
class DiceLoss(keras.losses.Loss):
    """Soft Dice loss for multi-class (or single-logit binary) segmentation.

    Computed per sample over its pixels and averaged over classes (see
    `dice_loss`); pixels labelled `ignore_class` are left out.

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
        self.ignore_class = _check_ignore_class(ignore_class)
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
    `ignore_class`; its Dice term is `dice_loss`.

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
        self.ignore_class = _check_ignore_class(ignore_class)
        self.from_logits = bool(from_logits)
        self.smooth = check_float("smooth", smooth, 0.0, inclusive=False)
        self.axis = axis

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = _squeeze_labels(ops.convert_to_tensor(y_true), y_pred)
        pixel_loss = sparse_categorical_crossentropy(
            y_true,
            y_pred,
            from_logits=self.from_logits,
            label_smoothing=self.label_smoothing,
            ignore_class=self.ignore_class,
            axis=self.axis,
        )
        pixel_axes = list(range(1, len(pixel_loss.shape)))
        if self.ignore_class is None:
            crossentropy = ops.mean(pixel_loss, axis=pixel_axes)
        else:
            valid = ops.cast(ops.not_equal(y_true, self.ignore_class), pixel_loss.dtype)
            crossentropy = ops.divide_no_nan(
                ops.sum(pixel_loss, axis=pixel_axes), ops.sum(valid, axis=pixel_axes)
            )
        dice = dice_loss(
            y_true,
            y_pred,
            from_logits=self.from_logits,
            ignore_class=self.ignore_class,
            smooth=self.smooth,
            axis=self.axis,
        )
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
