"""Tests of keras_cvlec.utils.count_macs: multiply-accumulates, counted analytically.

Every expected number is written as the textbook formula of the layer (or of
the architecture, from its paper's table), independently of the counter, and
the reference models are also checked against the published figures
(torchvision, the ConvNeXt paper) within 3 %.
"""

import functools

import keras
import pytest
from keras import layers, ops

import keras_cvlec
from keras_cvlec.layers import ResNetBasicBlock, ResNetBottleneckBlock
from keras_cvlec.utils import count_macs, flops, structure_only

# Weight values do not matter here; constant initializers keep the tests fast
# on JAX, which compiles the random initializer once per weight shape.
Conv1D = functools.partial(layers.Conv1D, kernel_initializer="zeros")
Conv1DTranspose = functools.partial(layers.Conv1DTranspose, kernel_initializer="zeros")
Conv2D = functools.partial(layers.Conv2D, kernel_initializer="zeros")
Conv2DTranspose = functools.partial(layers.Conv2DTranspose, kernel_initializer="zeros")
DepthwiseConv2D = functools.partial(layers.DepthwiseConv2D, depthwise_initializer="zeros")
SeparableConv2D = functools.partial(
    layers.SeparableConv2D, depthwise_initializer="zeros", pointwise_initializer="zeros"
)
Dense = functools.partial(layers.Dense, kernel_initializer="zeros")
EinsumDense = functools.partial(layers.EinsumDense, kernel_initializer="zeros")

# A non-square input (height 20, width 24, 8 channels) so that a mixed-up
# height and width shows.
H, W, C = 20, 24, 8

# (id, layer factory taking data_format, hand formula of the MACs)
SPATIAL_CASES = [
    (
        "conv_valid",
        lambda df: Conv2D(16, 3, data_format=df),
        18 * 22 * 3 * 3 * C * 16,
    ),
    (
        "conv_same_stride2",
        lambda df: Conv2D(16, 3, strides=2, padding="same", data_format=df),
        10 * 12 * 3 * 3 * C * 16,
    ),
    (
        "conv_rect_kernel_strides",
        lambda df: Conv2D(6, (3, 5), strides=(2, 1), data_format=df),
        ((H - 3) // 2 + 1) * (W - 5 + 1) * 3 * 5 * C * 6,
    ),
    (
        "conv_dilated",
        lambda df: Conv2D(16, 3, dilation_rate=2, data_format=df),
        (H - 4) * (W - 4) * 3 * 3 * C * 16,
    ),
    (
        "conv_grouped",
        lambda df: Conv2D(12, 3, padding="same", groups=4, data_format=df),
        H * W * 3 * 3 * (C // 4) * 12,
    ),
    (
        "conv_1x1_bias",
        lambda df: Conv2D(32, 1, use_bias=True, data_format=df),
        H * W * C * 32,
    ),
    (
        "depthwise_7x7",
        lambda df: DepthwiseConv2D(7, padding="same", data_format=df),
        H * W * 7 * 7 * C,
    ),
    (
        "depthwise_multiplier_strided",
        lambda df: DepthwiseConv2D(3, strides=2, depth_multiplier=3, data_format=df),
        ((H - 3) // 2 + 1) * ((W - 3) // 2 + 1) * 3 * 3 * C * 3,
    ),
    (
        "transpose_valid",
        lambda df: Conv2DTranspose(5, 3, strides=2, data_format=df),
        H * W * 3 * 3 * C * 5,
    ),
    (
        "transpose_same_2x2",
        lambda df: Conv2DTranspose(4, 2, strides=2, padding="same", data_format=df),
        H * W * 2 * 2 * C * 4,
    ),
    (
        "separable",
        lambda df: SeparableConv2D(10, 3, padding="same", depth_multiplier=2, data_format=df),
        H * W * 3 * 3 * C * 2 + H * W * (C * 2) * 10,
    ),
]


def image_shape(data_format, height=H, width=W, channels=C):
    if data_format == "channels_last":
        return (height, width, channels)
    return (channels, height, width)


def single_layer_model(layer, shape):
    inputs = keras.Input(shape)
    return keras.Model(inputs, layer(inputs))


@pytest.mark.parametrize(
    "make_layer, expected",
    [case[1:] for case in SPATIAL_CASES],
    ids=[case[0] for case in SPATIAL_CASES],
)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_single_spatial_layer_equals_hand_formula(make_layer, expected, data_format):
    model = single_layer_model(make_layer(data_format), image_shape(data_format))
    assert count_macs(model) == expected


BARE_CASES = [
    case
    for case in SPATIAL_CASES
    if case[0] in ("conv_same_stride2", "depthwise_7x7", "transpose_valid")
]


@pytest.mark.parametrize(
    "make_layer, expected",
    [case[1:] for case in BARE_CASES],
    ids=[case[0] for case in BARE_CASES],
)
def test_bare_unbuilt_layer_with_input_shape(make_layer, expected):
    layer = make_layer("channels_last")
    assert count_macs(layer, input_shape=(H, W, C)) == expected
    assert layer.built


@pytest.mark.parametrize(
    "make_layer, shape, expected",
    [
        (lambda: Dense(10), (64,), 64 * 10),
        (lambda: Dense(10, use_bias=False), (5, 7, 16), 5 * 7 * 16 * 10),
        (lambda: Dense(3), (H, W, C), H * W * C * 3),
        (lambda: Conv1D(6, 5, strides=2), (30, 4), 13 * 5 * 4 * 6),
        (
            lambda: Conv1DTranspose(6, 4, strides=2, padding="same"),
            (30, 4),
            30 * 4 * 4 * 6,
        ),
        (
            lambda: EinsumDense("abc,cd->abd", output_shape=(None, 12)),
            (7, 16),
            7 * 16 * 12,
        ),
        (
            lambda: EinsumDense("...b,bc->...c", output_shape=12),
            (3, 7, 16),
            3 * 7 * 16 * 12,
        ),
    ],
    ids=[
        "dense_vector",
        "dense_rank3",
        "dense_on_image",
        "conv1d",
        "conv1d_transpose",
        "einsum_dense",
        "einsum_dense_ellipsis",
    ],
)
def test_other_layers_equal_hand_formula(make_layer, shape, expected):
    assert count_macs(single_layer_model(make_layer(), shape)) == expected


def test_uncounted_layers_add_nothing():
    # Norms, activations, pooling, padding, adds and LayerScale around one
    # convolution: only the convolution counts.
    inputs = keras.Input((H, W, C))
    x = layers.ZeroPadding2D(1)(inputs)
    x = Conv2D(C, 3)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.Add()([x, inputs])
    x = keras_cvlec.layers.LayerScale(0.1)(x)
    x = layers.LayerNormalization()(x)
    x = layers.MaxPooling2D()(x)
    x = layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, x)
    assert count_macs(model) == H * W * 3 * 3 * C * C


def test_layer_called_twice_is_counted_twice():
    shared = Dense(16)
    inputs = keras.Input((16,))
    outputs = Dense(2)(shared(shared(inputs)))
    model = keras.Model(inputs, outputs)
    assert count_macs(model) == 2 * 16 * 16 + 16 * 2


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_nested_functional_models(data_format):
    channel_axis = -1 if data_format == "channels_last" else 1
    inner_inputs = keras.Input(image_shape(data_format))
    inner = keras.Model(
        inner_inputs,
        Conv2D(C, 3, padding="same", data_format=data_format)(inner_inputs),
        name="inner",
    )
    middle_inputs = keras.Input(image_shape(data_format))
    middle = keras.Model(middle_inputs, inner(inner(middle_inputs)), name="middle")
    inputs = keras.Input(image_shape(data_format))
    x = middle(inputs)
    x = layers.Concatenate(axis=channel_axis)([x, inner(inputs)])
    x = layers.GlobalAveragePooling2D(data_format=data_format)(x)
    model = keras.Model(inputs, Dense(5)(x))
    conv = H * W * 3 * 3 * C * C
    assert count_macs(model) == 3 * conv + 2 * C * 5


def bottleneck_macs(in_channels, filters, strides, version, size):
    """ResNet bottleneck (He et al., 2016, table 1) at input (height, width)."""
    area = size[0] * size[1]
    out = (size[0] // strides) * (size[1] // strides)
    # v1 strides the first 1x1 convolution, v1.5 and v2 the 3x3 one.
    macs = (out if version == "v1" else area) * in_channels * filters
    macs += out * 3 * 3 * filters * filters
    macs += out * filters * 4 * filters
    if strides != 1 or in_channels != 4 * filters:
        macs += out * in_channels * 4 * filters
    return macs


def basic_macs(in_channels, filters, strides, size):
    out = (size[0] // strides) * (size[1] // strides)
    macs = out * 3 * 3 * in_channels * filters + out * 3 * 3 * filters * filters
    if strides != 1 or in_channels != filters:
        macs += out * in_channels * filters
    return macs


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize(
    "block_class, in_channels, filters, strides, version",
    [
        (ResNetBottleneckBlock, 32, 8, 1, "v1.5"),  # identity shortcut
        (ResNetBottleneckBlock, 16, 8, 2, "v1.5"),
        (ResNetBottleneckBlock, 16, 8, 2, "v1"),
        (ResNetBottleneckBlock, 16, 8, 2, "v2"),
        (ResNetBasicBlock, 8, 8, 2, "v1.5"),
        (ResNetBasicBlock, 8, 8, 1, "v1"),
    ],
)
def test_resnet_blocks_in_both_data_formats(
    block_class, in_channels, filters, strides, version, data_format
):
    size = 16
    inputs = keras.Input(image_shape(data_format, size, size, in_channels))
    block = block_class(filters, strides=strides, version=version, data_format=data_format)
    model = keras.Model(inputs, block(inputs))
    if block_class is ResNetBottleneckBlock:
        expected = bottleneck_macs(in_channels, filters, strides, version, (size, size))
    else:
        expected = basic_macs(in_channels, filters, strides, (size, size))
    assert count_macs(model) == expected


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_convnext_block_in_both_data_formats(data_format):
    from keras_cvlec.layers.convnext_block import ConvNeXtBlock

    size, channels = 14, 16
    inputs = keras.Input(image_shape(data_format, size, size, channels))
    model = keras.Model(inputs, ConvNeXtBlock(data_format=data_format)(inputs))
    expected = size * size * (7 * 7 * channels + 2 * channels * 4 * channels)
    assert count_macs(model) == expected


def test_mixed_precision_counts_the_same():
    keras.config.set_dtype_policy("mixed_float16")
    inputs = keras.Input((H, W, C))
    x = Conv2D(16, 3)(inputs)
    model = keras.Model(inputs, Dense(4)(x))
    assert count_macs(model) == 18 * 22 * 9 * C * 16 + 18 * 22 * 16 * 4


def test_multiple_inputs():
    image = keras.Input((None, None, C))
    vector = keras.Input((6,))
    x = layers.GlobalAveragePooling2D()(Conv2D(4, 1)(image))
    y = Dense(4)(vector)
    model = keras.Model([image, vector], layers.Add()([x, y]))
    assert count_macs(model, input_shape=[(H, W, C), (6,)]) == H * W * C * 4 + 6 * 4
    with pytest.raises(ValueError, match="input_shape"):
        count_macs(model, input_shape=(H, W, C))


# --------------------------------------------------------------------------
# Unknown layers
# --------------------------------------------------------------------------


class MatmulLeaf(keras.layers.Layer):
    """A weighted layer the counter does not know."""

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], 3), initializer="zeros")

    def call(self, inputs):
        return ops.matmul(inputs, self.kernel)

    def compute_output_shape(self, input_shape):
        return input_shape[:-1] + (3,)


class BlockWithOwnKernel(keras.layers.Layer):
    """A container whose sublayer is counted, but with a matrix of its own."""

    def __init__(self, own_rank, **kwargs):
        super().__init__(**kwargs)
        self.own_rank = own_rank
        self.dense = Dense(4)

    def build(self, input_shape):
        self.dense.build(input_shape)
        shape = (4, 4) if self.own_rank == 2 else (4,)
        self.own = self.add_weight(shape=shape, initializer="zeros", name="own")

    def call(self, inputs):
        x = self.dense(inputs)
        if self.own_rank == 2:
            return ops.matmul(x, self.own)
        return x * self.own

    def compute_output_shape(self, input_shape):
        return input_shape[:-1] + (4,)


class Squash(keras.layers.Layer):
    """A weightless custom leaf: nothing to count."""

    def call(self, inputs):
        return ops.relu(inputs) * 2.0


def test_unknown_weighted_leaf_raises_naming_its_class():
    inputs = keras.Input((10,))
    model = keras.Model(inputs, MatmulLeaf(name="mystery")(Dense(5)(inputs)))
    with pytest.raises(ValueError, match="MatmulLeaf") as error:
        count_macs(model)
    assert "mystery" in str(error.value)
    assert keras.layers.Layer.__dict__["__call__"] is ORIGINAL_LAYER_CALL


def test_container_with_own_matrix_raises_and_with_vector_counts():
    inputs = keras.Input((10,))
    with pytest.raises(ValueError, match="BlockWithOwnKernel"):
        count_macs(keras.Model(inputs, BlockWithOwnKernel(2)(inputs)))
    model = keras.Model(inputs, BlockWithOwnKernel(1)(inputs))
    assert count_macs(model) == 10 * 4


def test_weightless_custom_leaf_counts_zero():
    inputs = keras.Input((10,))
    model = keras.Model(inputs, Dense(3)(Squash()(inputs)))
    assert count_macs(model) == 10 * 3


def test_register_macs_teaches_a_custom_layer(monkeypatch):
    monkeypatch.setattr(flops, "_USER_RULES", {})
    flops.register_macs(MatmulLeaf, lambda layer, input_shape, output_shape: input_shape[-1] * 3)
    inputs = keras.Input((10,))
    model = keras.Model(inputs, MatmulLeaf()(Dense(5)(inputs)))
    assert count_macs(model) == 10 * 5 + 5 * 3
    with pytest.raises(TypeError, match="layer_class"):
        flops.register_macs(int, lambda *args: 0)


ORIGINAL_LAYER_CALL = keras.layers.Layer.__dict__["__call__"]


class FailsWhenRun(keras.layers.Layer):
    def call(self, inputs):
        raise RuntimeError("deliberate failure")

    def compute_output_shape(self, input_shape):
        return input_shape


def test_layer_call_is_restored_after_success_and_failure():
    inputs = keras.Input((4,))
    count_macs(keras.Model(inputs, Dense(2)(inputs)))
    assert keras.layers.Layer.__dict__["__call__"] is ORIGINAL_LAYER_CALL
    failing = keras.Model(inputs, FailsWhenRun()(inputs))
    with pytest.raises(RuntimeError, match="deliberate failure"):
        count_macs(failing)
    assert keras.layers.Layer.__dict__["__call__"] is ORIGINAL_LAYER_CALL


# --------------------------------------------------------------------------
# Input-shape errors
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "input_shape",
    [(H, W), (H, W, C, 1), (H, W, C + 1), (H, W, None), (H, 0, C), (H, 2.5, C), "HWC"],
)
def test_bad_input_shape_raises_naming_it(input_shape):
    model = single_layer_model(Conv2D(4, 3), (None, None, C))
    with pytest.raises(ValueError, match="input_shape"):
        count_macs(model, input_shape=input_shape)


def test_unknown_dimensions_need_input_shape():
    model = single_layer_model(Conv2D(4, 3), (None, None, C))
    with pytest.raises(ValueError, match="input_shape"):
        count_macs(model)
    # A known model dimension must be matched.
    fixed = single_layer_model(Conv2D(4, 3), (H, W, C))
    with pytest.raises(ValueError, match="input_shape"):
        count_macs(fixed, input_shape=(H + 2, W, C))
    assert count_macs(fixed, input_shape=(H, W, C)) == count_macs(fixed)


def test_layer_without_known_input_needs_input_shape():
    layer = Dense(3)
    layer.build((None, 5))
    with pytest.raises(ValueError, match="input_shape"):
        count_macs(layer)
    assert count_macs(layer, input_shape=(5,)) == 15
    with pytest.raises(TypeError, match="model"):
        count_macs("resnet50")


# --------------------------------------------------------------------------
# Reference models against their papers (each built once per process)
# --------------------------------------------------------------------------


def resnet_macs(stage_blocks, bottleneck, size=(224, 224), num_classes=1000):
    """ResNet v1.5 (He et al., 2016, table 1) conv + fc MACs, by hand.

    `size` is (height, width), multiples of 32.
    """
    size = (size[0] // 2, size[1] // 2)
    macs = size[0] * size[1] * 7 * 7 * 3 * 64  # stem
    size = (size[0] // 2, size[1] // 2)  # max pooling
    channels = 64
    for stage, num_blocks in enumerate(stage_blocks):
        filters = 64 * 2**stage
        for index in range(num_blocks):
            strides = 2 if stage > 0 and index == 0 else 1
            if bottleneck:
                macs += bottleneck_macs(channels, filters, strides, "v1.5", size)
                channels = 4 * filters
            else:
                macs += basic_macs(channels, filters, strides, size)
                channels = filters
            size = (size[0] // strides, size[1] // strides)
    return macs + channels * num_classes


def convnext_macs(depths, width, size=224, num_classes=1000):
    """ConvNeXt (Liu et al., 2022) conv + linear MACs, by hand."""
    size //= 4
    macs = size**2 * 4 * 4 * 3 * width  # patchify stem
    channels = width
    for stage, depth in enumerate(depths):
        if stage:
            size //= 2
            macs += size**2 * 2 * 2 * channels * 2 * channels  # downsampling
            channels *= 2
        block = 7 * 7 * channels + 2 * channels * 4 * channels
        macs += depth * size**2 * block
    return macs + channels * num_classes


@pytest.fixture(scope="module")
def resnet50():
    # As the CLI builds it: by registered name, input size left open.
    return keras_cvlec.build_model("resnet50", version="v1.5")


@pytest.fixture(scope="module")
def resnet18():
    return keras_cvlec.build_resnet("resnet18", version="v1.5", input_shape=(224, 224, 3))


def test_resnet50_v15_matches_torchvision(resnet50):
    with pytest.raises(ValueError, match="input_shape"):
        count_macs(resnet50)
    with pytest.raises(ValueError, match="input_shape"):
        count_macs(resnet50, input_shape=(224, 224))
    with pytest.raises(ValueError, match="input_shape"):
        count_macs(resnet50, input_shape=(224, 224, 1))
    macs = count_macs(resnet50, input_shape=(224, 224, 3))
    assert isinstance(macs, int)
    assert macs == resnet_macs((3, 4, 6, 3), bottleneck=True)
    assert abs(macs / 4.09e9 - 1) < 0.03
    # Another input size of the same model.
    small = count_macs(resnet50, input_shape=(128, 96, 3))
    assert small == resnet_macs((3, 4, 6, 3), bottleneck=True, size=(128, 96))


def test_resnet18_v15_matches_torchvision(resnet18):
    macs = count_macs(resnet18)
    assert macs == resnet_macs((2, 2, 2, 2), bottleneck=False)
    assert abs(macs / 1.81e9 - 1) < 0.03


CONVNEXT_PAPER = {
    "tiny": ((3, 3, 9, 3), 96, 4.5e9),
    "small": ((3, 3, 27, 3), 96, 8.7e9),
    "base": ((3, 3, 27, 3), 128, 15.4e9),
}


@pytest.fixture(scope="module", params=list(CONVNEXT_PAPER))
def convnext(request):
    with structure_only():
        return request.param, keras_cvlec.build_convnext(request.param)


def test_convnext_matches_paper(convnext):
    variant, model = convnext
    depths, width, published = CONVNEXT_PAPER[variant]
    macs = count_macs(model, input_shape=(224, 224, 3))
    assert macs == convnext_macs(depths, width)
    assert abs(macs / published - 1) < 0.03


def test_count_flops_is_a_deprecated_alias_of_count_macs():
    model = single_layer_model(Conv2D(5, 3), (H, W, C))
    expected = (H - 2) * (W - 2) * 3 * 3 * C * 5
    for module in (keras_cvlec.utils, flops):
        with pytest.warns(
            DeprecationWarning,
            match=r"count_flops` is deprecated; use `keras_cvlec.utils.count_macs`",
        ):
            count_flops = module.count_flops
        assert count_flops(model) == count_macs(model) == expected
    with pytest.raises(AttributeError, match="count_flopz"):
        getattr(keras_cvlec.utils, "count_flopz")  # noqa: B009
