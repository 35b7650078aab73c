"""Loading a trained `.keras` model with what evaluation and prediction need
to know about it: its task, classes and input size."""

import dataclasses
import os
import zipfile

import keras

from keras_cvlec.training.files import read_json

RUN_FILE = "run.json"


@dataclasses.dataclass(frozen=True)
class TrainedModel:
    """A loaded model and what is known about it.

    Attributes:
        model: the `keras.Model`.
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
    """

    model: keras.Model
    task: str
    class_names: tuple
    input_size: tuple
    image_size: tuple
    from_logits: bool
    label_smoothing: float


def _outputs_probabilities(model):
    last = model.layers[-1]
    return isinstance(last, keras.layers.Softmax) or (
        last.get_config().get("activation") == "softmax"
    )


def load_trained_model(model_path):
    """Loads a `.keras` file written by `train` (or any channels-last
    classification or segmentation model).

    Args:
        model_path: path of a `.keras` file.

    Returns:
        A `TrainedModel`.
    """
    if not isinstance(model_path, (str, os.PathLike)):
        raise TypeError(f"`model_path` must be a path. Received: model_path={model_path!r}")
    model_path = os.fspath(model_path)
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
    # Uncompiled: evaluation compiles its own loss and metrics, prediction
    # needs none (and compiling the stored optimizer costs a minute on JAX).
    model = keras.saving.load_model(model_path, compile=False)
    if len(model.inputs) != 1:
        raise ValueError(
            f"{model_path!r} has {len(model.inputs)} inputs; evaluate and predict take models "
            "with one image input (batch, height, width, channels)."
        )
    output_shape = model.output_shape
    if not isinstance(output_shape, tuple) or len(output_shape) not in (2, 4):
        raise ValueError(
            f"{model_path!r} is neither a classification model (outputs (batch, classes)) "
            f"nor a segmentation model (outputs (batch, height, width, classes)). "
            f"Its output shape: {output_shape}"
        )
    num_classes = output_shape[-1]
    run_file = os.path.join(os.path.dirname(model_path), RUN_FILE)
    run = read_json(run_file) if os.path.exists(run_file) else {}
    class_names = tuple(run.get("class_names", [str(k) for k in range(num_classes)]))
    if len(class_names) != num_classes:
        raise ValueError(
            f"{run_file} lists {len(class_names)} class names, the model has "
            f"{num_classes} outputs."
        )
    height, width = model.input_shape[1:3]
    input_size = None if height is None or width is None else (height, width)
    image_size = input_size or (tuple(run["image_size"]) if "image_size" in run else None)
    return TrainedModel(
        model=model,
        task="classification" if len(output_shape) == 2 else "segmentation",
        class_names=class_names,
        input_size=input_size,
        image_size=image_size,
        from_logits=not _outputs_probabilities(model),
        label_smoothing=float(run.get("args", {}).get("recipe", {}).get("label_smoothing", 0.0)),
    )
