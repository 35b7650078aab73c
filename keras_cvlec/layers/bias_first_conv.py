"""A `Conv2D` whose bias add is right for `channels_first` on TensorFlow."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_cvlec")
class BiasFirstConv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` that adds its bias as `bias + outputs`.

    keras 3.15's TensorFlow `ops.add(outputs, bias)` becomes `tf.nn.bias_add`
    and guesses NHWC whenever the last axis has the bias's size, so a
    `channels_first` output whose width equals its channels (e.g. 4 filters
    on a 4x4 map) gets the bias added along the width. With the bias first
    `ops.add` is a plain broadcasting add on every backend. Same weights
    (`kernel`, `bias`) and names as `Conv2D`.
    """

    def call(self, inputs):
        outputs = self.convolution_op(inputs, self.kernel)
        if self.use_bias:
            bias_shape = [1] * len(outputs.shape)
            bias_shape[-1 if self.data_format == "channels_last" else 1] = (
                self.filters
            )
            outputs = ops.add(ops.reshape(self.bias, bias_shape), outputs)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs
