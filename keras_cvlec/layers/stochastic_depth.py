"""Stochastic depth (drop path): drop a whole residual branch per sample."""

import keras
from keras import ops

from keras_cvlec.utils.validation import check_rate, check_seed

__all__ = ["StochasticDepth"]


@keras.saving.register_keras_serializable(package="keras_cvlec")
class StochasticDepth(keras.layers.Layer):
    """Drops the residual branch of whole samples during training.

    Each sample of the batch is kept with probability `1 - rate`; kept samples
    are scaled by `1 / (1 - rate)` so the expected output equals the input. At
    inference (`training=False` or `None`) and when `rate == 0` the layer is
    the identity. Apply it to the residual branch, before the residual add
    (Huang et al., 2016, "Deep Networks with Stochastic Depth").

    Randomness comes from a `keras.random.SeedGenerator`, so the layer traces
    under `jax.jit` and XLA.

    Args:
        rate: float in `[0, 1)`, the probability of dropping a sample's branch.
        seed: optional int seed for reproducible drops.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:

    >>> layer = StochasticDepth(rate=0.2, seed=0)
    >>> branch = keras.ops.ones((8, 4, 4, 16))
    >>> layer(branch, training=False).shape
    (8, 4, 4, 16)
    """

    def __init__(self, rate=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = check_rate("rate", rate)
        self.seed = check_seed("seed", seed)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True
        self.built = True

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        keep_prob = 1.0 - self.rate
        batch_shape = (ops.shape(inputs)[0],) + (1,) * (len(inputs.shape) - 1)
        noise = keras.random.uniform(batch_shape, seed=self.seed_generator, dtype=inputs.dtype)
        keep_mask = ops.cast(noise < keep_prob, inputs.dtype)
        return inputs * (keep_mask / ops.cast(keep_prob, inputs.dtype))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config
