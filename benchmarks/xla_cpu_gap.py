"""Where JAX loses to TensorFlow on a CPU: the convolutions of our models,
forward and backward, in TensorFlow (a `tf.function` graph, as Keras runs
it, and with XLA) and in JAX (as Keras 3 expresses them, and other
expressions of the same numbers), timed in turn in one process.

Usage:

    python benchmarks/xla_cpu_gap.py
    python benchmarks/xla_cpu_gap.py pooling stride  # the cases named so
    XLA_FLAGS=--xla_cpu_use_onednn=true python benchmarks/xla_cpu_gap.py

Every case is at the sizes a 64² image, batch 8 gives: the first U-Net
level's 3x3 convolution, ResNet-50's last-stage 3x3 convolution (2x2 map), a
bottleneck's 1x1 convolution, ConvNeXt-T's 7x7 depthwise convolution and
the U-Net's 2x2 stride-2 transposed convolution. Each step computes the
gradients with respect to the input and the kernel. Printed: ms a step and
TensorFlow's time ÷ this (above 0.5 meets "JAX >= 0.5x TF"), and whether
each alternative expression gives the numbers of Keras's within float32
rounding.

The rows marked "(ours)" are the expressions keras_cvlec.layers.convolution
uses on JAX on a CPU, called from the package (the depthwise sum and the
large-map convolution with the gradients it gives them by hand). The
others show what does not help (nine shifted matmuls for a 3x3
convolution, im2col on a large map) or was left (max pooling as the
maximum of strided slices is faster, but its gradient splits ties where
Keras's gives it to the first maximum, and
pooling is a small part of any model's step).
"""

import os
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# keras.ops on JAX: the package's expressions below run as JAX code.
os.environ["KERAS_BACKEND"] = "jax"

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import timing  # noqa: E402

BATCH = 8


def tf_step(op, x, kernel, jit_compile=False):
    x, kernel = tf.constant(x), tf.constant(kernel)

    @tf.function(jit_compile=jit_compile)
    def step():
        with tf.GradientTape() as tape:
            tape.watch([x, kernel])
            loss = tf.reduce_sum(tf.square(op(x, kernel)))
        return tape.gradient(loss, [x, kernel])

    return lambda: [g.numpy() for g in step() if g is not None]


def jax_step(op, x, kernel):
    grad = jax.jit(jax.grad(lambda x, k: jnp.sum(jnp.square(op(x, k))), argnums=(0, 1)))
    x, kernel = jnp.asarray(x), jnp.asarray(kernel)
    return lambda: [np.asarray(g) for g in grad(x, kernel)]


def keras_function(module, name):
    """`keras.src.backend.<module>.nn.<name>`: what a Keras layer calls on
    that backend."""
    import importlib

    return getattr(importlib.import_module(f"keras.src.backend.{module}.nn"), name)


def keras_ops(module, name, **kwargs):
    """The Keras function `name` of backend `module` as `op(x, kernel)`,
    NHWC, "same" padding."""
    op = keras_function(module, name)
    return lambda x, k: op(x, k, padding="same", data_format="channels_last", **kwargs)


def package(name):
    """The JAX-on-CPU expression `name` of keras_cvlec.layers.convolution as
    `op(x, kernel)`: NHWC, stride 1, "same" padding."""
    from keras_cvlec.layers import convolution

    arguments = {
        "_convolution_as_matmul": dict(strides=(1, 1), padding="same", dilation_rate=(1, 1)),
        "_convolution_with_matmul_kernel_gradient": dict(padding="same", dilation_rate=(1, 1)),
        "_shifted_depthwise": dict(padding="same", dilation_rate=(1, 1)),
        "_non_overlapping_transpose": {},
    }[name]
    function = getattr(convolution, name)
    return lambda x, k: function(x, k, data_format="channels_last", **arguments)


def jax_conv_shifted_matmuls(x, kernel):
    """A "same" 3x3 convolution as nine matmuls of shifted inputs, summed."""
    size = kernel.shape[0]
    pad = size // 2
    height, width = x.shape[1:3]
    padded = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    out = 0
    for i in range(size):
        for j in range(size):
            window = padded[:, i : i + height, j : j + width, :]
            out = out + jnp.einsum("nhwc,co->nhwo", window, kernel[i, j])
    return out


def jax_max_pool_slices(x, kernel):
    """3x3 stride-2 "same" max pooling as the maximum of nine strided slices
    (its gradient splits a tie between the tied inputs)."""
    height, width = x.shape[1:3]
    padded = jnp.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)), constant_values=-jnp.inf)
    out = None
    for i in range(3):
        for j in range(3):
            window = padded[:, i : i + height - 1 : 2, j : j + width - 1 : 2, :]
            out = window if out is None else jnp.maximum(out, window)
    return out


def cases(rng):
    def normal(*shape):
        return rng.standard_normal(shape).astype("float32")

    def max_pool(module):
        pool = keras_function(module, "max_pool")
        # No kernel: its gradient is None (TF) / zero (JAX).
        return lambda x, k: pool(x, 3, 2, padding="same", data_format="channels_last")

    transpose = {"strides": 2}
    return [
        (
            "conv 3x3, 64->64, 64²",
            normal(BATCH, 64, 64, 64),
            normal(3, 3, 64, 64),
            keras_ops("tensorflow", "conv"),
            {
                "Keras (conv_general_dilated)": keras_ops("jax", "conv"),
                "nine shifted matmuls": jax_conv_shifted_matmuls,
                "im2col (ours at <= 64 output pixels)": package("_convolution_as_matmul"),
                "XLA's, kernel gradient a matmul a tap (ours at >= 32x32 output pixels)": package(
                    "_convolution_with_matmul_kernel_gradient"
                ),
            },
        ),
        (
            "conv 3x3, 512->512, 2²",
            normal(BATCH, 2, 2, 512),
            normal(3, 3, 512, 512),
            keras_ops("tensorflow", "conv"),
            {
                "Keras (conv_general_dilated)": keras_ops("jax", "conv"),
                "im2col (ours)": package("_convolution_as_matmul"),
            },
        ),
        (
            "conv 1x1, 256->64, 16²",
            normal(BATCH, 16, 16, 256),
            normal(1, 1, 256, 64),
            keras_ops("tensorflow", "conv"),
            {
                "Keras (conv_general_dilated)": keras_ops("jax", "conv"),
                "matmul (ours)": package("_convolution_as_matmul"),
            },
        ),
        (
            "conv 1x1 stride 2, 256->128, 16²",
            normal(BATCH, 16, 16, 256),
            normal(1, 1, 256, 128),
            keras_ops("tensorflow", "conv", strides=2),
            {"Keras (conv_general_dilated)": keras_ops("jax", "conv", strides=2)},
        ),
        (
            "max pooling 3x3 stride 2, 64 channels, 32²",
            normal(BATCH, 32, 32, 64),
            normal(1),
            max_pool("tensorflow"),
            {
                "Keras (reduce_window; its gradient select_and_scatter)": max_pool("jax"),
                "maximum of nine strided slices": jax_max_pool_slices,
            },
        ),
        (
            "depthwise 7x7, 96 channels, 16²",
            normal(BATCH, 16, 16, 96),
            normal(7, 7, 96, 1),
            keras_ops("tensorflow", "depthwise_conv"),
            {
                "Keras (grouped conv_general_dilated)": keras_ops("jax", "depthwise_conv"),
                "sum of 49 shifted products, gradients by hand (ours)": package(
                    "_shifted_depthwise"
                ),
            },
        ),
        (
            "transposed 2x2 stride 2, 128->64, 32²->64²",
            normal(BATCH, 32, 32, 128),
            normal(2, 2, 64, 128),
            keras_ops("tensorflow", "conv_transpose", **transpose),
            {
                "Keras (conv_transpose)": keras_ops("jax", "conv_transpose", **transpose),
                "matmul + pixel shuffle (ours)": package("_non_overlapping_transpose"),
            },
        ),
    ]


def main():
    rounds, count = 3, 2
    print(
        f"jax {jax.__version__}, tensorflow {tf.__version__}, "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"
    )
    print("\n| operation | implementation | ms a step | TF graph ÷ this | same numbers |")
    print("|---|---|---|---|---|")
    for name, x, kernel, tf_op, jax_ops in cases(np.random.default_rng(0)):
        if sys.argv[1:] and not any(word in name for word in sys.argv[1:]):
            continue
        implementations = {
            "TF graph": tf_step(tf_op, x, kernel),
            "TF XLA": tf_step(tf_op, x, kernel, True),
        }
        implementations.update(
            {f"JAX, {label}": jax_step(op, x, kernel) for label, op in jax_ops.items()}
        )
        reference = tf_op(tf.constant(x), tf.constant(kernel)).numpy()
        seconds = timing.alternate(implementations, count, rounds, warmup=1)
        base = statistics.median(seconds["TF graph"]) / count
        for label, times in seconds.items():
            same = ""
            if label.startswith("JAX"):
                op = jax_ops[label[5:]]
                difference = np.abs(np.asarray(op(jnp.asarray(x), jnp.asarray(kernel))) - reference)
                same = f"max diff {difference.max():.1e}"
            median = statistics.median(times) / count
            print(f"| {name} | {label} | {1000 * median:.1f} | {base / median:.2f} | {same} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
