"""Fully convolutional networks (Long et al., 2015): FCN-32s, FCN-16s, FCN-8s."""

import os

import keras
from keras import layers, ops

from keras_cvlec.layers.bias_first_conv import BiasFirstConv2D
from keras_cvlec.layers.pad_to_multiple import CropToMatch2D, PadToMultiple2D
from keras_cvlec.models.inputs import DEFAULT_INPUT_SHAPE, image_input
from keras_cvlec.models.registry import register_model
from keras_cvlec.models.segmentation_blocks import (
    apply_final_activation,
    check_final_activation,
    backbone_features,
    check_backbone,
)
from keras_cvlec.utils.validation import (
    check_bool,
    check_choice,
    check_positive_int,
    standardize_data_format,
)

# One row a variant: the backbone stages whose scores are fused into the
# stride-32 score of stage 4, from coarse to fine. Stage k has stride 2**(k+1).
FCN_VARIANTS = {
    "32s": (),
    "16s": (3,),
    "8s": (3, 2),
}
FCN_TOTAL_STRIDE = 32
DEFAULT_BACKBONE = "resnet50"


@keras.saving.register_keras_serializable(package="keras_cvlec")
class BilinearUpsamplingKernel(keras.initializers.Initializer):
    """Initialises a `Conv2DTranspose` kernel to bilinear interpolation.

    For a kernel of size `2 * f` and stride `f` with `padding="same"`, the
    layer then up-samples each channel by `f` with bilinear interpolation at
    pixel centres (`align_corners=False`), away from the borders (FCN's
    "deconvolution filter initialised to bilinear interpolation"). The
    kernel `(kh, kw, out_channels, in_channels)` is the outer product of two
    1D triangles `1 - |i - center| / f`, on the channel diagonal (output
    channel c reads input channel c only), zero elsewhere.

    Example:

    >>> layer = keras.layers.Conv2DTranspose(2, 4, strides=2, padding="same",
    ...     use_bias=False, kernel_initializer=BilinearUpsamplingKernel())
    """

    def __call__(self, shape, dtype=None):
        if len(shape) != 4:
            raise ValueError(
                "BilinearUpsamplingKernel needs a 4D kernel shape (kh, kw, out, in). "
                f"Received: shape={tuple(shape)}"
            )
        kh, kw, out_channels, in_channels = shape
        kernel = ops.outer(_triangle(kh), _triangle(kw))
        diagonal = ops.eye(out_channels, in_channels, dtype="float32")
        kernel = kernel[:, :, None, None] * diagonal[None, None, :, :]
        return ops.cast(kernel, dtype or keras.config.floatx())

    def get_config(self):
        return {}


def _triangle(size):
    """The 1D bilinear filter of `size` taps (Caffe's `get_upsampling_weight`)."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    taps = ops.arange(size, dtype="float32")
    return 1.0 - ops.abs(taps - center) / factor


def build_fcn(
    *,
    backbone=DEFAULT_BACKBONE,
    variant="32s",
    num_classes=21,
    input_shape=DEFAULT_INPUT_SHAPE,
    backbone_weights=None,
    freeze_backbone=False,
    final_activation=None,
    data_format=None,
    name=None,
):
    """Builds a fully convolutional network (FCN) as a functional `keras.Model`.

    The backbone is a headless ResNet or ConvNeXt of this package, called as
    one nested model named `backbone` that returns its `stage{k}_output`
    feature maps (stride `2**(k + 1)`). A 1x1 convolution `score_stage4`
    gives class scores at stride 32. Then, as in Long et al. (2015):

    - `"32s"`: one `Conv2DTranspose` `upscore32` (kernel 64, stride 32)
      up-samples the scores to the input's resolution.
    - `"16s"`: a 2x transpose convolution (kernel 4, stride 2)
      `upscore2_stage4` brings them to stride 16, where `fuse_stage3` adds
      the 1x1 scores `score_stage3` of stage 3; `upscore16` (kernel 32,
      stride 16) up-samples the sum.
    - `"8s"`: the same once more with stage 2 (`upscore2_stage3`,
      `score_stage2`, `fuse_stage2`) at stride 8, then `upscore8` (kernel
      16, stride 8).

    As in the paper, the score convolutions start at zero (so a fused net
    starts as the coarser one) and the transpose convolutions (no bias, all
    learned) start as bilinear interpolation (`BilinearUpsamplingKernel`).
    The paper's VGG-16 backbone is replaced by the ResNet/ConvNeXt stages,
    and its crop offsets by padding: inputs of any height and width (at
    least 32) are padded to a multiple of 32 (`pad`) and the output is
    cropped back (`crop`), so the output always has the input's height and
    width.

    Args:
        backbone: a registered ResNet or ConvNeXt name, e.g. `"resnet50"`,
            `"resnet18"` or `"convnext_tiny"` (`keras_cvlec.list_models()`).
        variant: `"32s"`, `"16s"` or `"8s"`: the stride of the finest
            feature map fused into the scores.
        num_classes: number of classes (21 for PASCAL VOC).
        input_shape: image shape in `data_format` order; height and width
            `None` or at least 32.
        backbone_weights: `None`, `"imagenet"` or a `.weights.h5` path for
            the backbone (see `build_resnet` / `build_convnext`).
        freeze_backbone: whether the backbone's weights are frozen (its batch
            norms then also run in inference mode).
        final_activation: `None` (logits), `"softmax"` (over the channel axis
            in either data format), `"sigmoid"`, ...
        data_format: `"channels_last"` or `"channels_first"`; defaults to
            `keras.config.image_data_format()`.
        name: the model's name; defaults to e.g. `"fcn8s_resnet50"`.

    Returns:
        A `keras.Model` mapping images to `(batch, height, width,
        num_classes)` scores (channels first under `channels_first`).

    Example:

    >>> model = keras_cvlec.build_fcn(backbone="resnet18", variant="8s",
    ...     num_classes=5)
    >>> model(keras.ops.ones((1, 37, 53, 3))).shape
    (1, 37, 53, 5)
    """
    check_backbone("backbone", backbone)
    check_choice("variant", variant, tuple(FCN_VARIANTS))
    check_positive_int("num_classes", num_classes)
    check_bool("freeze_backbone", freeze_backbone)
    _check_backbone_weights(backbone_weights)
    check_final_activation(final_activation)
    data_format = standardize_data_format(data_format)

    inputs = image_input(input_shape, data_format, min_size=FCN_TOTAL_STRIDE)
    x = PadToMultiple2D(FCN_TOTAL_STRIDE, data_format=data_format, name="pad")(inputs)
    fused = FCN_VARIANTS[variant]
    stages = (4,) + fused
    features = dict(
        zip(
            stages,
            backbone_features(
                x, backbone, backbone_weights, freeze_backbone, stages, data_format,
                "backbone",
            ),
        )
    )

    def score(stage):
        return BiasFirstConv2D(
            num_classes,
            1,
            kernel_initializer="zeros",
            data_format=data_format,
            name=f"score_stage{stage}",
        )(features[stage])

    def upscore(tensor, factor, name, dtype=None):
        return layers.Conv2DTranspose(
            num_classes,
            2 * factor,
            strides=factor,
            padding="same",
            use_bias=False,
            kernel_initializer=BilinearUpsamplingKernel(),
            data_format=data_format,
            dtype=dtype,
            name=name,
        )(tensor)

    y = score(4)
    coarser, stride = 4, FCN_TOTAL_STRIDE
    for stage in fused:
        y = upscore(y, 2, f"upscore2_stage{coarser}")
        y = layers.Add(name=f"fuse_stage{stage}")([y, score(stage)])
        coarser, stride = stage, stride // 2
    y = upscore(y, stride, f"upscore{stride}", dtype="float32")
    y = CropToMatch2D(data_format=data_format, dtype="float32", name="crop")([y, inputs])
    y = apply_final_activation(y, final_activation, data_format)
    return keras.Model(inputs, y, name=name or f"fcn{variant}_{backbone}")


def _check_backbone_weights(backbone_weights):
    """The form of `backbone_weights`; the backbone builder checks the rest."""
    if backbone_weights is None or (
        isinstance(backbone_weights, str) and backbone_weights == "imagenet"
    ):
        return
    if isinstance(backbone_weights, (str, os.PathLike)) and os.fspath(
        backbone_weights
    ).endswith(".weights.h5"):
        return
    raise ValueError(
        "`backbone_weights` must be None, 'imagenet' or the path of a "
        f"'.weights.h5' file. Received: backbone_weights={backbone_weights!r}"
    )


for _variant in FCN_VARIANTS:
    register_model(
        f"fcn{_variant}", build_fcn, task="segmentation", family="fcn", defaults={"variant": _variant}
    )
