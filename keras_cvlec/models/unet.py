"""U-Net (Ronneberger et al., 2015): down in resolution, back up, with skips."""

import math

import keras
from keras import layers

from keras_cvlec.layers.bias_first_conv import BiasFirstConv2D
from keras_cvlec.layers.pad_to_multiple import CropToMatch2D, PadToMultiple2D
from keras_cvlec.layers.unpooling import MaxPoolingWithArgmax2D
from keras_cvlec.models.inputs import DEFAULT_INPUT_SHAPE, image_input, input_channels
from keras_cvlec.models.registry import register_model
from keras_cvlec.models.segmentation_blocks import (
    BACKBONE_STAGES,
    NORM_CHOICES,
    SegmentationLayers,
    apply_final_activation,
    backbone_features,
    check_backbone,
    check_final_activation,
    check_total_stride,
)
from keras_cvlec.utils.validation import (
    channel_axis,
    check_choice,
    check_positive_int,
    check_rate,
    standardize_data_format,
)

UPSAMPLING_CHOICES = ("transpose", "bilinear", "nearest", "max_unpool")
ENCODER_STAGES = BACKBONE_STAGES


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
    encoder=None,
    encoder_weights=None,
    freeze_encoder=False,
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

    With `encoder`, a ResNet or ConvNeXt of this package replaces the
    encoder: its `stage1_output` ... `stage{depth}_output` (strides 4 ...
    `2**(depth+1)`) are the skips and the bottleneck, and two more decoder
    levels without skips return to full resolution.

    Args:
        input_shape: image shape in `data_format` order; height and width may
            be `None`.
        num_classes: number of classes; 1 gives one logit per pixel (binary).
        depth: number of down-sampling steps (1 to 4 with an `encoder`).
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
        encoder: `None`, or a registered ResNet/ConvNeXt name, e.g.
            `"resnet50"` or `"convnext_tiny"`.
        encoder_weights: `None`, `"imagenet"` or a `.weights.h5` path for the
            encoder.
        freeze_encoder: whether the encoder's weights are frozen.
        final_activation: `None` (logits), `"softmax"`, `"sigmoid"`, ...
        data_format: `"channels_last"` or `"channels_first"`; defaults to
            `keras.config.image_data_format()`.
        name: the model's name; defaults to `"unet"` or `"unet_<encoder>"`.

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
    _check_encoder_args(encoder, encoder_weights, freeze_encoder, upsampling, depth)

    total_stride = 2 ** (depth + 1) if encoder else 2**depth
    inputs = image_input(input_shape, data_format, min_size=1)
    check_total_stride(inputs, data_format, total_stride, f"`depth`={depth}", input_shape)
    if encoder_weights == "imagenet" and input_channels(inputs, data_format) != 3:
        raise ValueError(
            f"`encoder_weights='imagenet'` needs 3 input channels. Received: "
            f"input_shape={input_shape}"
        )

    builder = SegmentationLayers(norm, activation, data_format)
    x = PadToMultiple2D(total_stride, data_format=data_format, name="pad")(inputs)
    if encoder:
        skips, x = _pretrained_encoder(
            x, encoder, encoder_weights, freeze_encoder, depth, data_format
        )
        pool_indices = [None] * len(skips)
        skip_strides = [2 ** (level + 2) for level in range(len(skips))]
    else:
        skips, pool_indices = [], []
        for level in range(depth):
            x = builder.conv_block(x, filters * 2**level, f"encoder{level + 1}")
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
        x = builder.conv_block(x, filters * 2**depth, "bottleneck")
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
        x = builder.upsample(x, width, upsampling, prefix, indices, skip)
        if skip is not None:
            x = layers.Concatenate(axis=channel_axis(data_format), name=f"{prefix}_concat")(
                [skip, x]
            )
        x = builder.conv_block(x, width, prefix)

    x = BiasFirstConv2D(
        num_classes, 1, data_format=data_format, dtype="float32", name="head"
    )(x)
    x = CropToMatch2D(data_format=data_format, dtype="float32", name="crop")([x, inputs])
    x = apply_final_activation(x, final_activation, data_format)
    default_name = f"unet_{encoder}" if encoder else "unet"
    return keras.Model(inputs, x, name=name or default_name)


def _check_encoder_args(encoder, encoder_weights, freeze_encoder, upsampling, depth):
    if encoder is None:
        for arg, value, default in (
            ("encoder_weights", encoder_weights, None),
            ("freeze_encoder", freeze_encoder, False),
        ):
            if value != default:
                raise ValueError(
                    f"`{arg}`={value!r} needs an `encoder`. Received: encoder=None"
                )
        return
    check_backbone("encoder", encoder)
    if upsampling == "max_unpool":
        raise ValueError(
            f"`upsampling='max_unpool'` needs the argmax indices of the encoder's "
            f"max pooling, and encoder={encoder!r} has no MaxPoolingWithArgmax2D. "
            f"Use encoder=None or another upsampling."
        )
    if depth > ENCODER_STAGES:
        raise ValueError(
            f"`depth` must be at most {ENCODER_STAGES} with an encoder (its stages). "
            f"Received: depth={depth}"
        )
    if not isinstance(freeze_encoder, bool):
        raise TypeError(
            f"`freeze_encoder` must be True or False. Received: "
            f"freeze_encoder={freeze_encoder!r}"
        )


def _pretrained_encoder(x, encoder, encoder_weights, freeze_encoder, depth, data_format):
    """(skips at strides 4 ... 2**depth, bottleneck) from a backbone."""
    outputs = backbone_features(
        x, encoder, encoder_weights, freeze_encoder, range(1, depth + 1), data_format, "encoder"
    )
    return outputs[:-1], outputs[-1]


register_model("unet", build_unet, task="segmentation", family="unet")
