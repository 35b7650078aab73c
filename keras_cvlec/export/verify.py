"""Runs each artifact in its own runtime and compares it with the Keras model.

SavedModel runs in TensorFlow (`serving_default`), TFLite in the LiteRT
interpreter (`ai_edge_litert`), ONNX in onnxruntime.
"""

import dataclasses
import re

import numpy as np

__all__ = ["RUNNERS", "ArtifactReport", "VerificationError", "verify_artifact"]

FLOAT32_TOLERANCE = 1e-4
FLOAT16_MIN_AGREEMENT = 0.99


class VerificationError(RuntimeError):
    """An exported artifact does not reproduce the Keras model's outputs."""


@dataclasses.dataclass(frozen=True)
class ArtifactReport:
    """How closely one artifact reproduces the Keras model.

    Attributes:
        format: `"saved_model"`, `"tflite"` or `"onnx"`.
        path: the artifact's path.
        precision: `"float32"`, `"float16"` or `"int8"`.
        max_abs_diff: the largest absolute difference over all outputs.
        argmax_agreement: the fraction of argmax labels (per image, or per
            pixel for dense outputs) that agree, the smallest over outputs.
        per_output: `(max_abs_diff, argmax_agreement)` for each model output.
        passed: whether the artifact meets its precision's requirement:
            `max_abs_diff <= 1e-4` for float32, an agreement >= 99 % for
            float16; int8 is only reported.
    """

    format: str
    path: str
    precision: str
    max_abs_diff: float
    argmax_agreement: float
    per_output: tuple
    passed: bool

    def __str__(self):
        status = "ok" if self.passed else "FAILED"
        requirement = {
            "float32": f"(max abs diff <= {FLOAT32_TOLERANCE:g})",
            "float16": f"(argmax agreement >= {FLOAT16_MIN_AGREEMENT:.0%})",
            "int8": "(reported only)",
        }[self.precision]
        return (
            f"{self.format:<12} {self.precision:<8} max abs diff "
            f"{self.max_abs_diff:.3g}, argmax agreement {self.argmax_agreement:.2%} "
            f"{requirement} {status}"
        )


def verify_artifact(fmt, path, precision, inputs, expected, class_axis):
    """Runs the artifact at `path` on `inputs` and compares with `expected`.

    Args:
        fmt: the artifact's format.
        path: its path.
        precision: `"float32"`, `"float16"` or `"int8"`.
        inputs: a float32 batch.
        expected: the Keras model's outputs on `inputs`, a list of arrays.
        class_axis: the class axis of 4D outputs (-1 or 1).

    Returns:
        An `ArtifactReport`.
    """
    outputs = RUNNERS[fmt](path, inputs)
    if len(outputs) != len(expected):
        raise VerificationError(
            f"The {fmt} artifact {path} returns {len(outputs)} outputs; "
            f"the model returns {len(expected)}."
        )
    per_output = []
    for got, want in zip(outputs, expected):
        if got.shape != want.shape:
            raise VerificationError(
                f"The {fmt} artifact {path} returns shape {got.shape}; the "
                f"model returns {want.shape}."
            )
        axis = class_axis if want.ndim == 4 else -1
        agreement = float(np.mean(got.argmax(axis) == want.argmax(axis)))
        per_output.append((float(np.max(np.abs(got - want))), agreement))
    diff = max(d for d, _ in per_output)
    agreement = min(a for _, a in per_output)
    passed = {
        "float32": diff <= FLOAT32_TOLERANCE,
        "float16": agreement >= FLOAT16_MIN_AGREEMENT,
        "int8": True,
    }[precision]
    return ArtifactReport(fmt, path, precision, diff, agreement, tuple(per_output), passed)


def _ordered(outputs):
    """A signature's outputs (`output_0`, `output_1`, ...) in model order."""
    keys = list(outputs)
    if all(re.fullmatch(r"output_\d+", key) for key in keys):
        keys.sort(key=lambda key: int(key.split("_")[1]))
    return [np.asarray(outputs[key]) for key in keys]


def _run_saved_model(path, inputs):
    import tensorflow as tf

    function = tf.saved_model.load(path).signatures["serving_default"]
    (name,) = function.structured_input_signature[1]
    outputs = function(**{name: tf.constant(inputs)})
    return _ordered({key: value.numpy() for key, value in outputs.items()})


def _run_tflite(path, inputs):
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=path).get_signature_runner()
    (name,) = runner.get_input_details()
    return _ordered(runner(**{name: inputs}))


def _run_onnx(path, inputs):
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    (name,) = [node.name for node in session.get_inputs()]
    return [np.asarray(output) for output in session.run(None, {name: inputs})]


RUNNERS = {"saved_model": _run_saved_model, "tflite": _run_tflite, "onnx": _run_onnx}
