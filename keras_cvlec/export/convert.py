"""The conversions themselves, under the TensorFlow backend.

SavedModel and ONNX go through Keras's own `model.export` (`"tf_saved_model"`;
`"onnx"`, which is tf2onnx on a traced `tf.function`, with the model's
dynamic batch, height and width). TFLite converts the SavedModel with
built-in TFLite ops only: no Flex (SELECT_TF_OPS) ops, which a phone's
runtime may not have.
"""

import os
import shutil

__all__ = ["ARTIFACT_NAMES", "artifact_name", "convert"]

ARTIFACT_NAMES = {
    "saved_model": "saved_model",
    "tflite": "model.tflite",
    "onnx": "model.onnx",
}


def artifact_name(fmt, quantize=None):
    """The file (or folder) name of `fmt`'s artifact inside the output folder."""
    name = ARTIFACT_NAMES[fmt]
    if fmt == "tflite" and quantize is not None:
        return f"model_{quantize}.tflite"
    return name


def convert(model, directory, formats, input_shape, *, quantize=None, representative=None):
    """Writes each format's artifact into `directory`.

    SavedModel and ONNX take the model's own input shape (dynamic batch, and
    dynamic height and width where the model allows); TFLite takes
    `input_shape`. When the two agree, TFLite converts the SavedModel
    (one trace of the model).

    Args:
        model: a single-input `keras.Model`, on the TensorFlow backend.
        directory: an existing, empty folder.
        formats: names from `FORMATS`.
        input_shape: TFLite's input shape without the batch (all known when
            `formats` has `"tflite"`).
        quantize: `None`, `"float16"` or `"int8"`, for TFLite.
        representative: float32 array of calibration inputs for `"int8"`.

    Returns:
        A dict `{format: (path, input shape with the batch)}`, in the order
        of `formats`.
    """
    input_shape = tuple(input_shape)
    paths = {fmt: os.path.join(directory, artifact_name(fmt, quantize)) for fmt in formats}
    shapes = {}
    if "saved_model" in formats:
        shapes["saved_model"] = _export_any_size(
            model, paths["saved_model"], "tf_saved_model", input_shape
        )
    if "tflite" in formats:
        saved_model = paths.get("saved_model")
        if saved_model is None or shapes["saved_model"] != input_shape:
            saved_model = os.path.join(directory, "tflite_saved_model")
            _export(model, saved_model, "tf_saved_model", input_shape)
        with open(paths["tflite"], "wb") as file:
            file.write(_to_tflite(saved_model, quantize, representative))
        if saved_model != paths.get("saved_model"):
            shutil.rmtree(saved_model)
        shapes["tflite"] = input_shape
    if "onnx" in formats:
        _register_onnx_ops()
        shapes["onnx"] = _export_any_size(model, paths["onnx"], "onnx", input_shape)
    return {fmt: (paths[fmt], (None, *shapes[fmt])) for fmt in formats}


def _export_any_size(model, path, fmt, input_shape):
    """Exports with the model's own input shape, or with `input_shape` where
    tracing an unknown height/width fails (Keras's bilinear `UpSampling2D`
    on TensorFlow); returns the shape used."""
    model_shape = tuple(model.inputs[0].shape[1:])
    try:
        _export(model, path, fmt, model_shape)
        return model_shape
    except Exception as error:  # noqa: BLE001 - retried, or re-raised below
        if model_shape == input_shape or None in input_shape:
            raise ValueError(
                f"Exporting to {fmt!r} with the input shape {model_shape} failed "
                f"({type(error).__name__}: {error}). Pass `input_shape` with a "
                "fixed height and width."
            ) from error
    if os.path.isdir(path):
        shutil.rmtree(path)
    _export(model, path, fmt, input_shape)
    return input_shape


def _export(model, path, fmt, input_shape):
    """Keras's `model.export` with a float32 input of `(None, *input_shape)`."""
    import tensorflow as tf

    name = model.inputs[0].name
    spec = tf.TensorSpec(
        (None, *input_shape), tf.float32, name=name if name.isidentifier() else "inputs"
    )
    model.export(path, format=fmt, input_signature=[spec], verbose=False)


def _to_tflite(saved_model, quantize, representative):
    """The TFLite flatbuffer of a SavedModel's `serving_default`: built-in ops
    only; float16 weights, or int8 with float32 inputs and outputs (ops
    without an int8 kernel stay float)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":

        def representative_dataset():
            for index in range(len(representative)):
                yield [representative[index : index + 1]]

        converter.representative_dataset = representative_dataset
    return converter.convert()


def _register_onnx_ops():
    """Teaches tf2onnx `Erfc`, which TensorFlow's exact GELU
    (`0.5 * x * erfc(-x / sqrt(2))`, ConvNeXt) uses and tf2onnx 1.17 lacks:
    `erfc(x) = 1 - erf(x)`, with ONNX's `Erf` (opset >= 9)."""
    import numpy as np
    from tf2onnx import utils
    from tf2onnx.handler import tf_op

    @tf_op("Erfc")
    class Erfc:
        @classmethod
        def version_9(cls, ctx, node, **kwargs):
            dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[0]))
            erf = ctx.make_node("Erf", [node.input[0]])
            one = ctx.make_const(utils.make_name("one"), np.array(1, dtype))
            node.type = "Sub"
            ctx.replace_inputs(node, [one.output[0], erf.output[0]])
