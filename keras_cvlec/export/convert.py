"""The conversions themselves, under the TensorFlow backend.

SavedModel and ONNX go through Keras's own `model.export` (`"tf_saved_model"`;
`"onnx"`, which is tf2onnx on a traced `tf.function`, with the model's
dynamic batch, height and width). TFLite converts the SavedModel with
built-in TFLite ops only: no Flex (SELECT_TF_OPS) ops, which a phone's
runtime may not have.
"""

import os
import shutil

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

    The model is traced once into a SavedModel, which TFLite converts too
    (Keras's own `format="litert"` does the same, but allows Flex ops).

    Args:
        model: a single-input `keras.Model`, on the TensorFlow backend.
        directory: an existing, empty folder.
        formats: names from `FORMATS`.
        input_shape: the input shape without the batch; `None` entries stay
            dynamic in SavedModel and ONNX (TFLite needs them all known).
        quantize: `None`, `"float16"` or `"int8"`, for TFLite.
        representative: float32 array of calibration inputs for `"int8"`.

    Returns:
        A dict `{format: path}`, in the order of `formats`.
    """
    import tensorflow as tf

    name = model.inputs[0].name
    signature = [
        tf.TensorSpec(
            (None, *input_shape), tf.float32, name=name if name.isidentifier() else "inputs"
        )
    ]
    paths = {fmt: os.path.join(directory, artifact_name(fmt, quantize)) for fmt in formats}
    saved_model = os.path.join(directory, artifact_name("saved_model"))
    if "saved_model" in formats or "tflite" in formats:
        model.export(saved_model, format="tf_saved_model", input_signature=signature, verbose=False)
    if "tflite" in formats:
        with open(paths["tflite"], "wb") as file:
            file.write(_to_tflite(saved_model, quantize, representative))
    if "onnx" in formats:
        _register_onnx_ops()
        model.export(paths["onnx"], format="onnx", input_signature=signature, verbose=False)
    if "saved_model" not in formats and os.path.isdir(saved_model):
        shutil.rmtree(saved_model)
    return paths


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
