"""The model registry: names by task, and a sweep over every entry, as timm
tests every registered model.

The sweep builds each `list_models()` entry with its defaults at 64x64
inside `keras.StatelessScope(initialize_variables=False)` (variables get
shapes, not values: the real builder at the cost of a symbolic build) and
checks its output shape for its task, a serialize/deserialize round trip,
its parameter count and its metadata (`stage{k}_output` strides, weights).
The whole sweep takes about 10 s on the TensorFlow CPU backend; ConvNeXt-XL
(350 M parameters) builds in under a second this way.

References: keras.applications' parameter counts (REFERENCES.md) for the
classification models that have one: with global pooling before the
classifier, the count at 64x64 is the one at 224x224.
"""

import inspect

import keras
import pytest

import keras_cvlec
from keras_cvlec.models.registry import build_model, list_models, model_info, model_task
from keras_cvlec.tasks import TASKS
from keras_cvlec.utils import structure_only
from keras_cvlec.weights import WeightsUnavailableError

SIZE = 64
# Keras count_params() at 1000 classes, as keras.applications counts them
# (REFERENCES.md); the registry's ResNets default to version "v1", which has
# keras.applications' architecture.
PUBLISHED_COUNTS = {
    "resnet50": 25_636_712,
    "resnet101": 44_707_176,
    "resnet152": 60_419_944,
    "convnext_tiny": 28_589_128,
    "convnext_small": 50_223_688,
    "convnext_base": 88_591_464,
    "convnext_large": 197_767_336,
    "convnext_xlarge": 350_196_968,
}
# The other entries at their defaults, counted by this build (no published
# figure at these defaults; timm's convnext_atto ... nano round to the same
# 3.70 / 5.22 / 9.05 / 15.59 M, tests/models/test_convnext.py).
OTHER_COUNTS = {
    "resnet18": 11_703_912,
    "resnet34": 21_823_208,
    "convnext_atto": 3_695_520,
    "convnext_femto": 5_217_784,
    "convnext_pico": 9_045_672,
    "convnext_nano": 15_593_560,
    "unet": 31_049_474,
    "segnet": 29_488_194,
    "fcn8s": 23_790_047,
    "fcn16s": 24_110_906,
    "fcn32s": 25_437_077,
    "autoencoder": 27_916_099,
}
EXPECTED_COUNTS = {**PUBLISHED_COUNTS, **OTHER_COUNTS}


def test_models_are_listed_by_task():
    classification = list_models("classification")
    segmentation = list_models("segmentation")
    assert "resnet50" in classification and "convnext_tiny" in classification
    assert segmentation == ["fcn16s", "fcn32s", "fcn8s", "segnet", "unet"]
    assert list_models("reconstruction") == ["autoencoder"]
    assert sorted(sum((list_models(task) for task in TASKS), [])) == list_models()
    assert model_task("unet") == "segmentation" and model_task("resnet18") == "classification"
    assert keras_cvlec.model_info is model_info
    assert list_models(backbone=True) == sorted(
        name for name in list_models() if model_info(name).feature_strides
    )
    assert "resnet18" in list_models(backbone=True)
    assert "unet" not in list_models(backbone=True)


def test_unknown_names_and_tasks_are_refused():
    with pytest.raises(ValueError, match="Unknown model name: 'vgg16'.*resnet18"):
        model_task("vgg16")
    with pytest.raises(ValueError, match="Unknown model name: 'vgg16'"):
        build_model("vgg16")
    with pytest.raises(
        ValueError, match="Unknown `task`: 'detection'.*None, 'classification', 'segmentation'"
    ):
        list_models("detection")


def test_every_model_has_an_expected_count():
    assert sorted(EXPECTED_COUNTS) == list_models()


def _default(info, argument):
    """What `build_model(info.name)` passes as `argument`."""
    if argument in info.defaults:
        return info.defaults[argument]
    return inspect.signature(info.builder).parameters[argument].default


def _output_shape(info):
    """The output shape of `info`'s model for its task, at SIZE x SIZE x 3."""
    if info.task == "reconstruction":
        return (None, SIZE, SIZE, 3)
    num_classes = _default(info, "num_classes")
    if info.task == "classification":
        return (None, num_classes)
    return (None, SIZE, SIZE, num_classes)


@pytest.mark.parametrize("name", list_models())
def test_registry_sweep(name):
    """Each entry builds for its task, survives a serialize/deserialize round
    trip, has its expected parameter count, and its metadata matches the
    built model."""
    info = model_info(name)
    assert info.name == name and info.task in TASKS
    with structure_only():
        model = build_model(name, input_shape=(SIZE, SIZE, 3))
        config = keras.saving.serialize_keras_object(model)
        clone = keras.saving.deserialize_keras_object(config)
        assert model.output_shape == _output_shape(info)
        assert model.count_params() == EXPECTED_COUNTS[name]
        assert clone.count_params() == model.count_params()
        assert clone.output_shape == model.output_shape
        assert [layer.name for layer in clone.layers] == [layer.name for layer in model.layers]
        # `feature_strides` are the strides of the stage{k}_output layers.
        for level, stride in enumerate(info.feature_strides, start=1):
            shape = model.get_layer(f"stage{level}_output").output.shape
            assert tuple(shape[1:3]) == (SIZE // stride, SIZE // stride), (level, stride)
        if info.feature_strides:
            with pytest.raises(ValueError):
                model.get_layer(f"stage{len(info.feature_strides) + 1}_output")
    if info.input_size is not None:
        assert info.input_size % max(info.feature_strides, default=1) == 0


@pytest.mark.parametrize("name", list_models())
def test_registry_weights_field(name, monkeypatch, tmp_path):
    """`weights=("imagenet",)` entries accept `weights="imagenet"` (they get
    as far as the download, which fails here); the others refuse it before
    building, or have no `weights` argument."""
    calls = []

    def get_file(fname, origin, **kwargs):
        calls.append(fname)
        raise Exception(f"URL fetch failure on {origin}")

    monkeypatch.setattr(keras.utils, "get_file", get_file)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    info = model_info(name)
    assert set(info.weights) <= {"imagenet"}
    if "imagenet" in info.weights:
        with pytest.raises(WeightsUnavailableError):
            build_model(name, weights="imagenet")
        assert len(calls) == 1
    elif "weights" in inspect.signature(info.builder).parameters:
        with pytest.raises(ValueError, match="No ImageNet weights"):
            build_model(name, weights="imagenet")
        assert calls == []
    else:
        assert info.weights == ()
