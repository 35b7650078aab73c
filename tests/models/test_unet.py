import keras
import numpy as np
import pytest

from keras_cvlec.models.registry import build_model
from keras_cvlec.models.unet import build_unet
from keras_cvlec.utils import structure_only
from tests.harness import assert_allclose, randomize_weights, to_numpy

RNG = np.random.default_rng(0)
UPSAMPLINGS = ("transpose", "bilinear", "nearest", "max_unpool")


def _conv_params(k, c_in, c_out, bias=True):
    return k * k * c_in * c_out + (c_out if bias else 0)


def test_classic_unet_has_the_papers_parameter_count():
    with structure_only():
        model = build_unet(
            input_shape=(None, None, 1), num_classes=2, filters=64, depth=4, norm=None
        )
    assert model.count_params() == 31_030_658


def test_parameter_count_matches_the_conv_formula():
    filters, depth, c_in, classes = 4, 2, 3, 5
    widths = [filters * 2**level for level in range(depth + 1)]
    expected, previous = 0, c_in
    for width in widths:  # encoder levels and the bottleneck
        expected += _conv_params(3, previous, width) + _conv_params(3, width, width)
        previous = width
    for level in reversed(range(depth)):
        width = widths[level]
        expected += 2 * 2 * previous * width + width  # 2x2 transpose conv
        expected += _conv_params(3, 2 * width, width) + _conv_params(3, width, width)
        previous = width
    expected += _conv_params(1, previous, classes)
    model = build_unet(
        input_shape=(None, None, c_in), num_classes=classes, filters=filters, depth=depth, norm=None
    )
    assert model.count_params() == expected


@pytest.mark.parametrize("upsampling", UPSAMPLINGS)
@pytest.mark.parametrize("channels", [1, 4])
def test_any_input_size_keeps_height_and_width(upsampling, channels):
    model = build_unet(
        input_shape=(None, None, channels), num_classes=3, depth=3, filters=4, upsampling=upsampling
    )
    for height, width in ((97, 131), (32, 40), (8, 9)):
        x = RNG.normal(size=(1, height, width, channels)).astype("float32")
        assert tuple(model(x).shape) == (1, height, width, 3)
    fixed = build_unet(input_shape=(97, 131, channels), depth=3, filters=4, upsampling=upsampling)
    assert fixed.output_shape == (None, 97, 131, 2)


def test_padding_does_not_leak_into_the_cropped_output():
    """The output at a pixel only depends on the image, not on how much the
    model pads: an image equals the same image inside a larger zero frame
    only away from the frame, but a 64x64 image (no padding needed) and its
    61x61 crop agree where the receptive field stays inside the crop."""
    model = build_unet(input_shape=(None, None, 2), depth=2, filters=4, norm=None)
    x = RNG.normal(size=(1, 64, 64, 2)).astype("float32")
    full = to_numpy(model(x))
    cropped = to_numpy(model(x[:, :61, :61]))
    assert cropped.shape == (1, 61, 61, 2)
    assert_allclose(cropped[:, :20, :20], full[:, :20, :20], atol=1e-5)


@pytest.mark.parametrize(
    "upsampling, norm",
    [("transpose", "layer"), ("bilinear", "group"), ("nearest", "batch"), ("max_unpool", "layer")],
)
def test_channels_first_equals_channels_last(upsampling, norm):
    # Width 4 == filters == num_classes: the first level's convolutions, the
    # last up-sampling and the head have maps as wide as their channels.
    kwargs = dict(
        input_shape=(24, 4, 3), num_classes=4, depth=2, filters=4, upsampling=upsampling, norm=norm
    )
    last = build_unet(data_format="channels_last", **kwargs)
    first = build_unet(data_format="channels_first", **{**kwargs, "input_shape": (3, 24, 4)})
    randomize_weights(last)
    first.set_weights(last.get_weights())
    x = RNG.normal(size=(2, 24, 4, 3)).astype("float32")
    assert_allclose(
        np.transpose(to_numpy(first(np.transpose(x, (0, 3, 1, 2)))), (0, 2, 3, 1)),
        to_numpy(last(x)),
        atol=1e-4,
    )


@pytest.mark.parametrize("upsampling", UPSAMPLINGS)
def test_each_upsampling_trains_loss_decreases(upsampling):
    keras.utils.set_random_seed(1)
    model = build_unet(
        input_shape=(16, 16, 3), num_classes=3, depth=2, filters=8, upsampling=upsampling
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x = np.random.default_rng(2).normal(size=(4, 16, 16, 3)).astype("float32")
    y = (x[..., 0] > 0).astype("int32") + (x[..., 1] > 1).astype("int32")
    history = model.fit(x, y, batch_size=4, epochs=8, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.7 * losses[0], losses


@pytest.mark.parametrize(
    "norm, norm_class",
    [
        ("batch", "BatchNormalization"),
        ("layer", "ChannelLayerNormalization"),
        ("group", "GroupNormalization"),
        (None, None),
    ],
)
def test_norm_choice(norm, norm_class):
    model = build_unet(input_shape=(16, 16, 3), depth=1, filters=6, norm=norm)
    classes = {type(layer).__name__ for layer in model.layers}
    assert (norm_class in classes) if norm else not any("Normalization" in c for c in classes)
    assert model.get_layer("encoder1_conv1").use_bias == (norm is None)
    if norm == "group":
        assert model.get_layer("encoder1_norm1").groups == 2  # gcd(32, 6)


def test_softmax_normalises_the_channel_axis_in_both_formats():
    for data_format, shape, axis in (
        ("channels_last", (16, 12, 3), -1),
        ("channels_first", (3, 16, 12), 1),
    ):
        model = build_unet(
            input_shape=shape,
            num_classes=4,
            depth=2,
            filters=4,
            final_activation="softmax",
            data_format=data_format,
        )
        y = to_numpy(model(RNG.normal(size=(2, *shape)).astype("float32")))
        assert_allclose(y.sum(axis=axis), np.ones((2, 16, 12)), atol=1e-5)


def test_binary_single_logit_and_final_activation():
    model = build_unet(
        input_shape=(32, 32, 3), num_classes=1, depth=2, filters=4, final_activation="sigmoid"
    )
    y = to_numpy(model(RNG.normal(size=(2, 32, 32, 3)).astype("float32")))
    assert y.shape == (2, 32, 32, 1)
    assert y.min() >= 0 and y.max() <= 1


def test_dropout_is_active_only_in_training():
    model = build_unet(input_shape=(16, 16, 3), depth=2, filters=4, dropout=0.5)
    x = RNG.normal(size=(1, 16, 16, 3)).astype("float32")
    assert_allclose(model(x, training=False), model(x, training=False))
    assert not np.allclose(to_numpy(model(x, training=True)), to_numpy(model(x, training=False)))


@pytest.mark.parametrize("backbone", ["resnet18", "convnext_atto"])
def test_backbone_skips_and_freezing(backbone):
    model = build_unet(
        input_shape=(None, None, 3),
        num_classes=2,
        filters=4,
        backbone=backbone,
        freeze_backbone=True,
    )
    # The nested backbone model keeps its layer name "encoder".
    backbone = model.get_layer("encoder")
    assert [tuple(o.shape[1:3]) for o in backbone.outputs] == [(None, None)] * 4
    assert not backbone.trainable
    # A size the backbone's stride of 32 does not divide; fit below takes 32x32.
    x = RNG.normal(size=(1, 45, 70, 3)).astype("float32")
    assert tuple(model(x).shape) == (1, 45, 70, 2)
    before = [to_numpy(w) for w in backbone.weights]
    model.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    x = RNG.normal(size=(2, 32, 32, 3)).astype("float32")
    model.fit(x, RNG.integers(0, 2, (2, 32, 32)), epochs=1, verbose=0)
    for old, new in zip(before, backbone.weights):
        assert_allclose(new, old)
    assert model.count_params() > backbone.count_params()


def test_backbone_depth_selects_the_bottleneck_stage():
    model = build_unet(input_shape=(64, 64, 3), filters=4, depth=2, backbone="resnet18")
    # Stage outputs up to stage2 (stride 8): one skip (stride 4) and the bottleneck.
    assert [tuple(o.shape[1:3]) for o in model.get_layer("encoder").outputs] == [(16, 16), (8, 8)]
    assert model.output_shape == (None, 64, 64, 2)


def test_backbone_imagenet_weights_go_through_keras_applications(monkeypatch):
    calls = []
    original = keras.applications.ResNet50

    def fake_resnet50(weights=None, include_top=True, **kwargs):
        calls.append((weights, include_top))
        return original(weights=None, include_top=include_top, **kwargs)

    monkeypatch.setattr(keras.applications, "ResNet50", fake_resnet50)
    # The weights file counts as downloaded (the builder fetches it first).
    monkeypatch.setattr(keras.utils, "get_file", lambda fname, origin, **kwargs: fname)
    model = build_unet(
        input_shape=(64, 64, 3), filters=2, backbone="resnet50", backbone_weights="imagenet"
    )
    assert calls == [("imagenet", False)]
    assert model.output_shape == (None, 64, 64, 2)


def _producers(model, layer_name):
    """(layer name, output index) of each input of a layer, in call order."""
    (node,) = model.get_layer(layer_name)._inbound_nodes
    return [
        (t._keras_history.operation.name, t._keras_history.tensor_index) for t in node.input_tensors
    ]


@pytest.mark.parametrize(
    "kwargs, upsampled",
    [
        (dict(depth=3), "upconv"),
        (dict(depth=2, upsampling="max_unpool", dropout=0.5), "unpool"),
        (dict(depth=2, upsampling="bilinear", data_format="channels_first"), "upconv"),
    ],
)
def test_decoder_concatenates_the_skip_first(kwargs, upsampled):
    """Each decoder level concatenates [encoder skip, up-sampled], in that
    order (as the paper's Figure 1 and the pretrained layouts have it)."""
    depth = kwargs["depth"]
    shape = (3, None, None) if kwargs.get("data_format") == "channels_first" else (None, None, 3)
    model = build_unet(input_shape=shape, filters=4, **kwargs)
    concats = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Concatenate)]
    assert concats == [f"decoder{level}_concat" for level in range(depth, 0, -1)]
    for level in range(depth, 0, -1):
        skip = f"encoder{level}_act2"
        if kwargs.get("dropout") and level == depth:
            skip = f"encoder{level}_dropout"
        assert _producers(model, f"decoder{level}_concat") == [
            (skip, 0),
            (f"decoder{level}_{upsampled}", 0),
        ]


def test_decoder_concatenates_the_backbone_skip_first():
    model = build_unet(input_shape=(None, None, 3), filters=4, depth=3, backbone="resnet18")
    # Backbone outputs: skips at strides 4 and 8, the bottleneck at 16.
    assert _producers(model, "decoder4_concat") == [("encoder", 1), ("decoder4_upconv", 0)]
    assert _producers(model, "decoder3_concat") == [("encoder", 0), ("decoder3_upconv", 0)]
    assert "decoder2_concat" not in [layer.name for layer in model.layers]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(input_shape=(32, 32, 3), depth=6), ValueError, "depth.*6.*too large"),
        (dict(filters=0), ValueError, "filters.*0"),
        (dict(depth=0), ValueError, "depth.*0"),
        (dict(num_classes=0), ValueError, "num_classes.*0"),
        (dict(upsampling="deconv"), ValueError, "upsampling.*'deconv'.*'transpose'"),
        (dict(norm="instance"), ValueError, "norm.*'instance'.*'batch'"),
        (dict(dropout=1.0), ValueError, "dropout.*1.0"),
        (
            dict(backbone="resnet18", upsampling="max_unpool"),
            ValueError,
            "max_unpool.*argmax.*resnet18",
        ),
        (
            dict(backbone="vgg16"),
            ValueError,
            r"Unknown `backbone`: 'vgg16'. Valid backbones: .*resnet18",
        ),
        (dict(backbone="unet"), ValueError, r"Unknown `backbone`: 'unet'"),
        (
            dict(backbone="resnet18", depth=5),
            ValueError,
            r"`depth` must be at most 4 with backbone='resnet18'.*depth=5",
        ),
        (dict(freeze_backbone=True), ValueError, "freeze_backbone.*needs a `backbone`"),
        (dict(backbone_weights="imagenet"), ValueError, "backbone_weights.*needs a `backbone`"),
        (
            dict(backbone="resnet18", freeze_backbone=1),
            TypeError,
            r"`freeze_backbone` must be True or False. Received: freeze_backbone=1",
        ),
        (
            dict(backbone="resnet18", backbone_weights="w.npz"),
            ValueError,
            r"`backbone_weights` must be .*backbone_weights='w.npz'",
        ),
        (
            dict(backbone="resnet18", backbone_weights="imagenet"),
            ValueError,
            r"backbone='resnet18' has no ImageNet weights. Backbones with them: .*resnet50",
        ),
        (
            dict(input_shape=(None, None, 1), backbone="resnet50", backbone_weights="imagenet"),
            ValueError,
            r"`backbone_weights='imagenet'` needs 3 input channels. Received: input_shape=\(None, None, 1\)",
        ),
        (
            dict(encoder="resnet18", backbone="resnet18"),
            TypeError,
            r"both `encoder` and `backbone`.*pass only `backbone`",
        ),
        (
            dict(backbone="resnet18", encoder_weights=None, backbone_weights=None),
            TypeError,
            r"both `encoder_weights` and `backbone_weights`",
        ),
        (
            dict(backbone="resnet18", freeze_encoder=True, freeze_backbone=True),
            TypeError,
            r"both `freeze_encoder` and `freeze_backbone`",
        ),
        (dict(input_shape=(32, 32)), ValueError, "input_shape"),
        (dict(final_activation="softmaxx"), ValueError, "final_activation.*'softmaxx'"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        build_unet(**kwargs)


def test_model_name():
    assert build_unet(input_shape=(16, 16, 3), depth=2, filters=4).name == "unet"
    assert build_unet(input_shape=(16, 16, 3), depth=2, filters=4, name="seg").name == "seg"
    assert (
        build_unet(input_shape=(32, 32, 3), depth=2, filters=4, backbone="resnet18").name
        == "unet_resnet18"
    )


def test_deprecated_encoder_keywords_warn_and_build_the_same_model():
    """`encoder`, `encoder_weights`, `freeze_encoder` (also from a saved
    run's `model_options`, through `build_model`) build what `backbone`,
    `backbone_weights`, `freeze_backbone` build."""
    kwargs = dict(input_shape=(32, 32, 3), depth=2, filters=4)
    new = build_unet(backbone="resnet18", backbone_weights=None, freeze_backbone=True, **kwargs)
    with pytest.warns(DeprecationWarning) as record:
        old = build_model(
            "unet", encoder="resnet18", encoder_weights=None, freeze_encoder=True, **kwargs
        )
    messages = [str(warning.message) for warning in record]
    for old_name, new_name in (
        ("encoder", "backbone"),
        ("encoder_weights", "backbone_weights"),
        ("freeze_encoder", "freeze_backbone"),
    ):
        assert f"build_unet(): `{old_name}` is deprecated, use `{new_name}` instead." in messages
    assert old.name == new.name == "unet_resnet18"
    assert old.count_params() == new.count_params()
    assert len(old.trainable_weights) == len(new.trainable_weights)
    assert [layer.name for layer in old.layers] == [layer.name for layer in new.layers]
