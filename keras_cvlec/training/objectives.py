"""The loss and metrics a model is trained and evaluated with, by task."""

import keras

from keras_cvlec.losses import SparseCategoricalCrossentropy
from keras_cvlec.metrics import MeanIoU, SparseCategoricalAccuracy
from keras_cvlec.tasks import TRAINABLE_TASKS
from keras_cvlec.utils.deprecation import moved_names
from keras_cvlec.utils.validation import check_choice, check_positive_int

__all__ = ["OUTPUT_ACTIVATION_ARGUMENTS", "compile_arguments"]

# The builder argument that sets each task's output activation (None: the
# model outputs logits).
OUTPUT_ACTIVATION_ARGUMENTS = {
    "classification": "classifier_activation",
    "segmentation": "final_activation",
}


__getattr__ = moved_names(
    __name__, {"TASKS": ("keras_cvlec.tasks.TRAINABLE_TASKS", TRAINABLE_TASKS)}
)


def compile_arguments(
    task, num_classes, *, label_smoothing=0.0, from_logits=True, one_hot=False, ignore_class=None
):
    """The `loss` and `metrics` arguments of `Model.compile` for a task.

    Integer targets (labels `(B,)` or masks `(B, H, W)`) get the package's
    `SparseCategoricalCrossentropy` (label smoothing without one-hot
    tensors) and accuracy, plus `MeanIoU` for segmentation; one-hot or
    blended targets (MixUp, CutMix) get Keras's `CategoricalCrossentropy`
    and `CategoricalAccuracy`. The accuracy is named `"accuracy"` either way.
    With integer targets, elements labelled `ignore_class` (e.g. 255 for
    "void" pixels) count in none of the loss, the accuracy and `MeanIoU`.

    Args:
        task: `"classification"` or `"segmentation"`.
        num_classes: int >= 2, the model's number of classes.
        label_smoothing: float in `[0, 1]`.
        from_logits: whether the model outputs logits.
        one_hot: whether targets are one-hot (classification only).
        ignore_class: None, or the integer target value to leave out
            (integer targets only).

    Returns:
        A dict with `"loss"` and `"metrics"`.

    Example:

    >>> model.compile(optimizer="adamw", **compile_arguments(
    ...     "segmentation", 4, label_smoothing=0.1, ignore_class=255)
    ... )  # doctest: +SKIP
    """
    check_choice("task", task, TRAINABLE_TASKS)
    check_positive_int("num_classes", num_classes, minimum=2)
    if one_hot:
        if task != "classification":
            raise ValueError(
                f"`one_hot` targets are for the classification task only. "
                f"Received: one_hot=True with task={task!r}"
            )
        if ignore_class is not None:
            raise ValueError(
                f"`ignore_class` needs integer targets, not one-hot ones. "
                f"Received: ignore_class={ignore_class!r} with one_hot=True"
            )
        return {
            "loss": keras.losses.CategoricalCrossentropy(
                label_smoothing=label_smoothing, from_logits=from_logits
            ),
            "metrics": [keras.metrics.CategoricalAccuracy(name="accuracy")],
        }
    metrics = [SparseCategoricalAccuracy(ignore_class=ignore_class, name="accuracy")]
    if task == "segmentation":
        metrics.append(MeanIoU(num_classes, from_logits=from_logits, ignore_class=ignore_class))
    return {
        "loss": SparseCategoricalCrossentropy(
            label_smoothing=label_smoothing,
            from_logits=from_logits,
            ignore_class=ignore_class,
        ),
        "metrics": metrics,
    }
