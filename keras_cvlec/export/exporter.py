"""`export_model`: one call from any backend, verified, written atomically."""

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile

import keras
import numpy as np

from keras_cvlec.export.samples import default_samples
from keras_cvlec.utils.validation import (
    channel_axis,
    check_bool,
    check_choice,
    check_positive_int,
    spatial_axes,
)

__all__ = [
    "EXPORT_EXTRA",
    "FORMATS",
    "QUANTIZATIONS",
    "ExportProcessError",
    "ExportResult",
    "export_loaded",
    "export_model",
    "load_model_arg",
    "model_data_format",
]

FORMATS = ("saved_model", "tflite", "onnx")
QUANTIZATIONS = (None, "float16", "int8")
EXPORT_EXTRA = "pip install keras-cvlec[export]"
NUM_VERIFY_SAMPLES = 4
NUM_CALIBRATION_SAMPLES = 16
_STAGING_PREFIX = ".keras_cvlec_export_"
# How much of the last line of the TensorFlow process's error output its
# error message shows (Keras's "Could not locate class" line runs to KBs).
_MAX_REASON_CHARS = 300

# Modules each format needs: to convert (under TensorFlow) and to verify.
_CONVERTERS = {
    "saved_model": ("tensorflow",),
    "tflite": ("tensorflow",),
    "onnx": ("tensorflow", "tf2onnx", "onnx"),
}
_RUNTIMES = {
    "saved_model": ("tensorflow",),
    "tflite": ("ai_edge_litert",),
    "onnx": ("onnxruntime",),
}


class ExportProcessError(RuntimeError):
    """The TensorFlow process that converts a model from the JAX or torch
    backend failed; its message ends with the process's last error line, and
    its `stderr` attribute holds the whole error output."""

    def __init__(self, message, stderr):
        super().__init__(message)
        self.stderr = stderr


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What `export_model` wrote and how well it matches the model.

    Attributes:
        paths: `{format: path}` of each artifact.
        input_shapes: `{format: input shape}`, with the batch; `None` is a
            dynamic size.
        report: `{format: ArtifactReport}`; empty when `verify=False`.
    """

    paths: dict
    input_shapes: dict
    report: dict

    def __str__(self):
        lines = [
            f"{fmt:<12} {path}  input {self.input_shapes[fmt]}" for fmt, path in self.paths.items()
        ]
        lines += [str(report) for report in self.report.values()]
        return "\n".join(lines)


def export_model(
    model_or_path,
    out_dir,
    formats=("saved_model", "tflite"),
    *,
    input_shape=None,
    quantize=None,
    verify=True,
    sample_inputs=None,
):
    """Exports a model to SavedModel, TFLite and/or ONNX and verifies it.

    The conversion runs under TensorFlow: in this process on the TensorFlow
    backend, otherwise in one TensorFlow-backend subprocess that loads the
    model's `.keras` file (custom layers and functions must then be
    registered with `keras.saving.register_keras_serializable` in an
    importable module, which the subprocess imports). Each artifact is then
    run in its own runtime on sample inputs and compared with the model's
    outputs in this process. Artifacts are staged in a hidden folder next to
    `out_dir` and moved into `out_dir` only once verified: a failure leaves
    nothing behind, and the next export removes the folder of one that was
    killed (it carries the process id and host name).

    - `"saved_model"`: folder `saved_model/` with a `serving_default`
      signature of the model's own input shape: dynamic batch, and dynamic
      height and width where the model takes any size.
    - `"tflite"`: `model.tflite` (or `model_float16.tflite`,
      `model_int8.tflite`), built-in TFLite ops only (no Flex ops), dynamic
      batch, height and width fixed by `input_shape`.
    - `"onnx"`: `model.onnx`, through Keras's own ONNX export (tf2onnx on
      the traced model), dynamic sizes as for SavedModel.

    Verification: float32 artifacts must match within a max abs diff of
    1e-4; for quantized TFLite the agreement of argmax labels (per image or
    per pixel) is reported, and must be >= 99 % for float16.

    Args:
        model_or_path: a `keras.Model` with one image input, of shape
            `(batch, height, width, channels)` or channels first, that
            returns a tensor or a list of tensors; or the path of a
            `.keras` file.
        out_dir: the folder to write into (created; artifacts already there
            with the same names are replaced).
        formats: a format name or a sequence of them, from `FORMATS`.
        input_shape: the input shape without the batch, in the model's data
            format, for TFLite and the verification inputs; `None` entries
            keep the model's own size. TFLite needs a known height and
            width. Defaults to the model's input shape.
        quantize: `None`, `"float16"` (weights) or `"int8"` (weights and
            activations, calibrated; inputs and outputs stay float32), for
            TFLite only.
        verify: whether to run and compare the artifacts.
        sample_inputs: optional float32 batch in the model's input layout,
            used to verify and to calibrate int8. Defaults to images of the
            embedded shapes data set for 3-channel inputs (unknown sizes:
            64x64), else uniform noise (int8 then needs `sample_inputs`).

    Returns:
        An `ExportResult`. Raises `VerificationError` when an artifact
        fails its check.

    Example:

    >>> model = keras_cvlec.build_unet(input_shape=(32, 32, 3), depth=2, filters=4)
    >>> result = export_model(model, "exported", ["saved_model", "tflite"])
    >>> result.report["tflite"].max_abs_diff < 1e-4
    True
    """
    model, model_path = load_model_arg(model_or_path)
    return export_loaded(
        model,
        model_path,
        out_dir,
        formats,
        input_shape=input_shape,
        quantize=quantize,
        verify=verify,
        sample_inputs=sample_inputs,
    )


def load_model_arg(model_or_path):
    """`(model, path of its .keras file or None)` from `export_model`'s argument."""
    if isinstance(model_or_path, keras.Model):
        model, path = model_or_path, None
    elif isinstance(model_or_path, (str, os.PathLike)):
        path = os.fspath(model_or_path)
        if not path.endswith(".keras"):
            raise ValueError(
                "`model_or_path` must be a keras.Model or the path of a `.keras` "
                f"file. Received: model_or_path={path!r}"
            )
        if not os.path.isfile(path):
            raise ValueError(f"`model_or_path`: no such file {path!r}")
        try:
            model = keras.saving.load_model(path)
        except Exception as error:  # noqa: BLE001 - any failure means unreadable
            raise ValueError(
                f"`model_or_path`: {path!r} is not a readable .keras model file "
                f"({type(error).__name__}: {error})"
            ) from error
    else:
        raise TypeError(
            "`model_or_path` must be a keras.Model or the path of a `.keras` file. "
            f"Received: {model_or_path!r} of type {type(model_or_path).__name__}"
        )
    _check_model(model)
    return model, path


def _check_model(model):
    """Export takes one image input, `(batch, height, width, channels)` or
    channels first, and returns a tensor or a list of tensors."""
    inputs = getattr(model, "inputs", None)
    if inputs is None:
        raise ValueError(
            f"export_model needs a model with symbolic inputs (functional, or "
            f"Sequential starting with keras.Input); {model.name!r} is a "
            f"{type(model).__name__} without them."
        )
    if len(inputs) != 1 or len(inputs[0].shape) != 4:
        raise ValueError(
            "export_model supports models with one image input of shape "
            "(batch, height, width, channels) or (batch, channels, height, "
            f"width); {model.name!r} has {len(inputs)} input(s) of shape "
            f"{', '.join(str(tuple(x.shape)) for x in inputs)}."
        )
    outputs = model.output
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    if not all(isinstance(output, keras.KerasTensor) for output in outputs):
        shapes = keras.tree.map_structure(lambda x: tuple(x.shape), model.output)
        raise ValueError(
            f"export_model supports models that return a tensor or a list of "
            f"tensors; {model.name!r} returns {shapes}. Export "
            "`keras.Model(model.inputs, model.outputs)` instead."
        )


def export_loaded(
    model, model_path, out_dir, formats, *, input_shape, quantize, verify, sample_inputs
):
    """`export_model` for a loaded model (`model_path`: its `.keras` file or None)."""
    formats = _check_formats(formats)
    check_choice("quantize", quantize, QUANTIZATIONS)
    if quantize is not None and "tflite" not in formats:
        raise ValueError(
            f"`quantize` applies to TFLite only; add 'tflite' to `formats`. "
            f"Received: quantize={quantize!r}, formats={formats}"
        )
    check_bool("verify", verify)
    data_format = model_data_format(model)
    shape = _check_input_shape(model, input_shape)
    if "tflite" in formats and None in _spatial(shape, data_format):
        raise ValueError(
            f"TFLite needs a fixed height and width, but the model's input shape "
            f"is {shape}: pass `input_shape` (e.g. --input-size H W)."
        )
    _check_dependencies(formats, verify)
    verify_inputs = _check_samples(sample_inputs, shape)
    if verify_inputs is None and verify:
        verify_inputs = default_samples(shape, data_format, NUM_VERIFY_SAMPLES)
    representative = None
    if quantize == "int8":
        representative = (
            verify_inputs
            if sample_inputs is not None
            else default_samples(shape, data_format, NUM_CALIBRATION_SAMPLES, split="train")
        )
        if representative is None:
            raise ValueError(
                f"int8 quantization needs representative inputs: the embedded "
                f"data set has 3 channels, the model's input shape is {shape}. "
                "Pass `sample_inputs`."
            )

    out_dir = os.path.abspath(os.fspath(out_dir))
    work = _make_staging_folder(_staging_parent(out_dir))
    try:
        staged = os.path.join(work, "artifacts")
        os.mkdir(staged)
        request = {
            "formats": list(formats),
            "input_shape": list(shape),
            "quantize": quantize,
            "representative": representative,
        }
        artifacts = _convert(model, model_path, work, staged, request)
        paths = {fmt: path for fmt, (path, _) in artifacts.items()}
        report = {}
        if verify:
            report = _verify(model, paths, quantize, verify_inputs, data_format)
        os.makedirs(out_dir, exist_ok=True)
        final = {}
        for fmt, path in paths.items():
            final[fmt] = os.path.join(out_dir, os.path.basename(path))
            _move_into_place(path, final[fmt], work)
        report = {fmt: dataclasses.replace(entry, path=final[fmt]) for fmt, entry in report.items()}
        input_shapes = {fmt: used for fmt, (_, used) in artifacts.items()}
        return ExportResult(final, input_shapes, report)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _staging_parent(out_dir):
    """The folder to stage `out_dir`'s artifacts in: its parent, or the
    nearest folder above it that exists (nothing is created before the
    artifacts pass). Both it and `out_dir`, if it exists, must be writable."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"`out_dir` is a file, not a folder: {out_dir!r}")
    parent = os.path.dirname(out_dir)
    while not os.path.isdir(parent):
        if os.path.exists(parent) or parent == os.path.dirname(parent):
            raise ValueError(
                f"`out_dir` cannot be created: {parent!r} is not a folder. "
                f"Received: out_dir={out_dir!r}"
            )
        parent = os.path.dirname(parent)
    for folder in (parent, out_dir):
        if os.path.isdir(folder) and not os.access(folder, os.W_OK | os.X_OK):
            raise ValueError(
                f"`out_dir`: this process cannot write to the folder {folder!r} "
                f"(exports are staged next to `out_dir`). Received: out_dir={out_dir!r}"
            )
    return parent


def _make_staging_folder(parent):
    """A new folder in `parent` named after this process
    (`.keras_cvlec_export_<random>.<pid>@<host>`), made once the folders
    left by killed exports (their process on this host is gone) are removed."""
    host = socket.gethostname()
    for name in os.listdir(parent):
        stem, _, owner_host = name.partition("@")
        pid = stem.rpartition(".")[2]
        if (
            name.startswith(_STAGING_PREFIX)
            and owner_host == host
            and pid.isdigit()
            and not _is_running(int(pid))
        ):
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
    return tempfile.mkdtemp(prefix=_STAGING_PREFIX, suffix=f".{os.getpid()}@{host}", dir=parent)


def _is_running(pid):
    """Whether process `pid` exists (assumed on Windows, where `os.kill`
    would end it)."""
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process
    return True


def model_data_format(model):
    """`"channels_first"` if any layer of `model` uses it, else `"channels_last"`."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if getattr(layer, "data_format", None) == "channels_first":
            return "channels_first"
    return "channels_last"


def _spatial(shape, data_format):
    """(height, width) of `shape`, an input shape without the batch."""
    return tuple(shape[axis - 1] for axis in spatial_axes(data_format))


def _check_formats(formats):
    if isinstance(formats, str):
        formats = (formats,)
    if not isinstance(formats, (list, tuple)) or not formats:
        raise ValueError(
            f"`formats` must be a format name or a non-empty sequence of them, from "
            f"{FORMATS}. Received: formats={formats!r}"
        )
    for fmt in formats:
        check_choice("formats", fmt, FORMATS)
    if len(set(formats)) != len(formats):
        raise ValueError(f"`formats` lists a format twice. Received: formats={formats!r}")
    return tuple(formats)


def _check_input_shape(model, input_shape):
    """The export's input shape (no batch), checked against the model."""
    model_shape = tuple(model.inputs[0].shape[1:])
    if input_shape is None:
        return model_shape
    message = (
        f"`input_shape` must be a tuple of {len(model_shape)} positive ints or None "
        f"(the model's input shape without the batch is {model_shape}). "
        f"Received: input_shape={input_shape!r}"
    )
    if not isinstance(input_shape, (list, tuple)) or len(input_shape) != len(model_shape):
        raise ValueError(message)
    shape = []
    for size, own in zip(input_shape, model_shape):
        if size is None:
            shape.append(own)
            continue
        try:
            check_positive_int("input_shape", size)
        except (TypeError, ValueError) as error:
            raise type(error)(message) from None
        if own is not None and size != own:
            raise ValueError(
                f"The model takes inputs of shape {model_shape} (without the batch); "
                f"it cannot take input_shape={tuple(input_shape)}."
            )
        shape.append(int(size))
    shape = tuple(shape)
    try:
        model.compute_output_spec(keras.KerasTensor((1, *shape)))
    except Exception as error:  # noqa: BLE001 - any failure means unusable
        raise ValueError(
            f"The model {model.name!r} cannot take input_shape={shape}: "
            f"{type(error).__name__}: {error}"
        ) from error
    return shape


def _check_samples(sample_inputs, shape):
    if sample_inputs is None:
        return None
    samples = keras.ops.convert_to_numpy(sample_inputs)
    known = all(a is None or a == b for a, b in zip(shape, samples.shape[1:]))
    if samples.ndim != len(shape) + 1 or not known or len(samples) < 1:
        raise ValueError(
            f"`sample_inputs` must be a batch of inputs of shape (N, *{shape}). "
            f"Received shape {samples.shape}"
        )
    if samples.dtype.kind != "f":
        raise TypeError(f"`sample_inputs` must be floating point. Received dtype {samples.dtype}")
    return samples.astype("float32")


def _missing(module):
    """Whether `module` cannot be imported (`sys.modules[module] = None` counts)."""
    import importlib.util

    if module in sys.modules:
        return sys.modules[module] is None
    return importlib.util.find_spec(module) is None


def _check_dependencies(formats, verify):
    for fmt in formats:
        needed = _CONVERTERS[fmt] + (_RUNTIMES[fmt] if verify else ())
        missing = [module for module in needed if _missing(module)]
        if missing:
            raise ImportError(
                f"Exporting to {fmt!r} needs the Python module(s) "
                f"{', '.join(missing)}. Install them with `{EXPORT_EXTRA}`."
            )


def _convert(model, model_path, work, staged, request):
    """Runs `convert` into `staged`: here on the TensorFlow backend, else in a
    TensorFlow-backend subprocess on the model's `.keras` file."""
    if keras.backend.backend() == "tensorflow":
        from keras_cvlec.export.convert import convert

        return convert(model, staged, **request)
    modules = _custom_modules(model)
    if model_path is None:
        model_path = os.path.join(work, "model.keras")
        model.save(model_path)
    request = dict(
        request,
        model=os.path.abspath(model_path),
        out_dir=staged,
        modules=modules,
        sys_path=[path for path in sys.path if isinstance(path, str)],
    )
    if request["representative"] is not None:
        np.save(os.path.join(work, "representative.npy"), request["representative"])
        request["representative"] = os.path.join(work, "representative.npy")
    request_path = os.path.join(work, "request.json")
    with open(request_path, "w") as file:
        json.dump(request, file)
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    process = subprocess.run(
        [sys.executable, "-m", "keras_cvlec.export", request_path],
        env=env,
        capture_output=True,
        text=True,
    )
    if process.returncode != 0:
        lines = process.stderr.strip().splitlines() or ["no error output"]
        reason = lines[-1]
        if len(reason) > _MAX_REASON_CHARS:
            reason = reason[:_MAX_REASON_CHARS] + " ..."
        raise ExportProcessError(
            f"The TensorFlow export process failed (exit code {process.returncode}): "
            f"{reason}\nIts whole error output is in this error's `stderr` attribute.",
            process.stderr,
        )
    with open(os.path.join(staged, "artifacts.json")) as file:
        return {fmt: (path, tuple(shape)) for fmt, (path, shape) in json.load(file).items()}


def _custom_modules(model):
    """The modules that define `model`'s objects from outside Keras, which
    the TensorFlow process imports before it loads the model.

    Raises a ValueError for an object it could not find there: one defined
    in `__main__`, or not registered for serialization.
    """
    modules = set()
    for config in _object_configs(keras.saving.serialize_keras_object(model)):
        module, name = config["module"], config["registered_name"]
        if config["class_name"] == "function":
            # Saved under the module "builtins": the registry knows the real one.
            function = keras.saving.get_registered_object(config["config"])
            if function is None:
                continue  # a Keras built-in
            module, name = function.__module__, config["config"]
        elif module is not None and module.partition(".")[0] in ("keras", "builtins"):
            continue
        in_main = module in (None, "__main__")  # Keras saves `__main__` as None
        registered = keras.saving.get_registered_object(name) is not None
        if in_main or not registered:
            where = "`__main__`" if in_main else f"module {module!r}"
            raise ValueError(
                f"Exporting from the {keras.backend.backend()} backend loads the "
                f"model in a TensorFlow process, which cannot find "
                f"{name.rpartition('>')[2]!r} (defined in {where}"
                f"{'' if registered else ', not registered'}). Define it in an "
                "importable module and decorate it with "
                "`@keras.saving.register_keras_serializable()`, or export with "
                "KERAS_BACKEND=tensorflow."
            )
        modules.add(module)
    return sorted(modules)


def _object_configs(config):
    """Every serialized class or function (a dict with a `class_name` and a
    `module`) in `config`, outside compile configs (the TensorFlow process
    loads the model without compiling it)."""
    if isinstance(config, dict):
        if "class_name" in config and "module" in config:
            yield config
        for key, value in config.items():
            if key != "compile_config":
                yield from _object_configs(value)
    elif isinstance(config, (list, tuple)):
        for value in config:
            yield from _object_configs(value)


def _verify(model, paths, quantize, inputs, data_format):
    from keras_cvlec.export.verify import VerificationError, verify_artifact

    expected = model.predict(inputs, batch_size=len(inputs), verbose=0)
    if not isinstance(expected, (list, tuple)):
        expected = [expected]
    expected = [keras.ops.convert_to_numpy(output) for output in expected]
    class_axis = channel_axis(data_format)
    report = {}
    for fmt, path in paths.items():
        precision = quantize if fmt == "tflite" and quantize else "float32"
        report[fmt] = verify_artifact(fmt, path, precision, inputs, expected, class_axis)
    failed = [entry for entry in report.values() if not entry.passed]
    if failed:
        raise VerificationError(
            "Exported artifacts do not reproduce the model (nothing was written):\n"
            + "\n".join(str(entry) for entry in failed)
        )
    return report


def _move_into_place(source, target, work):
    """Moves `source` to `target`, replacing a previous artifact there.

    A folder cannot be renamed over a non-empty one: the old one is first
    renamed into `work` (deleted with it), so `target` is never partial.
    """
    if os.path.isdir(target) and not os.path.islink(target):
        os.replace(target, os.path.join(work, "replaced_" + os.path.basename(target)))
    os.replace(source, target)
