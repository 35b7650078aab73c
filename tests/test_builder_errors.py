"""Bad inputs to the builders, as a user makes them: one clear error each.

ImageNet weights without network: `keras.utils.get_file` raises what Keras
raises offline, `KERAS_HOME` is a temporary folder and keras.applications
refuses to be called, so the error must come before anything big is built.
Input shapes: the errors come from the input checks, before any layer.
Nothing here builds a model.
"""

import os

import keras
import pytest

import keras_cvlec
from keras_cvlec.training.cli import USER_ERRORS
from keras_cvlec.weights import WeightsUnavailableError

URL = "https://storage.googleapis.com/tensorflow/keras-applications/"
RESNET_FILE = "{}_weights_tf_dim_ordering_tf_kernels{}.h5"

# (builder, kwargs, keras.applications model, URL folder, cached file name)
IMAGENET_CASES = [
    (keras_cvlec.build_resnet, dict(), "ResNet50", "resnet", RESNET_FILE.format("resnet50", "")),
    (
        keras_cvlec.build_resnet,
        dict(variant="resnet101", version="v2", include_top=False),
        "ResNet101V2",
        "resnet",
        RESNET_FILE.format("resnet101v2", "_notop"),
    ),
    (keras_cvlec.build_convnext, dict(), "ConvNeXtTiny", "convnext", "convnext_tiny.h5"),
    (
        keras_cvlec.build_convnext,
        dict(variant="xlarge", include_top=False),
        "ConvNeXtXLarge",
        "convnext",
        "convnext_xlarge_notop.h5",
    ),
    (
        keras_cvlec.build_unet,
        dict(backbone="resnet50", input_shape=(64, 64, 3), filters=8),
        "ResNet50",
        "resnet",
        RESNET_FILE.format("resnet50", "_notop"),
    ),
    (
        keras_cvlec.build_unet,
        dict(backbone="convnext_small", input_shape=(64, 64, 3), filters=8),
        "ConvNeXtSmall",
        "convnext",
        "convnext_small_notop.h5",
    ),
]


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """Downloads fail as they do without network; returns the calls to
    `keras.utils.get_file` and the Keras home folder."""
    calls = []

    def get_file(fname, origin, **kwargs):
        calls.append((fname, origin, kwargs))
        raise Exception(
            f"URL fetch failure on {origin}: None -- [Errno -2] Name or service not known"
        )

    def application(*args, **kwargs):
        raise AssertionError("keras.applications was called after a failed download")

    monkeypatch.setattr(keras.utils, "get_file", get_file)
    for _, _, name, _, _ in IMAGENET_CASES:
        monkeypatch.setattr(keras.applications, name, application)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    return calls, str(tmp_path)


@pytest.mark.parametrize("builder, kwargs, application, folder, file_name", IMAGENET_CASES)
def test_imagenet_weights_offline(builder, kwargs, application, folder, file_name, offline):
    calls, home = offline
    weights_arg = "backbone_weights" if builder is keras_cvlec.build_unet else "weights"
    with pytest.raises(WeightsUnavailableError) as info:
        builder(**kwargs, **{weights_arg: "imagenet"})
    url = f"{URL}{folder}/{file_name}"
    assert calls == [(file_name, url, dict(cache_dir=home, cache_subdir="models"))]
    message = str(info.value)
    for words in (
        f"Could not download the ImageNet weights of keras.applications.{application} from {url}",
        "URL fetch failure",
        f"Keras caches downloaded weights in {os.path.join(home, 'models')} (set KERAS_HOME",
        f"copy the file {file_name} there",
        "weights='path/to/file.weights.h5'",
    ):
        assert words in message
    # The CLI reports it in one line, as a missing file.
    assert isinstance(info.value, (FileNotFoundError, RuntimeError))
    assert isinstance(info.value, USER_ERRORS)


CHANNELS_FIRST = dict(data_format="channels_first")
HINT = "The axes look like"

# (builder, kwargs, error regex); an axis-order hint only where it fits.
INPUT_SHAPE_CASES = [
    # Smaller than the total stride.
    (
        keras_cvlec.build_convnext,
        dict(input_shape=(16, 16, 3)),
        r"at least 32, the network's total stride. Received: input_shape=\(16, 16, 3\) "
        r"with data_format='channels_last'$",
    ),
    (
        keras_cvlec.build_resnet,
        dict(input_shape=(64, 16, 3), filters=8),
        r"at least 32.*input_shape=\(64, 16, 3\)",
    ),
    (
        keras_cvlec.build_convnext,
        dict(input_shape=(3, 16, 16), **CHANNELS_FIRST),
        r"at least 32.*input_shape=\(3, 16, 16\) with data_format='channels_first'$",
    ),
    # (height, width, channels) under channels_first, and the reverse.
    (
        keras_cvlec.build_convnext,
        dict(input_shape=(64, 64, 3), **CHANNELS_FIRST),
        r"at least 32.*input_shape=\(64, 64, 3\).*The axes look like \(height, width, "
        r"channels\): data_format='channels_first' takes \(channels, height, width\), "
        r"e.g. input_shape=\(3, 64, 64\)",
    ),
    (
        keras_cvlec.build_resnet,
        dict(input_shape=(224, 160, 4), filters=8, **CHANNELS_FIRST),
        r"The axes look like \(height, width, channels\).*input_shape=\(4, 224, 160\)",
    ),
    (
        keras_cvlec.build_resnet,
        dict(input_shape=(3, 64, 64), filters=8),
        r"at least 32.*input_shape=\(3, 64, 64\).*The axes look like \(channels, height, "
        r"width\): data_format='channels_last' takes \(height, width, channels\), "
        r"e.g. input_shape=\(64, 64, 3\)",
    ),
    (
        keras_cvlec.build_unet,
        dict(input_shape=(64, 64, 3), depth=4, filters=4, **CHANNELS_FIRST),
        r"`depth`=4 is too large for input_shape=\(64, 64, 3\).*total stride 16.*The axes look "
        r"like \(height, width, channels\).*e.g. input_shape=\(3, 64, 64\)",
    ),
    (
        keras_cvlec.build_unet,
        dict(input_shape=(None, None, 1), filters=8, **CHANNELS_FIRST),
        r"channel dimension.*int >= 1.*input_shape=\(None, None, 1\).*The axes look like "
        r"\(height, width, channels\).*e.g. input_shape=\(1, None, None\)",
    ),
]


@pytest.mark.parametrize("builder, kwargs, match", INPUT_SHAPE_CASES)
def test_input_shape_errors(builder, kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        builder(**kwargs)
    if "look like" not in match:
        assert HINT not in str(info.value)


def test_no_axis_order_hint_for_plausible_shapes():
    """Many channels, or a size that could be either: no guess."""
    for kwargs in (
        dict(input_shape=(16, 16, 16)),
        dict(input_shape=(2, 64, 8)),
        dict(input_shape=(4, 16, 3), data_format="channels_last"),
    ):
        kwargs.setdefault("data_format", "channels_first")
        with pytest.raises(ValueError, match="at least 32") as info:
            keras_cvlec.build_convnext(**kwargs)
        assert HINT not in str(info.value), kwargs
