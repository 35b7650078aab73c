"""Bad inputs to keras_cvlec.export: clear errors before any conversion, and
nothing left behind, not even by a killed export.

Cost: tiny one- or two-layer models. The conversion is faked except in
`test_registered_custom_objects_export`, which exports a SavedModel (one
TensorFlow subprocess on JAX/torch); `test_killed_export_is_cleaned_up`
(JAX run only) starts one short Python process and kills it.
"""

import os
import signal
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_cvlec import cli
from keras_cvlec.export import ExportProcessError, VerificationError, export_model, exporter, verify
from tests.harness import backend_name


@keras.saving.register_keras_serializable(package="keras_cvlec_export_tests")
class Registered(keras.layers.Layer):
    def call(self, inputs):
        return inputs * 2.0


class Unregistered(keras.layers.Layer):
    def call(self, inputs):
        return inputs + 1.0


class UnregisteredLoss(keras.losses.Loss):
    def call(self, y_true, y_pred):
        return keras.ops.mean(keras.ops.abs(y_true - y_pred))


@keras.saving.register_keras_serializable(package="keras_cvlec_export_tests")
def halve(x):
    return x * 0.5


@keras.saving.register_keras_serializable(package="keras_cvlec_export_tests")
class InMain(keras.layers.Layer):
    """As if defined in a script: Keras saves it without a module."""

    __module__ = "__main__"

    def call(self, inputs):
        return inputs


def _image_model(*layers):
    inputs = keras.Input((8, 8, 3))
    x = inputs
    for layer in layers:
        x = layer(x)
    return keras.Model(inputs, x)


def _conv():
    return keras.layers.Conv2D(2, 1)


def _fail(*args, **kwargs):
    raise AssertionError("a conversion started")


@pytest.fixture
def no_conversion(monkeypatch):
    """Fails the test if a conversion (or its subprocess) starts."""
    monkeypatch.setattr(exporter, "_convert", _fail)
    monkeypatch.setattr(subprocess, "run", _fail)


def _fake_convert(model, model_path, work, staged, request):
    path = os.path.join(staged, "model.onnx")
    with open(path, "wb") as file:
        file.write(b"onnx")
    return {"onnx": (path, (None, 8, 8, 3))}


def test_unsupported_models(tmp_path, no_conversion):
    tokens = keras.Input((5, 4))
    a, b = keras.Input((8, 8, 3)), keras.Input((8, 8, 3))
    image = keras.Input((8, 8, 3))

    class Subclassed(keras.Model):
        def call(self, inputs):
            return inputs

    supported = (
        r"export_model supports models with one image input of shape "
        r"\(batch, height, width, channels\) or \(batch, channels, height, width\); "
    )
    cases = [
        (
            keras.Model(tokens, keras.layers.Dense(3)(tokens)),
            supported + r"'\w+' has 1 input\(s\) of shape \(None, 5, 4\)\.",
        ),
        (
            keras.Model([a, b], keras.layers.Add()([a, b])),
            supported + r"'\w+' has 2 input\(s\) of shape \(None, 8, 8, 3\), \(None, 8, 8, 3\)",
        ),
        (
            keras.Model(image, {"mask": _conv()(image), "label": keras.layers.Flatten()(image)}),
            r"supports models that return a tensor or a list of tensors; '\w+' returns "
            r"\{'mask': \(None, 8, 8, 2\), 'label': \(None, 192\)\}\. Export "
            r"`keras.Model\(model.inputs, model.outputs\)` instead",
        ),
        (Subclassed(), "needs a model with symbolic inputs .*'subclassed' is a Subclassed"),
    ]
    for model, message in cases:
        with pytest.raises(ValueError, match=message):
            export_model(model, tmp_path / "out", "saved_model")
    assert os.listdir(tmp_path) == []


def test_registered_custom_objects_export(tmp_path):
    """A layer and a function registered in an importable module (this one):
    on JAX/torch the TensorFlow process imports it; on TensorFlow an
    unregistered layer works too (in process). An unregistered loss does not
    matter: export needs no compiled model."""
    layers = [Registered(), keras.layers.Conv2D(2, 1, activation=halve)]
    if backend_name() == "tensorflow":
        layers.append(Unregistered())
    model = _image_model(*layers)
    model.compile(loss=UnregisteredLoss())
    result = export_model(model, tmp_path / "out", "saved_model")
    assert result.report["saved_model"].passed


@pytest.mark.skipif(backend_name() == "tensorflow", reason="converts in process")
def test_custom_objects_the_tensorflow_process_cannot_find(tmp_path, monkeypatch):
    monkeypatch.setattr(subprocess, "run", _fail)
    remedy = (
        r"\. Define it in an importable module and decorate it with "
        r"`@keras.saving.register_keras_serializable\(\)`, or export with "
        r"KERAS_BACKEND=tensorflow\."
    )
    cases = [
        (
            Unregistered(),
            r"'Unregistered' \(defined in module 'tests.test_export_errors', not registered\)",
        ),
        (InMain(), r"'InMain' \(defined in `__main__`\)"),
    ]
    for layer, where in cases:
        message = f"a TensorFlow process, which cannot find {where}{remedy}"
        with pytest.raises(ValueError, match=message):
            export_model(_image_model(_conv(), layer), tmp_path / "out", "saved_model")
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(backend_name() == "tensorflow", reason="converts in process")
def test_failed_tensorflow_process_error_is_short(tmp_path, monkeypatch):
    stderr = "Traceback (most recent call last):\n" + "  File ...\n" * 300
    stderr += "TypeError: Could not locate class 'Custom'. Full object config: " + "x" * 2000
    monkeypatch.setattr(
        subprocess, "run", lambda args, **kwargs: subprocess.CompletedProcess(args, 1, "", stderr)
    )
    with pytest.raises(ExportProcessError) as info:
        export_model(_image_model(_conv()), tmp_path / "out", "saved_model")
    message = str(info.value)
    assert message.startswith(
        "The TensorFlow export process failed (exit code 1): "
        "TypeError: Could not locate class 'Custom'"
    )
    assert message.endswith("Its whole error output is in this error's `stderr` attribute.")
    assert len(message) < 500
    assert info.value.stderr == stderr
    assert os.listdir(tmp_path) == []
    # The CLI: the process's error output, then one line, no traceback of its own.
    path = tmp_path / "model.keras"
    _image_model(_conv()).save(path)
    with pytest.raises(SystemExit) as info:
        cli.main(["export", str(path)])
    message = str(info.value)
    assert message.startswith(stderr + "\nkeras-cvlec export: The TensorFlow export process failed")
    assert message.endswith("Its whole error output is above.")
    assert sorted(os.listdir(tmp_path)) == ["model.keras"]


# Staging is the same on every backend: the JAX run (the quickest to start a
# Keras process) checks it.
@pytest.mark.skipif(
    backend_name() != "jax" or not hasattr(signal, "SIGKILL"), reason="JAX run, POSIX"
)
def test_killed_export_is_cleaned_up(tmp_path, monkeypatch):
    """An export killed mid-way leaves its staging folder; the next export to
    the same parent removes it, and leaves those of live processes (this
    one) and of other hosts alone."""
    script = (
        "import sys, time, keras\n"
        "from keras_cvlec.export import exporter\n"
        "def convert(*args):\n"
        "    print('staged', flush=True)\n"
        "    time.sleep(600)\n"
        "exporter._convert = convert\n"
        "inputs = keras.Input((8, 8, 3))\n"
        "model = keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs))\n"
        "exporter.export_model(model, sys.argv[1], 'saved_model', verify=False)\n"
    )
    log = tmp_path / "stderr.txt"
    with (
        open(log, "w") as stderr,
        subprocess.Popen(
            [sys.executable, "-c", script, tmp_path / "killed"],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        ) as process,
    ):
        try:
            assert process.stdout.readline() == "staged\n", log.read_text()
        finally:
            process.send_signal(signal.SIGKILL)
    (killed,) = [name for name in os.listdir(tmp_path) if name.startswith(".keras_cvlec")]
    assert killed.endswith(f".{process.pid}@{socket.gethostname()}")
    assert os.listdir(tmp_path / killed) == ["artifacts"]
    kept = [
        f".keras_cvlec_export_live.{os.getpid()}@{socket.gethostname()}",
        f".keras_cvlec_export_remote.{process.pid}@another-host",
    ]
    for name in kept:
        os.mkdir(tmp_path / name)
    monkeypatch.setattr(exporter, "_convert", _fake_convert)
    result = export_model(_image_model(_conv()), tmp_path / "out", "onnx", verify=False)
    assert result.paths == {"onnx": str(tmp_path / "out" / "model.onnx")}
    assert sorted(os.listdir(tmp_path)) == sorted(kept + ["out", "stderr.txt"])


def test_cli_out_errors(tmp_path, monkeypatch, no_conversion):
    """`--out` naming a file, a path inside a file or a folder this process
    cannot write: a one-line error before any conversion."""
    path = tmp_path / "model.keras"
    _image_model(_conv()).save(path)
    (tmp_path / "file.txt").write_text("mine")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere: deny as the mode says
        access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: p != str(locked) and access(p, mode))
    cases = [
        (tmp_path / "file.txt", "`out_dir` is a file, not a folder: '.*file.txt'"),
        (tmp_path / "file.txt" / "out", "`out_dir` cannot be created: '.*file.txt' is not a"),
        (locked, "`out_dir`: this process cannot write to the folder '.*locked'"),
        (locked / "out", "`out_dir`: this process cannot write to the folder '.*locked'"),
    ]
    try:
        for out, message in cases:
            with pytest.raises(SystemExit, match=f"^keras-cvlec export: {message}") as info:
                cli.main(["export", str(path), "--out", str(out)])
            assert "\n" not in str(info.value)
    finally:
        locked.chmod(0o755)
    assert sorted(os.listdir(tmp_path)) == ["file.txt", "locked", "model.keras"]
    assert os.listdir(locked) == [] and (tmp_path / "file.txt").read_text() == "mine"


def _one_element_off(array, index, delta):
    wrong = np.array(array, copy=True)
    wrong[index] += delta
    return wrong


def test_verification_compares_the_largest_difference_not_the_mean(monkeypatch):
    """One wrong element fails float32 verification even when the mean
    difference is far below the tolerance; the report names its difference."""
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(4, 8, 8, 3)).astype("float32")
    logits = rng.normal(size=(4, 5)).astype("float32")
    inputs = np.zeros((4, 8, 8, 3), "float32")
    delta = 2e-3  # the mean difference is delta / 768 = 2.6e-6
    outputs = [_one_element_off(dense, (2, 3, 4, 1), delta), logits]
    monkeypatch.setitem(verify.RUNNERS, "onnx", lambda path, inputs: outputs)
    report = verify.verify_artifact("onnx", "m.onnx", "float32", inputs, [dense, logits], -1)
    assert np.mean(np.abs(outputs[0] - dense)) < verify.FLOAT32_TOLERANCE / 10
    assert not report.passed
    assert report.max_abs_diff == pytest.approx(delta, rel=1e-3)
    assert report.per_output[0][0] == pytest.approx(delta, rel=1e-3)
    assert report.per_output[1][0] == 0.0
    assert "FAILED" in str(report)
    # The same element off by less than the tolerance passes.
    outputs[0] = _one_element_off(dense, (2, 3, 4, 1), 5e-5)
    report = verify.verify_artifact("onnx", "m.onnx", "float32", inputs, [dense, logits], -1)
    assert report.passed and report.max_abs_diff == pytest.approx(5e-5, rel=1e-2)


def test_verification_reports_the_worst_output(monkeypatch):
    """Several outputs: the largest difference and the smallest argmax
    agreement of any output decide."""
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(4, 6, 6, 3)).astype("float32")
    logits = np.eye(4, 5, dtype="float32") * 10.0
    flipped = np.roll(logits, 1, axis=-1)  # every label wrong
    flipped[:2] = logits[:2]  # half of them right again
    inputs = np.zeros((4, 6, 6, 3), "float32")
    outputs = [_one_element_off(scores, (0, 1, 2, 0), 3e-4), flipped]
    monkeypatch.setitem(verify.RUNNERS, "tflite", lambda path, inputs: outputs)
    report = verify.verify_artifact("tflite", "m.tflite", "float16", inputs, [scores, logits], -1)
    assert report.argmax_agreement == 0.5 and not report.passed
    assert report.max_abs_diff == pytest.approx(10.0)
    assert report.per_output[0] == (pytest.approx(3e-4, rel=1e-2), 1.0)
    outputs[1] = logits
    report = verify.verify_artifact("tflite", "m.tflite", "float32", inputs, [scores, logits], -1)
    assert report.max_abs_diff == pytest.approx(3e-4, rel=1e-2) and not report.passed
    assert report.argmax_agreement == 1.0


def test_export_fails_on_one_wrong_element(tmp_path, monkeypatch):
    """export_model verifies every element: an artifact wrong in one output
    element by 1e-3 fails, and nothing is written."""
    model = _image_model(_conv())
    monkeypatch.setattr(exporter, "_convert", _fake_convert)

    def run(path, inputs):
        return [_one_element_off(model.predict(inputs, verbose=0), (1, 4, 5, 1), 1e-3)]

    monkeypatch.setitem(verify.RUNNERS, "onnx", run)
    with pytest.raises(VerificationError, match=r"onnx .* max abs diff 0\.001,.* FAILED"):
        export_model(model, tmp_path / "out", "onnx")
    assert os.listdir(tmp_path) == []
