"""Per-class results of a trained model: confusion matrix, IoU, precision,
recall and support of every class, as a JSON-ready dict."""

import keras
import numpy as np

from keras_cvlec.losses import check_labels
from keras_cvlec.metrics import predicted_classes
from keras_cvlec.tasks import TRAINABLE_TASKS
from keras_cvlec.utils.validation import check_choice, check_positive_int

__all__ = ["class_report", "confusion_matrix"]


def confusion_matrix(y_true, y_pred, num_classes, ignore_class=None):
    """Counts of (true class, predicted class) pairs.

    Args:
        y_true: integer labels or masks, any shape.
        y_pred: predicted class ids, the shape of `y_true`.
        num_classes: the number of classes.
        ignore_class: None, or a label whose elements are not counted.

    Returns:
        An int64 array `(num_classes, num_classes)`: rows true classes,
        columns predicted classes.

    Example:

    >>> confusion_matrix([0, 1, 1, 255], [0, 0, 1, 1], 2, ignore_class=255)
    array([[1, 0],
           [1, 1]])
    """
    check_positive_int("num_classes", num_classes, minimum=2)
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"`y_true` and `y_pred` must have the same shape. Received: "
            f"y_true.shape={y_true.shape}, y_pred.shape={y_pred.shape}"
        )
    check_labels(y_true, num_classes, ignore_class)
    if y_pred.size and (y_pred.min() < 0 or y_pred.max() >= num_classes):
        raise ValueError(
            f"`y_pred` must hold class ids in [0, {num_classes}). Received "
            f"values from {y_pred.min()} to {y_pred.max()}"
        )
    if ignore_class is not None:
        valid = y_true != ignore_class
        y_true, y_pred = y_true[valid], y_pred[valid]
    pairs = y_true.astype("int64").ravel() * num_classes + y_pred.astype("int64").ravel()
    counts = np.bincount(pairs, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def _ratio(numerator, denominator):
    return float(numerator / denominator) if denominator else None


def _scores(matrix, class_names):
    """The report's per-class entries and summary numbers from a matrix."""
    true_positives = np.diag(matrix)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    per_class = {
        name: {
            "iou": _ratio(tp, true + guessed - tp),
            "precision": _ratio(tp, guessed),
            "recall": _ratio(tp, true),
            "support": int(true),
        }
        for name, tp, true, guessed in zip(class_names, true_positives, support, predicted)
    }
    ious = [entry["iou"] for entry in per_class.values() if entry["iou"] is not None]
    return {
        "per_class": per_class,
        "mean_iou": float(np.mean(ious)) if ious else None,
        "accuracy": _ratio(true_positives.sum(), matrix.sum()),
    }


def class_report(
    model, dataset, *, num_classes, class_names, task, from_logits=True, ignore_class=None
):
    """Runs `model` over `dataset` and scores every class.

    The model is called on each batch with `training=False`; its outputs
    (classes on the last axis) become class ids as in
    `keras_cvlec.metrics.MeanIoU` (argmax, or a threshold for one channel).
    Targets equal to `ignore_class` are left out.

    A ratio whose denominator is 0 is `None`: IoU for a class in neither
    the targets nor the predictions, precision for a class never
    predicted, recall for a class with no support. `mean_iou` averages the
    IoU of the classes present (as `MeanIoU`); `mean_iou` and `accuracy`
    are `None` when no element was counted.

    Args:
        model: a Keras model that outputs scores `(B, ..., C)`.
        dataset: a finite `keras.utils.PyDataset` or `tf.data.Dataset` of
            `(images, targets)` batches; targets are integer labels `(B,)`,
            masks `(B, H, W)` or one-hot labels `(B, C)` (argmaxed).
        num_classes: int >= 2.
        class_names: `num_classes` distinct names, indexed by class id.
        task: `"classification"` or `"segmentation"`.
        from_logits: whether the model outputs logits (matters for a
            single output channel only).
        ignore_class: None, or the target value to leave out (e.g. 255).

    Returns:
        A JSON-ready dict with `"task"`, `"class_names"`,
        `"confusion_matrix"` (rows true, columns predicted), `"per_class"`
        (`{name: {"iou", "precision", "recall", "support"}}`),
        `"mean_iou"` and `"accuracy"`.

    Example:

    >>> report = class_report(model, validation, num_classes=4,
    ...     class_names=info.class_names, task="segmentation",
    ...     ignore_class=info.ignore_class)  # doctest: +SKIP
    >>> report["per_class"]["cat"]["iou"]  # doctest: +SKIP
    0.71...
    """
    check_choice("task", task, TRAINABLE_TASKS)
    check_positive_int("num_classes", num_classes, minimum=2)
    class_names = [str(name) for name in class_names]
    if len(class_names) != num_classes or len(set(class_names)) != num_classes:
        raise ValueError(
            f"`class_names` must be {num_classes} distinct names (num_classes="
            f"{num_classes}). Received: class_names={class_names!r}"
        )
    matrix = np.zeros((num_classes, num_classes), "int64")
    for batch in dataset:
        images, targets = batch[0], np.asarray(batch[1])
        outputs = model(keras.tree.map_structure(np.asarray, images), training=False)
        predictions = keras.ops.convert_to_numpy(predicted_classes(outputs, from_logits))
        if targets.ndim == predictions.ndim + 1:
            targets = targets[..., 0] if targets.shape[-1] == 1 else targets.argmax(-1)
        matrix += confusion_matrix(targets, predictions, num_classes, ignore_class)
    return {
        "task": task,
        "class_names": class_names,
        "confusion_matrix": matrix.tolist(),
        **_scores(matrix, class_names),
    }
