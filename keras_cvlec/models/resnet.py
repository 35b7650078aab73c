"""ResNet (He et al., 2016) in versions v1, v1.5 and v2."""

import keras
from keras import layers

from keras_cvlec.layers import convolution
from keras_cvlec.layers.resnet_blocks import (
    RESNET_VERSIONS,
    ResNetBasicBlock,
    ResNetBottleneckBlock,
    resnet_batch_norm,
)
from keras_cvlec.models.heads import check_head_args, classification_head
from keras_cvlec.models.inputs import DEFAULT_INPUT_SHAPE, image_input, input_channels
from keras_cvlec.models.registry import register_model
from keras_cvlec.utils.validation import (
    check_choice,
    check_positive_int,
    check_rate,
    standardize_data_format,
)
from keras_cvlec.weights import (
    check_weights_arg,
    load_weights_arg,
    prepare_imagenet_weights,
)

__all__ = [
    "NUM_STAGES",
    "RESNET_VARIANTS",
    "TOTAL_STRIDE",
    "build_resnet",
]

# One row a variant: the block type, blocks per stage, and the
# keras.applications models whose ImageNet weights transfer, by version.
RESNET_VARIANTS = {
    "resnet18": {"block": ResNetBasicBlock, "stage_blocks": (2, 2, 2, 2)},
    "resnet34": {"block": ResNetBasicBlock, "stage_blocks": (3, 4, 6, 3)},
    "resnet50": {
        "block": ResNetBottleneckBlock,
        "stage_blocks": (3, 4, 6, 3),
        "keras_applications": {"v1": "ResNet50", "v2": "ResNet50V2"},
    },
    "resnet101": {
        "block": ResNetBottleneckBlock,
        "stage_blocks": (3, 4, 23, 3),
        "keras_applications": {"v1": "ResNet101", "v2": "ResNet101V2"},
    },
    "resnet152": {
        "block": ResNetBottleneckBlock,
        "stage_blocks": (3, 8, 36, 3),
        "keras_applications": {"v1": "ResNet152", "v2": "ResNet152V2"},
    },
}
# Stage k has `filters * 2**(k - 1)` filters (before a bottleneck's 4x
# expansion); the published models have filters=64, also the stem's width.
NUM_STAGES = 4
TOTAL_STRIDE = 32


def build_resnet(
    variant="resnet50",
    *,
    version="v1",
    num_classes=1000,
    include_top=True,
    pooling=None,
    input_shape=DEFAULT_INPUT_SHAPE,
    data_format=None,
    drop_path_rate=0.0,
    classifier_activation="softmax",
    filters=64,
    weights=None,
    name=None,
):
    """Builds a ResNet as a functional `keras.Model`.

    The model's layers are named `stem_*`, `stage{s}_block{b}` (a
    `ResNetBasicBlock` or `ResNetBottleneckBlock`) and, for v2, `post_bn`.
    Identity layers `stage1_output` ... `stage4_output` mark the last feature
    map at strides 4, 8, 16 and 32, for segmentation heads:
    `model.get_layer("stage2_output").output`. (v2 downsamples in the last
    block of a stage, as keras.applications does, so there `stage{k}_output`
    is the input of the strided block, and `stage4_output` follows `post_bn`.)

    Args:
        variant: `"resnet18"`, `"resnet34"`, `"resnet50"`, `"resnet101"` or
            `"resnet152"`.
        version: `"v1"` (keras.applications), `"v1.5"` (torchvision) or
            `"v2"` (pre-activation, keras.applications `ResNet*V2`).
        num_classes: classifier width when `include_top`.
        include_top: whether to end with global average pooling and a `Dense`
            classifier named `predictions`.
        pooling: `None`, `"avg"` or `"max"`: global pooling of a headless
            model.
        input_shape: image shape in `data_format` order; height and width
            `None` or at least 32.
        data_format: `"channels_last"` or `"channels_first"`; defaults to
            `keras.config.image_data_format()`.
        drop_path_rate: stochastic-depth rate of the last block, in `[0, 1)`;
            it grows linearly from 0 at the first block.
        classifier_activation: activation of `predictions` (`None` for
            logits).
        filters: filters of the stem and the first stage, doubled at each
            later stage (64 in the paper; fewer makes a small ResNet of the
            same depth, e.g. 16 as in the paper's CIFAR-10 ResNets).
        weights: `None`, `"imagenet"` (v1 and v2 ResNet-50/101/152, through
            the keras.applications weights, downloaded once into
            `~/.keras/models`; `keras_cvlec.weights.WeightsUnavailableError`
            when that fails) or the path of a `.weights.h5` file saved from
            the same architecture.
        name: the model's name; defaults to e.g. `"resnet50_v1"`.

    Returns:
        A `keras.Model`.

    Example:

    >>> model = keras_cvlec.build_resnet("resnet18", version="v1.5",
    ...     num_classes=10, input_shape=(64, 64, 3))
    >>> model.output_shape
    (None, 10)
    """
    spec = RESNET_VARIANTS[check_choice("variant", variant, tuple(RESNET_VARIANTS))]
    check_choice("version", version, tuple(RESNET_VERSIONS))
    check_head_args(include_top, num_classes, pooling)
    drop_path_rate = check_rate("drop_path_rate", drop_path_rate)
    check_positive_int("filters", filters)
    data_format = standardize_data_format(data_format)
    application = _check_weights(weights, spec, variant, version, include_top, num_classes, filters)

    inputs = image_input(input_shape, data_format, min_size=TOTAL_STRIDE)
    if application is not None:
        prepare_imagenet_weights(
            application, input_channels(inputs, data_format), input_shape, include_top
        )
    settings = RESNET_VERSIONS[version]
    x = _stem(inputs, version, filters, data_format)

    block_class = spec["block"]
    total_blocks = sum(spec["stage_blocks"])
    block_number = 0
    level = 1
    for stage, num_blocks in enumerate(spec["stage_blocks"], start=1):
        for index in range(1, num_blocks + 1):
            if settings.preactivation:
                downsample = stage < NUM_STAGES and index == num_blocks
            else:
                downsample = stage > 1 and index == 1
            if downsample:
                x = layers.Identity(name=f"stage{level}_output")(x)
                level += 1
            x = block_class(
                filters * 2 ** (stage - 1),
                strides=2 if downsample else 1,
                version=version,
                drop_path_rate=drop_path_rate * block_number / max(total_blocks - 1, 1),
                data_format=data_format,
                name=f"stage{stage}_block{index}",
            )(x)
            block_number += 1
    if settings.preactivation:
        x = resnet_batch_norm(version, data_format, "post_bn")(x)
        x = layers.Activation("relu", name="post_relu")(x)
    x = layers.Identity(name=f"stage{level}_output")(x)

    outputs = classification_head(
        x,
        include_top=include_top,
        num_classes=num_classes,
        pooling=pooling,
        classifier_activation=classifier_activation,
        data_format=data_format,
    )
    model = keras.Model(inputs, outputs, name=name or f"{variant}_{version}")
    return load_weights_arg(model, weights, application, include_top)


def _check_weights(weights, spec, variant, version, include_top, num_classes, filters):
    """Validates `weights`; returns the keras.applications name for imagenet."""
    if weights == "imagenet" and filters != 64:
        raise ValueError(
            f"weights='imagenet' needs the published width, filters=64. Received: filters={filters}"
        )
    return check_weights_arg(
        weights,
        imagenet_source=spec.get("keras_applications", {}).get(version),
        description=f"variant={variant!r}, version={version!r}",
        available=[
            f"{name} {v}"
            for name, row in RESNET_VARIANTS.items()
            for v in row.get("keras_applications", {})
        ],
        include_top=include_top,
        num_classes=num_classes,
    )


def _stem(x, version, filters, data_format):
    """7x7/2 convolution (+ norm and ReLU before v2) and 3x3/2 max pooling."""
    settings = RESNET_VERSIONS[version]
    x = layers.ZeroPadding2D(3, data_format=data_format, name="stem_pad")(x)
    x = convolution.Conv2D(
        filters,
        7,
        strides=2,
        use_bias=settings.conv_bias or settings.preactivation,
        kernel_initializer="he_normal",
        data_format=data_format,
        name="stem_conv",
    )(x)
    if not settings.preactivation:
        x = resnet_batch_norm(version, data_format, "stem_bn")(x)
        x = layers.Activation("relu", name="stem_relu")(x)
    x = layers.ZeroPadding2D(1, data_format=data_format, name="stem_pool_pad")(x)
    return layers.MaxPooling2D(3, strides=2, data_format=data_format, name="stem_pool")(x)


for _variant in RESNET_VARIANTS:
    register_model(
        _variant,
        build_resnet,
        task="classification",
        family="resnet",
        defaults={"variant": _variant},
        feature_strides=(4, 8, 16, TOTAL_STRIDE),
        input_size=224,
        weights=("imagenet",) if "keras_applications" in RESNET_VARIANTS[_variant] else (),
    )
