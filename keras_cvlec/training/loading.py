"""Loading a trained `.keras` model with what evaluation and prediction need
to know about it: its task, classes, output activation, data format and
input size."""

import dataclasses
import os
import zipfile

import keras

from keras_cvlec.tasks import TRAINABLE_TASKS
from keras_cvlec.training.files import read_json
from keras_cvlec.training.objectives import OUTPUT_ACTIVATION_ARGUMENTS
from keras_cvlec.utils.validation import check_path, spatial_axes

__all__ = ["RUN_FILE", "TrainedModel", "load_trained_model"]

RUN_FILE = "run.json"


@dataclasses.dataclass(frozen=True)
class TrainedModel:
    """A loaded model and what is known about it.

    Attributes:
        model: the `keras.Model`, taking channels-last images as the data
            loaders give them: a channels-first model comes wrapped between
            `Permute` layers (its outputs channels-last too).
        task: `"classification"` (outputs `(B, C)`) or `"segmentation"`
            (outputs `(B, H, W, C)`).
        class_names: the class names from the run's `run.json` next to the
            model file, else `"0"`, `"1"`, ...
        input_size: `(height, width)` if the model's input size is fixed,
            else None.
        image_size: the input size, else the training image size from
            `run.json`, else None.
        from_logits: whether the outputs are logits (no final softmax).
        label_smoothing: the training recipe's label smoothing from
            `run.json`, else 0.
        data_format: the stored model's `"channels_last"` or
            `"channels_first"`.
        data_options: the options the run loaded its data with, from
            `run.json` (`seed`, `ignore_class`, `skip_bad_files`,
            `data_dir`); empty for a bare model.
    """

    model: keras.Model
    task: str
    class_names: tuple
    input_size: tuple
    image_size: tuple
    from_logits: bool
    label_smoothing: float
    data_format: str = "channels_last"
    data_options: dict = dataclasses.field(default_factory=dict)


def _check_model_file(model_path):
    model_path = check_path("model_path", model_path)
    if not model_path.endswith(".keras"):
        raise ValueError(f"`model_path` must be a .keras file. Received: {model_path!r}")
    if not os.path.isfile(model_path):
        raise FileNotFoundError(f"No model file at {model_path!r}.")
    if not zipfile.is_zipfile(model_path):
        raise ValueError(
            f"{model_path!r} is not a readable .keras file: a .keras file is a zip archive, "
            f"and this one is truncated or corrupt ({os.path.getsize(model_path)} bytes). "
            "Use the run's other model (best.keras or last.keras) or train again."
        )
    return model_path


def _from_run_file(run):
    """Task, whether the outputs are logits, and data format, as `train`
    recorded them. Runs written before `run.json` held `from_logits` and
    `data_format` were built by `train` with the builder's activation
    argument (None, logits, unless `model_options` set one) on channels-last
    batches."""
    task = run["task"]
    from_logits = run.get("from_logits")
    if from_logits is None:
        model_options = run.get("args", {}).get("model_options") or {}
        from_logits = model_options.get(OUTPUT_ACTIVATION_ARGUMENTS[task]) is None
    return task, from_logits, run.get("data_format", "channels_last")


def _guessed(model):
    """Task, whether the outputs are logits, and data format of a model
    without `run.json`, guessed from its layers: the data format of its
    first layer that has one (else Keras's default), the task from the rank
    of its output, logits unless its last layer is a softmax."""
    data_format = next(
        (
            layer.get_config()["data_format"]
            for layer in model._flatten_layers(include_self=False)
            if "data_format" in layer.get_config()
        ),
        keras.config.image_data_format(),
    )
    task = "classification" if len(model.output_shape) == 2 else "segmentation"
    last = model.layers[-1]
    probabilities = isinstance(last, keras.layers.Softmax) or (
        last.get_config().get("activation") == "softmax"
    )
    return task, not probabilities, data_format


def _channels_last(model, task):
    """`model` (channels-first) between `Permute` layers, so that it takes
    and gives channels-last tensors."""
    channels, height, width = model.input_shape[1:]
    inputs = keras.Input((height, width, channels))
    outputs = model(keras.layers.Permute((3, 1, 2))(inputs))
    if task == "segmentation":
        outputs = keras.layers.Permute((2, 3, 1))(outputs)
    return keras.Model(inputs, outputs, name=f"{model.name}_channels_last")


def load_trained_model(model_path):
    """Loads a classification or segmentation `.keras` model with what is
    known about it.

    With the `run.json` that `train` writes next to its models, the task,
    whether the outputs are logits, the data format, the class names, the
    training image size, the label smoothing and the data options are read
    from it. A bare `.keras` file (no `run.json`) is guessed from its layers
    instead: the task from the rank of its output, logits unless the last
    layer is a softmax, the data format of its first layer that has one,
    classes `"0"`, `"1"`, ...

    Args:
        model_path: path of a `.keras` file.

    Returns:
        A `TrainedModel`.

    Example:

    >>> trained = load_trained_model("runs/unet/best.keras")  # doctest: +SKIP
    >>> trained.task, trained.class_names  # doctest: +SKIP
    ('segmentation', ('background', 'circle', 'square', 'triangle'))
    """
    model_path = _check_model_file(model_path)
    # Uncompiled: evaluation compiles its own loss and metrics, prediction
    # needs none (and compiling the stored optimizer costs a minute on JAX).
    model = keras.saving.load_model(model_path, compile=False)
    if len(model.inputs) != 1 or len(model.input_shape) != 4:
        raise ValueError(
            f"{model_path!r} has {len(model.inputs)} input(s) of shape(s) {model.input_shape}; "
            "evaluate and predict take models with one image input (batch, height, width, "
            "channels)."
        )
    output_shape = model.output_shape
    if not isinstance(output_shape, tuple) or len(output_shape) not in (2, 4):
        raise ValueError(
            f"{model_path!r} is neither a classification model (outputs (batch, classes)) "
            f"nor a segmentation model (outputs (batch, height, width, classes)). "
            f"Its output shape: {output_shape}"
        )
    run_file = os.path.join(os.path.dirname(model_path), RUN_FILE)
    run = read_json(run_file) if os.path.exists(run_file) else None
    task, from_logits, data_format = _guessed(model) if run is None else _from_run_file(run)
    if task not in TRAINABLE_TASKS or len(output_shape) != (2 if task == "classification" else 4):
        raise ValueError(
            f"{model_path!r} outputs {output_shape}, which is not a {task} model's output."
        )
    channel_axis = -1 if task == "classification" or data_format == "channels_last" else 1
    num_classes = output_shape[channel_axis]
    run = run or {}
    class_names = tuple(run.get("class_names", [str(k) for k in range(num_classes)]))
    if len(class_names) != num_classes:
        raise ValueError(
            f"{run_file} lists {len(class_names)} class names, the model has {num_classes} outputs."
        )
    height, width = (model.input_shape[axis] for axis in spatial_axes(data_format))
    input_size = None if height is None or width is None else (height, width)
    image_size = input_size or (tuple(run["image_size"]) if "image_size" in run else None)
    if data_format == "channels_first":
        model = _channels_last(model, task)
    return TrainedModel(
        model=model,
        task=task,
        class_names=class_names,
        input_size=input_size,
        image_size=image_size,
        from_logits=from_logits,
        label_smoothing=float(run.get("args", {}).get("recipe", {}).get("label_smoothing", 0.0)),
        data_format=data_format,
        data_options={
            name: value
            for name, value in run.get("args", {}).items()
            if name in ("seed", "ignore_class", "skip_bad_files", "data_dir")
        },
    )
