"""`keras_cvlec.weights`: keras.applications ResNet weights into `build_resnet`
(ConvNeXt: tests/models/test_convnext.py), weight files, the download URLs.

The reference is keras.applications itself: `ResNet50`, `ResNet50V2` and
`ResNet101` built with `weights=None` at 64x64, every weight (BN moving
statistics included) set to random values, copied with
`from_keras_applications`, and both models run on the same images. Nothing
is downloaded: `weights="imagenet"` is tested with keras.applications
replaced by a fake that returns such a randomised model (and
`keras.utils.get_file` by one that returns a path).

`weights="path.weights.h5"`: files that are not Keras weights files, or come
from another architecture, give one error naming the file and the first
weights that differ (ResNets with filters=8 at 32x32; the checks do not
depend on the family, and a ConvNeXt-atto costs ~8 s to build on JAX).

Cost: each keras.applications source and each target used by several tests
is built once per process (module-scoped cache): 4 keras.applications and 9
keras_cvlec builds, two of them ResNet-101, the rest ResNet-50. The weights
file tests build 5 small ResNets (2 saved once per module); the unreadable
files fail before any build.
"""

import re
import warnings

import keras
import numpy as np
import pytest

import keras_cvlec
from keras_cvlec.weights import _imagenet_weights_file, from_keras_applications
from tests import harness

SIZE = 64
# keras.applications name -> (variant, version, count_params at 1000 classes)
SOURCES = {
    "ResNet50": ("resnet50", "v1", 25_636_712),
    "ResNet50V2": ("resnet50", "v2", 25_613_800),
    "ResNet101": ("resnet101", "v1", 44_707_176),
}
# The last feature map of a headless keras.applications model, by source.
LAST_FEATURES = {"ResNet50": "conv5_block3_out", "ResNet50V2": "post_relu"}


def _random_images(batch=2, seed=0, size=SIZE):
    return np.random.default_rng(seed).normal(size=(batch, size, size, 3)).astype("float32")


def _snapshot(model):
    return [harness.to_numpy(weight).copy() for weight in model.weights]


def _assert_unchanged(model, snapshot):
    for weight, old in zip(model.weights, snapshot):
        np.testing.assert_array_equal(harness.to_numpy(weight), old, err_msg=weight.path)


def _max_abs_diff(a, b):
    return float(np.abs(harness.to_numpy(a) - harness.to_numpy(b)).max())


@pytest.fixture(scope="module")
def zoo():
    """Lazily built, cached models: `zoo.source(name, include_top)` is a
    randomised keras.applications model (64x64, logits);
    `zoo.target(variant, version, **kwargs)` a keras_cvlec ResNet with
    logits. Tests may overwrite targets' weights, never sources'."""

    class Zoo:
        def __init__(self):
            self.cache = {}

        def source(self, name, include_top=True):
            key = ("source", name, include_top)
            if key not in self.cache:
                model = getattr(keras.applications, name)(
                    weights=None,
                    include_top=include_top,
                    input_shape=(SIZE, SIZE, 3),
                    classifier_activation=None,
                )
                harness.randomize_weights(model, seed=len(self.cache))
                self.cache[key] = model
            return self.cache[key]

        def target(self, variant, version, **kwargs):
            key = ("target", variant, version, tuple(sorted(kwargs.items())))
            if key not in self.cache:
                self.cache[key] = keras_cvlec.build_resnet(
                    variant, version=version, classifier_activation=None, **kwargs
                )
            return self.cache[key]

    zoo = Zoo()
    yield zoo
    zoo.cache.clear()


# --------------------------------------------------------------------------
# Transfer: outputs equal the source's
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SOURCES))
def test_transfer_matches_keras_applications(name, zoo):
    variant, version, count = SOURCES[name]
    source = zoo.source(name)
    model = zoo.target(variant, version)
    assert source.count_params() == model.count_params() == count
    images = _random_images(seed=1)
    expected = harness.to_numpy(source(images, training=False))
    assert expected.shape == (2, 1000)
    assert expected.std() > 0.1  # random weights give non-trivial logits
    # Before the transfer the outputs differ: the comparison below can fail.
    assert _max_abs_diff(model(images, training=False), expected) > 1e-2

    assert from_keras_applications(model, source) is model
    diff = _max_abs_diff(model(images, training=False), expected)
    assert diff <= 1e-4, f"max abs diff {diff}"
    # Every source weight went somewhere: the sums of all weights agree.
    total = sum(float(np.sum(w)) for w in source.get_weights())
    assert sum(float(np.sum(w)) for w in model.get_weights()) == pytest.approx(total, rel=1e-6)


def test_transfer_headless_both_sides(zoo):
    """ResNet50V2(include_top=False) into build_resnet(include_top=False)."""
    source = zoo.source("ResNet50V2", include_top=False)
    model = zoo.target("resnet50", "v2", include_top=False)
    images = _random_images(seed=3)
    expected = harness.to_numpy(source(images, training=False))
    assert expected.shape == (2, 2, 2, 2048)
    from_keras_applications(model, source)
    diff = _max_abs_diff(model(images, training=False), expected)
    assert diff <= 1e-4, f"max abs diff {diff}"


@pytest.mark.parametrize("name", ["ResNet50", "ResNet50V2"])
def test_transfer_from_top_source_into_headless_target(name, zoo):
    """The source's classifier is skipped when the target has none."""
    variant, version, _ = SOURCES[name]
    source = zoo.source(name)
    if version == "v2":
        model = zoo.target(variant, version, include_top=False)
    else:  # used once: not cached
        model = keras_cvlec.build_resnet(variant, version=version, include_top=False)
    features = keras.Model(source.input, source.get_layer(LAST_FEATURES[name]).output)
    images = _random_images(seed=4)
    expected = harness.to_numpy(features(images, training=False))
    assert expected.shape == (2, 2, 2, 2048)
    from_keras_applications(model, source)
    diff = _max_abs_diff(model(images, training=False), expected)
    assert diff <= 1e-4, f"max abs diff {diff}"


# --------------------------------------------------------------------------
# Mismatches: a clear ValueError, and the target is left unchanged
# --------------------------------------------------------------------------


def _check_mismatch(model, source, match):
    before = _snapshot(model)
    with pytest.raises(ValueError, match=match):
        from_keras_applications(model, source)
    _assert_unchanged(model, before)


def test_mismatch_shallower_source(zoo):
    _check_mismatch(
        zoo.target("resnet101", "v1"),
        zoo.source("ResNet50"),
        r"from 'resnet50' into 'resnet101_v1'.*no layer 'conv4_block7_1_conv' "
        r"for layer 'stage3_block7/conv1'",
    )


def test_mismatch_deeper_source(zoo):
    _check_mismatch(
        zoo.target("resnet50", "v1"),
        zoo.source("ResNet101"),
        r"from 'resnet101' into 'resnet50_v1'.*without a counterpart: "
        r"conv4_block7_1_conv, conv4_block7_1_bn",
    )


def test_mismatch_version(zoo):
    # v2 source into a v1 target: v1 has a stem norm, v2 has none.
    _check_mismatch(
        zoo.target("resnet50", "v1"),
        zoo.source("ResNet50V2"),
        r"from 'resnet50v2' into 'resnet50_v1'.*no layer 'conv1_bn' for layer "
        r"'stem_bn'",
    )
    # v1 source into a v2 target: v2 blocks have a pre-activation norm.
    _check_mismatch(
        zoo.target("resnet50", "v2"),
        zoo.source("ResNet50"),
        r"no layer 'conv2_block1_preact_bn' for layer 'stage1_block1/preact_bn'",
    )
    # v1 source into v1.5 (torchvision: no convolution biases).
    _check_mismatch(
        keras_cvlec.build_resnet("resnet50", version="v1.5"),
        zoo.source("ResNet50"),
        r"layer 'stem_conv' has weight shapes \[\(7, 7, 3, 64\)\], source layer "
        r"'conv1_conv' has \[\(7, 7, 3, 64\), \(64,\)\]",
    )


def test_mismatch_num_classes(zoo):
    _check_mismatch(
        keras_cvlec.build_resnet("resnet50", num_classes=10),
        zoo.source("ResNet50"),
        r"layer 'predictions' has weight shapes \[\(2048, 10\), \(10,\)\], "
        r"source layer 'predictions' has \[\(2048, 1000\), \(1000,\)\]",
    )


def test_mismatch_headless_source_into_target_with_top(zoo):
    _check_mismatch(
        zoo.target("resnet50", "v2"),
        zoo.source("ResNet50V2", include_top=False),
        r"no layer 'predictions' for layer 'predictions'",
    )


def test_only_resnets_and_convnexts_take_keras_applications_weights(zoo):
    unet = keras_cvlec.build_unet(input_shape=(32, 32, 3), depth=2, filters=4)
    _check_mismatch(
        unet,
        zoo.source("ResNet50"),
        r"into 'unet'.*only keras_cvlec ResNets and ConvNeXts.*neither's blocks",
    )


def test_imagenet_weights_files_by_family():
    """The URL and cached file name of each family's weights, as
    keras.applications downloads them."""
    url = "https://storage.googleapis.com/tensorflow/keras-applications/"
    assert _imagenet_weights_file("ResNet152V2", False) == (
        f"{url}resnet/resnet152v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "resnet152v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
    )
    assert _imagenet_weights_file("ConvNeXtBase", True) == (
        f"{url}convnext/convnext_base.h5",
        "convnext_base.h5",
    )
    with pytest.raises(ValueError, match=r"keras.applications.VGG16: supported are ResNet"):
        _imagenet_weights_file("VGG16", True)


# --------------------------------------------------------------------------
# weights="imagenet" through keras.applications (faked: nothing downloads)
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, include_top, data_format",
    [("ResNet50", True, "channels_first"), ("ResNet50V2", False, "channels_last")],
)
def test_imagenet_weights_come_from_keras_applications(
    name, include_top, data_format, zoo, monkeypatch
):
    """build_resnet(weights="imagenet") asks keras.applications for its
    ImageNet model and copies it (also into a channels_first model: the
    source is channels_last, the kernels' layout is the same)."""
    variant, version, _ = SOURCES[name]
    source = zoo.source(name, include_top=include_top)
    calls = []

    def fake_application(*args, **kwargs):
        calls.append((args, kwargs))
        return source

    downloads = []

    def fake_get_file(fname, origin, **kwargs):
        downloads.append(fname)
        return fname

    monkeypatch.setattr(keras.applications, name, fake_application)
    monkeypatch.setattr(keras.utils, "get_file", fake_get_file)
    model = keras_cvlec.build_resnet(
        variant,
        version=version,
        weights="imagenet",
        include_top=include_top,
        classifier_activation=None,
        data_format=data_format,
    )
    # The file is downloaded (here: faked) before the build, then loaded by
    # keras.applications.
    suffix = "" if include_top else "_notop"
    assert downloads == [f"{name.lower()}_weights_tf_dim_ordering_tf_kernels{suffix}.h5"]
    assert len(calls) == 1
    args, kwargs = calls[0]
    assert args == () and kwargs["weights"] == "imagenet"
    assert kwargs["include_top"] is include_top
    images = _random_images(seed=5)
    expected = harness.to_numpy(source(images, training=False))
    assert expected.shape == ((2, 1000) if include_top else (2, 2, 2, 2048))
    if data_format == "channels_first":
        assert model.input_shape == (None, 3, None, None)
        images = np.transpose(images, (0, 3, 1, 2))
    actual = harness.to_numpy(model(images, training=False))
    if not include_top and data_format == "channels_first":
        actual = np.transpose(actual, (0, 2, 3, 1))
    diff = _max_abs_diff(actual, expected)
    assert diff <= 1e-4, f"max abs diff {diff}"


# --------------------------------------------------------------------------
# weights="path.weights.h5": clear errors for bad files
# --------------------------------------------------------------------------

SMALL_RESNET = dict(filters=8, num_classes=10, input_shape=(32, 32, 3))


@pytest.fixture(scope="module")
def weights_files(tmp_path_factory):
    """`(paths, models)`: the weights files of small models (the models
    under the same keys), and broken files ("text", "truncated")."""
    folder = tmp_path_factory.mktemp("weights")
    models = {
        "resnet18": keras_cvlec.build_resnet("resnet18", **SMALL_RESNET),
        "resnet18_headless": keras_cvlec.build_resnet(
            "resnet18", include_top=False, filters=8, input_shape=(32, 32, 3)
        ),
    }
    paths = {key: str(folder / f"{key}.weights.h5") for key in [*models, "text", "truncated"]}
    for key, model in models.items():
        model.save_weights(paths[key])
    with open(paths["text"], "w") as file:
        file.write("not HDF5")
    with open(paths["resnet18"], "rb") as file:
        data = file.read()
    with open(paths["truncated"], "wb") as file:
        file.write(data[: len(data) // 2])
    return paths, models


# (file, variant of build_resnet(**SMALL_RESNET), regex after "<path>'")
BAD_WEIGHTS_FILES = [
    (
        "text",
        "resnet18",
        r": it is not a readable Keras weights file \(truncated, or not written by "
        r"`model.save_weights`\): .*file signature not found",
    ),
    ("truncated", "resnet18", r": it is not a readable Keras weights file.*truncated file"),
    (
        "resnet18",
        "resnet34",
        r" into 'resnet34_v1': the file was saved from another architecture .*\. "
        r"\d+ of the model's 218 weights do not match: stage1_block3/conv1/kernel "
        r"\(3, 3, 8, 8\): \(3, 3, 8, 16\) in the file; stage1_block3/conv1/bias "
        r"\(8,\): \(16,\) in the file; [^;]+ \.\.\.$",
    ),
    (
        "resnet18_headless",
        "resnet18",
        r" into 'resnet18_v1'.*2 of the model's 122 weights do not match: "
        r"predictions/kernel \(64, 10\): not in the file; predictions/bias \(10,\): "
        r"not in the file$",
    ),
]


@pytest.mark.parametrize("file, variant, match", BAD_WEIGHTS_FILES)
def test_bad_weights_file(file, variant, match, weights_files):
    path = weights_files[0][file]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prefix = f"^Cannot load `weights` file '{re.escape(path)}'"
        with pytest.raises(ValueError, match=prefix + match):
            keras_cvlec.build_resnet(variant, weights=path, **SMALL_RESNET)
    # One error, not one warning per layer.
    assert [str(w.message) for w in caught if "Skipping" in str(w.message)] == []


def test_weights_file_with_classifier_into_headless_model(weights_files):
    """The file's extra arrays (the classifier) are ignored, as Keras does."""
    paths, models = weights_files
    model = keras_cvlec.build_resnet(
        "resnet18",
        include_top=False,
        filters=8,
        input_shape=(32, 32, 3),
        weights=paths["resnet18"],
    )
    source = models["resnet18"]
    for weight in model.weights:
        np.testing.assert_array_equal(
            harness.to_numpy(weight),
            harness.to_numpy(next(w for w in source.weights if w.path == weight.path)),
            err_msg=weight.path,
        )
