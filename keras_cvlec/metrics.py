"""Metrics that take the model's raw output and leave out void labels.

Keras's `MeanIoU` wants class ids (or `sparse_y_pred=False` to take an
argmax), which breaks for single-logit binary models (tensorflow #32875).
These metrics accept probabilities or logits with any number of channels.
Keras's `SparseCategoricalAccuracy` has no `ignore_class`; the one here does.

Labels are checked as in `keras_cvlec.losses`: shapes that do not match
raise a `ValueError` naming both, and so do label values that can be read
(NumPy, eager tensors, torch) but are neither an integer in
`[0, num_classes)` nor `ignore_class`. `MeanIoU` and `Dice` also raise for
predictions without `num_classes` channels (or one, for `num_classes=2`).
Elements labelled `ignore_class` are not counted. An element that cannot
be scored makes the result NaN until `reset_state()`:

- a label that is not a class, or sizes that differ at run time, met
  inside a traced graph (`tf.function`, `jax.jit`: `fit` and `evaluate` on
  TensorFlow and JAX), where values cannot be read;
- a prediction that is NaN or infinite (on any class), eagerly or not.

A wrong data set or a diverged model thus never reads as a score, not even
as a slightly lower one.
"""

import keras
from keras import ops

from keras_cvlec.losses import check_ignore_class, class_labels, nan_where
from keras_cvlec.utils.validation import check_positive_int

__all__ = [
    "Dice",
    "MeanIoU",
    "SparseCategoricalAccuracy",
    "predicted_classes",
]


def predicted_classes(y_pred, from_logits, axis=-1):
    """Class ids from scores: argmax, or a threshold for one channel
    (0 for logits, 0.5 for probabilities)."""
    y_pred = ops.convert_to_tensor(y_pred)
    if y_pred.shape[axis] == 1:
        threshold = 0.0 if from_logits else 0.5
        return ops.cast(ops.squeeze(y_pred, axis=axis) > threshold, "int32")
    return ops.argmax(y_pred, axis=axis)


def _scored_labels(y_true, y_pred, sample_weight, num_classes, ignore_class, axis):
    """Class ids, float32 weights (0 for `ignore_class`) and the mask of the
    unscorable elements: a label that is not a class, or a prediction that
    is not finite (unless labelled `ignore_class`)."""
    labels = class_labels(y_true, y_pred, num_classes, ignore_class, axis)
    counted = ops.logical_not(labels.ignored)
    weight = ops.cast(counted, "float32")
    if sample_weight is not None:
        sample_weight = ops.convert_to_tensor(sample_weight, "float32")
        while len(sample_weight.shape) < len(weight.shape):
            sample_weight = ops.expand_dims(sample_weight, -1)
        weight = weight * sample_weight
    not_finite = ops.logical_not(ops.all(ops.isfinite(y_pred), axis=axis))
    unscorable = ops.logical_or(labels.invalid, ops.logical_and(not_finite, counted))
    return labels.classes, weight, unscorable


@keras.saving.register_keras_serializable(package="keras_cvlec")
class SparseCategoricalAccuracy(keras.metrics.SparseCategoricalAccuracy):
    """How often the argmax of the predictions equals integer labels,
    leaving out elements labelled `ignore_class`.

    The elements labelled `ignore_class` get weight 0 (times
    `sample_weight`, if given), so the result is the mean over the other
    pixels (or examples); 0 while there are none. The classes are the last
    axis of the predictions; labels are checked as the module describes.

    Args:
        ignore_class: optional label whose elements are not counted
            (e.g. 255 for "void").
        name: the metric's name.
        dtype: the metric's dtype.

    Example:

    >>> metric = SparseCategoricalAccuracy(ignore_class=255)
    >>> metric.update_state([[0, 1, 255]], [[[0.9, 0.1], [0.8, 0.2], [0.0, 1.0]]])
    >>> float(metric.result())  # the void pixel is left out: 1 of 2
    0.5
    """

    def __init__(self, ignore_class=None, name="accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.ignore_class = check_ignore_class(ignore_class)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.convert_to_tensor(y_pred)
        labels, weight, unscorable = _scored_labels(
            y_true, y_pred, sample_weight, y_pred.shape[-1], self.ignore_class, -1
        )
        return super().update_state(labels, y_pred, nan_where(unscorable, weight))

    def get_config(self):
        return {"ignore_class": self.ignore_class, "name": self.name, "dtype": self.dtype}


@keras.saving.register_keras_serializable(package="keras_cvlec")
class MeanIoU(keras.metrics.MeanIoU):
    """Mean intersection-over-union of predicted class maps.

    Predictions need `num_classes` channels along `axis`, or one channel
    for `num_classes=2` (a binary model); labels are checked as the module
    describes. Classes absent from both labels and predictions are left
    out of the mean.

    Args:
        num_classes: the number of classes (2 for a single-channel binary
            model).
        from_logits: whether predictions are logits; only matters for a
            single channel (threshold 0 instead of 0.5).
        ignore_class: optional label whose pixels are not counted.
        axis: the class axis of predictions.
        name: the metric's name.
        dtype: the metric's dtype.

    Example:

    >>> metric = MeanIoU(num_classes=3, from_logits=True)
    >>> metric.update_state([[0, 1]], [[[5.0, 0.0, 0.0], [0.0, 0.0, 5.0]]])
    >>> float(metric.result())  # class 0: 1/1, class 1: 0/1, class 2: 0/1
    0.333...
    """

    def __init__(
        self,
        num_classes,
        from_logits=False,
        ignore_class=None,
        axis=-1,
        name="mean_iou",
        dtype=None,
    ):
        super().__init__(
            num_classes=check_positive_int("num_classes", num_classes, minimum=2),
            name=name,
            dtype=dtype,
            ignore_class=check_ignore_class(ignore_class),
            sparse_y_true=True,
            sparse_y_pred=True,
            axis=axis,
        )
        self.from_logits = bool(from_logits)
        self.unscorable_count = self.add_variable(
            shape=(), initializer="zeros", dtype="float32", name="unscorable_count"
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.convert_to_tensor(y_pred)
        channels = y_pred.shape[self.axis]
        binary = self.num_classes == 2
        if channels != self.num_classes and not (channels == 1 and binary):
            raise ValueError(
                f"`y_pred` must have num_classes={self.num_classes} channels along "
                f"axis={self.axis}{' (or 1 for a binary model)' if binary else ''}. "
                f"Received: y_pred.shape={tuple(y_pred.shape)}"
            )
        labels, weight, unscorable = _scored_labels(
            y_true, y_pred, sample_weight, self.num_classes, self.ignore_class, self.axis
        )
        cells = labels * self.num_classes + ops.cast(
            predicted_classes(y_pred, self.from_logits, self.axis), "int32"
        )
        counts = ops.segment_sum(
            ops.reshape(ops.where(unscorable, 0.0, weight), (-1,)),
            ops.reshape(cells, (-1,)),
            num_segments=self.num_classes**2,
        )
        self.total_cm.assign_add(ops.cast(ops.reshape(counts, self.total_cm.shape), self.dtype))
        self.unscorable_count.assign_add(ops.sum(ops.cast(unscorable, "float32")))

    def reset_state(self):
        super().reset_state()
        self.unscorable_count.assign(0.0)

    def _per_class_scores(self, true_positives, true_count, predicted_count):
        return ops.divide_no_nan(true_positives, true_count + predicted_count - true_positives)

    def result(self):
        matrix = ops.cast(self.total_cm, "float32")
        true_count = ops.sum(matrix, axis=1)
        predicted_count = ops.sum(matrix, axis=0)
        true_positives = ops.diagonal(matrix)
        present = ops.cast(true_count + predicted_count > 0, "float32")
        scores = self._per_class_scores(true_positives, true_count, predicted_count)
        mean = ops.divide_no_nan(ops.sum(scores * present), ops.sum(present))
        return nan_where(ops.greater(self.unscorable_count, 0), mean)

    def get_config(self):
        return {
            "num_classes": self.num_classes,
            "from_logits": self.from_logits,
            "ignore_class": self.ignore_class,
            "axis": self.axis,
            "name": self.name,
            "dtype": self.dtype,
        }


@keras.saving.register_keras_serializable(package="keras_cvlec")
class Dice(MeanIoU):
    """Mean Dice coefficient (F1 score) of predicted class maps:
    `2 * TP / (2 * TP + FP + FN)` per class, averaged over the classes
    present in labels or predictions. Same arguments and checks as
    `MeanIoU`.

    Example:

    >>> metric = Dice(num_classes=2)
    >>> metric.update_state([[0, 1, 1]], [[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])
    >>> round(float(metric.result()), 4)  # class 0: 2/3, class 1: 2/3
    0.6667
    """

    def __init__(
        self, num_classes, from_logits=False, ignore_class=None, axis=-1, name="dice", dtype=None
    ):
        super().__init__(num_classes, from_logits, ignore_class, axis, name, dtype)

    def _per_class_scores(self, true_positives, true_count, predicted_count):
        return ops.divide_no_nan(2.0 * true_positives, true_count + predicted_count)
