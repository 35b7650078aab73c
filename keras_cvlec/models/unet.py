"""U-Net (Ronneberger et al., 2015): down in resolution, back up, with skips."""

import math

import keras
from keras import layers

from keras_cvlec.layers.unpooling import MaxPoolingWithArgmax2D
from keras_cvlec.models.backbones import backbone_features, check_backbone_args
from keras_cvlec.models.conv_blocks import NORM_CHOICES, conv_block, upsample
from keras_cvlec.models.inputs import DEFAULT_INPUT_SHAPE, image_input, input_channels
from keras_cvlec.models.registry import model_info, register_model
from keras_cvlec.models.segmentation_head import (
    check_final_activation,
    pad_to_total_stride,
    segmentation_head,
)
from keras_cvlec.utils.validation import (
    channel_axis,
    check_choice,
    check_positive_int,
    check_rate,
    renamed_arguments,
    standardize_data_format,
)

__all__ = ["UPSAMPLING_CHOICES", "build_unet"]

UPSAMPLING_CHOICES = ("transpose", "bilinear", "nearest", "max_unpool")


@renamed_arguments(
    encoder="backbone", encoder_weights="backbone_weights", freeze_encoder="freeze_backbone"
)
def build_unet(
    *,
    input_shape=DEFAULT_INPUT_SHAPE,
    num_classes=2,
    depth=4,
    filters=64,
    upsampling="transpose",
    norm="batch",
    activation="relu",
    dropout=0.0,
    backbone=None,
    backbone_weights=None,
    freeze_backbone=False,
    final_activation=None,
    data_format=None,
    name=None,
):
    """Builds a U-Net as a functional `keras.Model`.

    Each level has two 3x3 convolutions (+ `norm` + `activation`), with
    `filters * 2**level` channels: the encoder halves the resolution `depth`
    times with 2x2 max pooling, the decoder doubles it again and concatenates
    the encoder's feature map of the same resolution (the skip connection)
    before its two convolutions. A 1x1 convolution gives the class scores.
    Inputs of any height and width work: the model pads them to a multiple of
    its total stride and crops the output back, so the output always has the
    input's height and width.

    Up-sampling (`upsampling`), each followed by learned convolutions:

    - `"transpose"`: a learned 2x2 stride-2 `Conv2DTranspose` (the paper's
      "up-convolution").
    - `"bilinear"` / `"nearest"`: `UpSampling2D` (bilinear interpolation, or
      repeating each value: "average unpooling"), then a 3x3 convolution.
    - `"max_unpool"`: the encoder pools with `MaxPoolingWithArgmax2D`; the
      decoder reduces channels with a 3x3 convolution and puts each value
      back where the encoder's maximum was (`MaxUnpooling2D`).

    With a `backbone`, a ResNet or ConvNeXt of this package replaces the
    encoder, as one nested model named `encoder`: its first `depth` feature
    maps `stage1_output` ... `stage{depth}_output` (strides 4 ...
    `2**(depth+1)`, from the registry's `feature_strides`) are the skips and
    the bottleneck, and two more decoder levels without skips return to
    full resolution.

    Args:
        input_shape: image shape in `data_format` order; height and width may
            be `None`.
        num_classes: number of classes; 1 gives one logit per pixel (binary).
        depth: number of down-sampling steps (1 to 4 with a `backbone`: its
            number of stages).
        filters: channels of the first level (64 in the paper).
        upsampling: `"transpose"`, `"bilinear"`, `"nearest"` or
            `"max_unpool"`.
        norm: `"batch"`, `"layer"` (over channels), `"group"` (up to 32
            groups) or `None` (the paper's U-Net; convolutions then have
            biases).
        activation: activation after each normalised convolution.
        dropout: dropout rate in `[0, 1)` before and after the bottleneck, as
            in the paper ("drop-out layers at the end of the contracting
            path").
        backbone: `None` (the paper's encoder), or a registered backbone
            name (`keras_cvlec.list_models(backbone=True)`), e.g.
            `"resnet50"` or `"convnext_tiny"`. Formerly `encoder` (still
            accepted, with a `DeprecationWarning`).
        backbone_weights: `None`, `"imagenet"` or a `.weights.h5` path for
            the backbone. Formerly `encoder_weights`.
        freeze_backbone: whether the backbone's weights are frozen. Formerly
            `freeze_encoder`.
        final_activation: `None` (logits), `"softmax"`, `"sigmoid"`, ...
        data_format: `"channels_last"` or `"channels_first"`; defaults to
            `keras.config.image_data_format()`.
        name: the model's name; defaults to `"unet"` or `"unet_<backbone>"`.

    Returns:
        A `keras.Model` mapping images to `(batch, height, width,
        num_classes)` scores (channels first under `channels_first`).

    Example:

    >>> model = keras_cvlec.build_unet(input_shape=(None, None, 1),
    ...     num_classes=3, depth=3, filters=8)
    >>> model(keras.ops.ones((1, 97, 131, 1))).shape
    (1, 97, 131, 3)
    """
    check_positive_int("num_classes", num_classes)
    check_final_activation(final_activation)
    check_positive_int("depth", depth)
    check_positive_int("filters", filters)
    check_choice("upsampling", upsampling, UPSAMPLING_CHOICES)
    check_choice("norm", norm, NORM_CHOICES)
    dropout = check_rate("dropout", dropout)
    data_format = standardize_data_format(data_format)
    inputs = image_input(input_shape, data_format, min_size=1)
    check_backbone_args(
        backbone,
        backbone_weights,
        freeze_backbone,
        channels=input_channels(inputs, data_format),
        input_shape=input_shape,
        optional=True,
    )
    strides = _backbone_strides(backbone, depth, upsampling) if backbone else None
    total_stride = strides[-1] if backbone else 2**depth
    x = pad_to_total_stride(
        inputs, total_stride, data_format, cause=f"`depth`={depth}", input_shape=input_shape
    )

    blocks = dict(norm=norm, activation=activation, data_format=data_format)
    if backbone:
        # The nested model keeps the name "encoder" of the models saved so far.
        *skips, x = backbone_features(
            x,
            backbone,
            strides=strides,
            weights=backbone_weights,
            freeze=freeze_backbone,
            data_format=data_format,
            name="encoder",
        )
        pool_indices = [None] * len(skips)
        skip_strides = list(strides[:-1])
    else:
        skips, pool_indices = [], []
        for level in range(depth):
            x = conv_block(x, filters * 2**level, f"encoder{level + 1}", **blocks)
            if dropout and level == depth - 1:
                x = layers.Dropout(dropout, name=f"encoder{level + 1}_dropout")(x)
            skips.append(x)
            pool_name = f"encoder{level + 1}_pool"
            if upsampling == "max_unpool":
                x, indices = MaxPoolingWithArgmax2D(2, data_format=data_format, name=pool_name)(x)
                pool_indices.append(indices)
            else:
                x = layers.MaxPooling2D(2, data_format=data_format, name=pool_name)(x)
                pool_indices.append(None)
        x = conv_block(x, filters * 2**depth, "bottleneck", **blocks)
        skip_strides = [2**level for level in range(depth)]
    if dropout:
        x = layers.Dropout(dropout, name="bottleneck_dropout")(x)

    # The decoder: one level per stride below the bottleneck's, each with the
    # skip of that stride where the encoder has one.
    levels = int(math.log2(total_stride))
    for level in reversed(range(levels)):
        stride = 2**level
        width = filters * stride
        prefix = f"decoder{level + 1}"
        if stride in skip_strides:
            skip_index = skip_strides.index(stride)
            skip, indices = skips[skip_index], pool_indices[skip_index]
        else:
            skip = indices = None
        x = upsample(
            x,
            width,
            upsampling,
            prefix,
            norm=norm,
            data_format=data_format,
            indices=indices,
            skip=skip,
        )
        if skip is not None:
            x = layers.Concatenate(axis=channel_axis(data_format), name=f"{prefix}_concat")(
                [skip, x]
            )
        x = conv_block(x, width, prefix, **blocks)

    x = segmentation_head(x, inputs, num_classes, final_activation, data_format)
    default_name = f"unet_{backbone}" if backbone else "unet"
    return keras.Model(inputs, x, name=name or default_name)


def _backbone_strides(backbone, depth, upsampling):
    """The strides of the backbone features U-Net uses: `depth - 1` skips
    and the bottleneck."""
    if upsampling == "max_unpool":
        raise ValueError(
            f"`upsampling='max_unpool'` needs the argmax indices of the encoder's "
            f"max pooling, and backbone={backbone!r} has no MaxPoolingWithArgmax2D. "
            f"Use backbone=None or another upsampling."
        )
    strides = model_info(backbone).feature_strides
    if depth > len(strides):
        raise ValueError(
            f"`depth` must be at most {len(strides)} with backbone={backbone!r} (its "
            f"stages). Received: depth={depth}"
        )
    return strides[:depth]


register_model("unet", build_unet, task="segmentation", family="unet")
