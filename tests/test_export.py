"""Tests of keras_cvlec.export: the formats from every backend, verified.

Cost (exports are slow): one model holding a tiny ResNet, a tiny ConvNeXt, a
U-Net of each up-sampling kind and a SegNet (any input size, trained 2 steps
at 32x32 on the active backend, 4-8 filters), is exported once. Conversion
always runs under TensorFlow (in process on TF, one TensorFlow subprocess
from the model's `.keras` file on JAX/torch), so the TF run converts to all
three formats and the other runs to SavedModel (which checks their `.keras`
file under TensorFlow) and TFLite. float16 TFLite uses the max-unpooling
U-Net alone, int8 (the slow calibration) on TF only. The `.keras`
portability check: TF's file is loaded by torch, torch's by JAX, JAX's by
torch (and the exports load JAX's and torch's under TensorFlow). The
atomicity and bad-input checks convert nothing.
"""

import contextlib
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_cvlec
from keras_cvlec import cli
from keras_cvlec import layers as cvlec_layers
from keras_cvlec.data import make_shapes
from keras_cvlec.export import FORMATS, VerificationError, export_model, exporter, verify
from keras_cvlec.export.samples import default_samples
from keras_cvlec.utils import structure_only
from tests.harness import backend_name, randomize_weights, to_numpy

UPSAMPLINGS = ("transpose", "bilinear", "nearest", "max_unpool")
SEGMENTERS = [f"unet_{kind}" for kind in UPSAMPLINGS] + ["segnet"]
CLASSIFIERS = ["resnet", "convnext"]
OUTPUTS = SEGMENTERS + CLASSIFIERS
SIZE = 32


def _named(model, name):
    """`model` as a named functional layer (one output tensor, not a list)."""
    return keras.Model(model.inputs[0], model.outputs[0], name=name)


def _tiny_classifiers(inputs):
    """A 2-block ResNet (v1 basic, v1.5 bottleneck) and a 1-block ConvNeXt."""
    x = cvlec_layers.Conv2D(8, 3, strides=2, padding="same", name="resnet_stem")(inputs)
    x = cvlec_layers.ResNetBasicBlock(8, name="resnet_block1")(x)
    x = cvlec_layers.ResNetBottleneckBlock(4, strides=2, version="v1.5", name="resnet_block2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="resnet_pool")(x)
    resnet = keras.layers.Dense(3, name="resnet")(x)
    x = cvlec_layers.Conv2D(8, 4, strides=4, name="convnext_stem")(inputs)
    x = cvlec_layers.ChannelLayerNormalization(1e-6, name="convnext_norm")(x)
    x = cvlec_layers.ConvNeXtBlock(layer_scale_init_value=0.5, name="convnext_block")(x)
    x = keras.layers.GlobalAveragePooling2D(name="convnext_pool")(x)
    convnext = keras.layers.Dense(3, name="convnext")(x)
    return [resnet, convnext]


@pytest.fixture(scope="module")
def data():
    shapes = make_shapes(8, SIZE, seed=3)
    return shapes["images"], shapes["masks"], shapes["labels"] - 1


@pytest.fixture(scope="module")
def model(data):
    """Every architecture as one 7-output model, trained 2 steps."""
    # JAX compiles every initializer for every weight shape (about 70 s here):
    # there the models are built without drawing initial values (TensorFlow
    # and torch cannot assign such variables), then all get NumPy weights.
    lazy = backend_name() == "jax"
    with structure_only() if lazy else contextlib.nullcontext():
        inputs = keras.Input((None, None, 3), name="image")
        segmenters = [
            keras_cvlec.build_unet(num_classes=4, depth=2, filters=4, upsampling=kind)
            for kind in UPSAMPLINGS
        ]
        segmenters.append(
            keras_cvlec.build_segnet(num_classes=4, depth=2, filters=4, convs_per_level=1)
        )
        outputs = [_named(m, name)(inputs) for m, name in zip(segmenters, SEGMENTERS)]
        model = keras.Model(inputs, outputs + _tiny_classifiers(inputs), name="zoo")
    randomize_weights(model)
    images, masks, labels = data
    model.compile(
        optimizer=keras.optimizers.SGD(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,
    )
    before = to_numpy(model.get_layer("resnet").kernel).copy()
    model.fit(images, [masks] * 5 + [labels] * 2, batch_size=4, epochs=1, verbose=0)
    assert not np.allclose(to_numpy(model.get_layer("resnet").kernel), before)
    return model


def _zoo_formats():
    return FORMATS if backend_name() == "tensorflow" else ("saved_model", "tflite")


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    """`(result, subprocess count)` of exporting `model` to every format."""
    calls = []
    run = subprocess.run

    def counting_run(*args, **kwargs):
        calls.append(args)
        return run(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(subprocess, "run", counting_run)
        result = export_model(
            model,
            tmp_path_factory.mktemp("zoo") / "out",
            _zoo_formats(),
            input_shape=(SIZE, SIZE, 3),
        )
    return result, len(calls)


def test_every_format_reproduces_every_model(exported, model, data):
    result, subprocesses = exported
    assert subprocesses == (0 if backend_name() == "tensorflow" else 1)
    formats = _zoo_formats()
    assert list(result.paths) == list(formats)
    for fmt in formats:
        report = result.report[fmt]
        if fmt == "saved_model" and backend_name() != "tensorflow":
            # The SavedModel is the .keras file loaded under TensorFlow: the
            # portability check for TensorFlow (see the next test).
            assert report.max_abs_diff <= 1e-5, report
        assert report.path == result.paths[fmt] and os.path.exists(report.path)
        assert report.precision == "float32" and report.passed
        assert len(report.per_output) == len(OUTPUTS)
        for name, (diff, agreement) in zip(OUTPUTS, report.per_output):
            assert diff <= 1e-4, (fmt, name, diff)
            assert agreement == 1.0, (fmt, name, agreement)
    # Keras's bilinear UpSampling2D cannot be traced with an unknown height
    # and width on TensorFlow: every format falls back to input_shape.
    assert set(result.input_shapes.values()) == {(None, SIZE, SIZE, 3)}
    # Independently of the report: other batch sizes, in each runtime.
    images = data[0][:4]
    expected = model.predict(images, verbose=0)
    runs = [(fmt, images, expected) for fmt in formats]
    runs.append(("tflite", images[:1], [e[:1] for e in expected]))
    for fmt, inputs, want in runs:
        outputs = verify.RUNNERS[fmt](result.paths[fmt], inputs)
        for name, got, ref in zip(OUTPUTS, outputs, want):
            np.testing.assert_allclose(got, ref, atol=1e-4, err_msg=f"{fmt} {name}")
    with open(result.paths["tflite"], "rb") as file:
        assert b"Flex" not in file.read()  # Flex ops carry their TF name: FlexConv2D


def test_max_unpool_unet_any_size_and_quantized(model, tmp_path):
    """The SavedModel takes any size; float16 (and on TF int8) TFLite at
    32x32."""
    import ai_edge_litert.interpreter as litert

    unet = model.get_layer("unet_max_unpool")
    result = export_model(
        unet,
        tmp_path / "f16",
        ["saved_model", "tflite"],
        quantize="float16",
        input_shape=(SIZE, SIZE, 3),
    )
    assert result.input_shapes == {
        "saved_model": (None, None, None, 3),
        "tflite": (None, SIZE, SIZE, 3),
    }
    report = result.report["tflite"]
    assert report.precision == "float16" and report.argmax_agreement >= 0.99
    assert 0 < report.max_abs_diff < 0.5
    assert result.report["saved_model"].max_abs_diff <= 1e-4
    wide = make_shapes(2, 48, seed=1)["images"][:, :40]  # 40x48
    (got,) = verify.RUNNERS["saved_model"](result.paths["saved_model"], wide)
    np.testing.assert_allclose(got, unet.predict(wide, verbose=0), atol=1e-4)

    quantized = [(result.paths["tflite"], np.float16)]
    if backend_name() == "tensorflow":
        int8 = export_model(
            unet, tmp_path / "int8", "tflite", quantize="int8", input_shape=(SIZE, SIZE, 3)
        )
        assert int8.report["tflite"].precision == "int8" and int8.report["tflite"].passed
        assert 0 < int8.report["tflite"].argmax_agreement <= 1
        quantized.append((int8.paths["tflite"], np.int8))
    for file, dtype in quantized:
        tensors = litert.Interpreter(model_path=str(file)).get_tensor_details()
        assert any(t["dtype"] == dtype for t in tensors), (file, dtype)
        with open(file, "rb") as handle:
            assert b"Flex" not in handle.read()


def test_cli(tmp_path, monkeypatch, capsys):
    """`keras-cvlec export` passes its options on and prints the report
    (conversion and runtime faked: the API tests run them)."""
    model = keras_cvlec.build_unet(input_shape=(None, None, 3), depth=1, filters=4)
    path = tmp_path / "unet.keras"
    model.save(path)
    images = default_samples((24, 16, 3), "channels_last", 4)
    expected = model.predict(images, verbose=0)
    requests = []

    def convert(model, model_path, work, staged, request):
        requests.append(dict(request, model_path=model_path))
        with open(os.path.join(staged, "model_int8.tflite"), "wb") as file:
            file.write(b"tflite")
        return {"tflite": (os.path.join(staged, "model_int8.tflite"), (None, 24, 16, 3))}

    monkeypatch.setattr(exporter, "_convert", convert)
    monkeypatch.setitem(verify.RUNNERS, "tflite", lambda path, inputs: [expected])
    argv = ["export", str(path), "--format", "tflite", "--quantize", "int8"]
    argv += ["--input-size", "24", "16"]
    assert cli.main(argv) == 0
    (request,) = requests
    assert request["model_path"] == str(path) and request["input_shape"] == [24, 16, 3]
    assert request["formats"] == ["tflite"] and request["quantize"] == "int8"
    assert request["representative"].shape == (16, 24, 16, 3)
    printed = capsys.readouterr().out
    artifact = tmp_path / "unet_export" / "model_int8.tflite"
    assert artifact.read_bytes() == b"tflite"
    assert f"tflite       {artifact}  input (None, 24, 16, 3)" in printed
    assert "int8     max abs diff 0, argmax agreement 100.00% (reported only) ok" in printed


def _backend_env(backend):
    return dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")


# The backend that loads each backend's `.keras` file. TensorFlow loads JAX's
# and torch's in their SavedModel export (above), so these cover five of the
# six ordered pairs (all but TensorFlow's file on JAX) in three subprocesses.
NEXT_BACKEND = {"tensorflow": "torch", "torch": "jax", "jax": "torch"}


def test_keras_file_loads_on_the_next_backend(model, data, tmp_path):
    path, inputs = tmp_path / "zoo.keras", tmp_path / "inputs.npy"
    model.save(path)
    np.save(inputs, data[0][:2])
    script = (
        "import sys, numpy as np, keras, keras_cvlec\n"
        "model = keras.saving.load_model(sys.argv[1])\n"
        "np.savez(sys.argv[3], *model.predict(np.load(sys.argv[2]), verbose=0))\n"
    )
    other = NEXT_BACKEND[backend_name()]
    loaded = subprocess.run(
        [sys.executable, "-c", script, path, inputs, tmp_path / "loaded.npz"],
        env=_backend_env(other),
        stderr=subprocess.PIPE,
        text=True,
    )
    assert loaded.returncode == 0, f"{other}: {loaded.stderr[-2000:]}"
    got = np.load(tmp_path / "loaded.npz")
    expected = model.predict(data[0][:2], verbose=0)
    for index, name in enumerate(OUTPUTS):
        np.testing.assert_allclose(
            got[f"arr_{index}"], expected[index], atol=1e-5, err_msg=f"{other} {name}"
        )


def test_failed_export_writes_nothing(tmp_path, monkeypatch):
    """A crashed conversion or a failed verification leaves `out_dir` as it was."""
    model = keras_cvlec.build_unet(input_shape=(16, 16, 3), depth=1, filters=4)
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.onnx").write_bytes(b"previous export")

    def convert(crash):
        def fake(model, model_path, work, staged, request):
            path = os.path.join(staged, "model.onnx")
            with open(path, "wb") as file:
                file.write(b"half written")
            if crash:
                raise RuntimeError("conversion crashed")
            return {"onnx": (path, (None, 16, 16, 3))}

        return fake

    monkeypatch.setattr(exporter, "_convert", convert(crash=True))
    with pytest.raises(RuntimeError, match="crashed"):
        export_model(model, out, "onnx")
    monkeypatch.setattr(exporter, "_convert", convert(crash=False))
    # An artifact whose outputs are off by 1e-3 everywhere.
    expected = model.predict(default_samples((16, 16, 3), "channels_last", 4), verbose=0)
    monkeypatch.setitem(verify.RUNNERS, "onnx", lambda path, inputs: [expected + 1e-3])
    with pytest.raises(VerificationError, match=r"onnx .* max abs diff 0\.001.* FAILED"):
        export_model(model, out, "onnx")
    assert (out / "model.onnx").read_bytes() == b"previous export"
    assert sorted(os.listdir(tmp_path)) == ["out"]  # no temporary folder left


def test_bad_inputs(tmp_path, monkeypatch):
    inputs = keras.Input((None, None, 1))
    gray = keras.Model(inputs, keras.layers.Conv2D(2, 5)(inputs))
    fixed = keras_cvlec.build_unet(input_shape=(16, 16, 3), depth=1, filters=4)
    out = tmp_path / "out"
    cases = [
        (dict(model_or_path=tmp_path / "model.h5"), ValueError, "model.h5"),
        (dict(model_or_path=tmp_path / "missing.keras"), ValueError, "no such file"),
        (dict(model_or_path=3), TypeError, "model_or_path"),
        (dict(formats=["tflite", "coreml"]), ValueError, "'coreml'. Allowed values"),
        (dict(formats=["onnx", "onnx"]), ValueError, "twice"),
        (dict(formats=[]), ValueError, "non-empty"),
        (dict(formats="onnx", quantize="int8"), ValueError, "TFLite only"),
        (dict(quantize="int4"), ValueError, "'int4'. Allowed values"),
        (dict(verify="yes"), TypeError, r"`verify` must be True or False\. Received: verify='yes'"),
        (dict(input_shape=(32, 32, 3)), ValueError, "cannot take"),
        (dict(input_shape=(16, 16)), ValueError, "tuple of 3"),
        (dict(input_shape=(16, 0, 3)), ValueError, "input_shape=\\(16, 0, 3\\)"),
        (
            dict(input_shape=(16, 16.0, 3)),
            TypeError,
            r"tuple of 3 positive ints or None \(the model's input shape without the batch "
            r"is \(16, 16, 3\)\)\. Received: input_shape=\(16, 16\.0, 3\)",
        ),
        (dict(input_shape=(16, True, 3)), TypeError, r"input_shape=\(16, True, 3\)"),
        (dict(sample_inputs=np.zeros((2, 8, 8, 3), "f")), ValueError, "sample_inputs"),
        (dict(sample_inputs=np.zeros((2, 16, 16, 3), "int32")), TypeError, "floating"),
        (dict(model_or_path=gray, formats="tflite"), ValueError, "fixed height"),
        (dict(model_or_path=gray, input_shape=(3, 3, 1)), ValueError, "cannot take"),
        (
            dict(model_or_path=gray, input_shape=(16, 16, 1), quantize="int8"),
            ValueError,
            "representative",
        ),
    ]
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"not a zip file")
    cases.append((dict(model_or_path=corrupt), ValueError, "not a readable .keras"))
    (tmp_path / "model.h5").write_bytes(b"")
    for kwargs, error, message in cases:
        kwargs = {"model_or_path": fixed, "out_dir": out, **kwargs}
        with pytest.raises(error, match=message):
            export_model(**kwargs)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    missing = r"onnxruntime.*pip install keras-cvlec\[export\]"
    with pytest.raises(ImportError, match=missing):
        export_model(fixed, out, ["saved_model", "onnx"])
    with pytest.raises(SystemExit, match="keras-cvlec export: .*not a readable"):
        cli.main(["export", str(corrupt), "--format", "tflite"])
    assert sorted(os.listdir(tmp_path)) == ["corrupt.keras", "model.h5"]
