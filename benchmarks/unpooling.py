"""Time MaxPoolingWithArgmax2D + MaxUnpooling2D against MaxPooling2D + UpSampling2D.

Usage (one backend per process, as Keras needs):

    KERAS_BACKEND=tensorflow python benchmarks/unpooling.py
    python benchmarks/unpooling.py --all-backends      # spawns one process each

Prints the median time per call (milliseconds) of the forward pass and of the
forward + backward pass on an input of shape (8, 128, 128, 64), float32,
2x2 windows, compiled the way a Keras model runs on each backend: TF
`tf.function` (graph) and `tf.function(jit_compile=True)` (XLA), JAX `jax.jit`
(XLA), torch eager. No result is asserted; numbers depend on the machine.
"""

import argparse
import sys

from timing import median_seconds, run_on_every_backend

SHAPE = (8, 128, 128, 64)


def median_ms(fn, warmup, repeats):
    return 1000.0 * median_seconds(fn, warmup, repeats)


def run_current_backend(warmup, repeats, data_format):
    import keras
    import numpy as np
    from keras import ops

    from keras_cvlec.layers import MaxPoolingWithArgmax2D, MaxUnpooling2D

    backend = keras.backend.backend()
    shape = SHAPE if data_format == "channels_last" else (8, 64, 128, 128)
    x_np = np.random.default_rng(0).standard_normal(shape).astype("float32")
    argmax_pool = MaxPoolingWithArgmax2D(2, data_format=data_format)
    unpool = MaxUnpooling2D(2, data_format=data_format)
    keras_pool = keras.layers.MaxPooling2D(2, data_format=data_format)
    upsample = keras.layers.UpSampling2D(2, data_format=data_format)

    def ours(x):
        pooled, indices = argmax_pool(x)
        return unpool([pooled, indices, x])

    def baseline(x):
        return upsample(keras_pool(x))

    results = {}
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.constant(x_np)

        def with_grad(f):
            def g(t):
                with tf.GradientTape() as tape:
                    tape.watch(t)
                    total = tf.reduce_sum(f(t))
                return tape.gradient(total, t)

            return g

        for label, jit in (("graph", False), ("xla", True)):
            for name, f in (("argmax+unpool", ours), ("maxpool+upsample", baseline)):
                fwd = tf.function(f, jit_compile=jit)
                bwd = tf.function(with_grad(f), jit_compile=jit)
                results[(name, f"tf {label} fwd")] = median_ms(
                    lambda fwd=fwd: fwd(x).numpy(), warmup, repeats
                )
                results[(name, f"tf {label} fwd+bwd")] = median_ms(
                    lambda bwd=bwd: bwd(x).numpy(), warmup, repeats
                )
    elif backend == "jax":
        import jax

        x = jax.numpy.asarray(x_np)
        for name, f in (("argmax+unpool", ours), ("maxpool+upsample", baseline)):
            fwd = jax.jit(f)
            bwd = jax.jit(jax.grad(lambda t, f=f: ops.sum(f(t))))
            results[(name, "jax jit fwd")] = median_ms(
                lambda fwd=fwd: fwd(x).block_until_ready(), warmup, repeats
            )
            results[(name, "jax jit fwd+bwd")] = median_ms(
                lambda bwd=bwd: bwd(x).block_until_ready(), warmup, repeats
            )
    else:
        import torch

        x = torch.from_numpy(x_np)
        for name, f in (("argmax+unpool", ours), ("maxpool+upsample", baseline)):

            def fwd(f=f):
                with torch.no_grad():
                    return f(x)

            def bwd(f=f):
                t = x.detach().requires_grad_(True)
                f(t).sum().backward()
                return t.grad

            results[(name, "torch eager fwd")] = median_ms(fwd, warmup, repeats)
            results[(name, "torch eager fwd+bwd")] = median_ms(bwd, warmup, repeats)

    modes = sorted(
        {mode for _, mode in results}, key=lambda m: list(mode for _, mode in results).index(m)
    )
    print(
        f"backend={backend} input={shape} {data_format} pool 2x2, median ms/call "
        f"({repeats} calls after {warmup} warm-up)"
    )
    print(f"  {'mode':<22}{'argmax+unpool':>15}{'maxpool+upsample':>18}{'ratio':>8}")
    for mode in modes:
        ours_ms = results[("argmax+unpool", mode)]
        base_ms = results[("maxpool+upsample", mode)]
        print(f"  {mode:<22}{ours_ms:>15.1f}{base_ms:>18.1f}{ours_ms / base_ms:>8.2f}")
    sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all-backends", action="store_true")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--data-format",
        default="channels_last",
        choices=("channels_last", "channels_first"),
    )
    args = parser.parse_args()
    if not args.all_backends:
        run_current_backend(args.warmup, args.repeats, args.data_format)
        return
    run_on_every_backend(
        __file__,
        [
            "--warmup",
            str(args.warmup),
            "--repeats",
            str(args.repeats),
            "--data-format",
            args.data_format,
        ],
    )


if __name__ == "__main__":
    main()
