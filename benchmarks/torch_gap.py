"""Where the Keras-torch ResNet-50 loses to plain PyTorch: training steps
of both, in turn, in one process (only ratios mean anything on a loaded
machine).

Usage:

    KERAS_BACKEND=torch python benchmarks/torch_gap.py            # 64², batch 8
    KERAS_BACKEND=torch python benchmarks/torch_gap.py --profile  # + top ops
    KERAS_BACKEND=torch python benchmarks/torch_gap.py --image-size 32 --batch-size 2
    KERAS_BACKEND=torch python benchmarks/torch_gap.py --jit-compile
    KERAS_BACKEND=torch python benchmarks/torch_gap.py --without-batch-norm

Candidates: our ResNet-50 with `data_format="channels_last"` (the Keras
default: every convolution transposes its input to NCHW and back) and
`"channels_first"` (NCHW throughout, as PyTorch), and the plain PyTorch
ResNet-50 of throughput.py in the NCHW and channels_last memory formats.
At 32², batch 2 almost nothing is computed: the times are the per-step
overhead. `--profile` prints the operators
that take the most time in a step of each Keras candidate. `--jit-compile`
adds our ResNet-50 under `jit_compile=True` (torch.compile), with the time
to its first step. `--without-batch-norm` splits the gap: it adds ours and
plain PyTorch's NCHW ResNet-50 with every batch normalisation replaced by a
per-channel scale and offset (the same trainable parameters, no statistics),
and prints what batch normalisation costs each a step.
"""

import argparse
import statistics
import sys
import time
from unittest import mock

import keras
import numpy as np
import throughput
import timing
import torch

import keras_cvlec


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3, help="steps a round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--jit-compile", action="store_true")
    parser.add_argument("--without-batch-norm", action="store_true")
    return parser.parse_args(argv)


class ChannelAffine(keras.layers.Layer):
    """What is left of `BatchNormalization` without its statistics:
    `x * gamma + beta` along `axis`. Takes BatchNormalization's arguments so
    that it can be built in its place."""

    def __init__(self, axis=-1, epsilon=None, momentum=None, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def build(self, input_shape):
        shape = [1] * len(input_shape)
        shape[self.axis] = input_shape[self.axis]
        self.gamma = self.add_weight(shape=shape, initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=shape, initializer="zeros", name="beta")

    def call(self, inputs):
        return inputs * self.gamma + self.beta


class TorchChannelAffine(torch.nn.Module):
    """`ChannelAffine` for an NCHW plain PyTorch model."""

    def __init__(self, channels):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(channels, 1, 1))
        self.bias = torch.nn.Parameter(torch.zeros(channels, 1, 1))

    def forward(self, x):
        return x * self.weight + self.bias


def keras_model(data_format, image_size, batch_norm=True):
    """Our ResNet-50 v1; with `batch_norm=False`, `ChannelAffine` where it
    has `BatchNormalization`."""
    shape = (
        (3, image_size, image_size)
        if data_format == "channels_first"
        else (
            image_size,
            image_size,
            3,
        )
    )
    norm = keras.layers.BatchNormalization if batch_norm else ChannelAffine
    with mock.patch.object(keras.layers, "BatchNormalization", norm):
        return keras_cvlec.build_resnet(
            "resnet50", version="v1", num_classes=1000, input_shape=shape, data_format=data_format
        )


def keras_step(data_format, image_size, batch_size, jit_compile=False, batch_norm=True):
    model = keras_model(data_format, image_size, batch_norm)
    shape = model.input_shape[1:]
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras_cvlec.losses.SparseCategoricalCrossentropy(),
        jit_compile=jit_compile,
    )
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (batch_size, *shape)).astype("float32")
    y = rng.integers(0, 1000, batch_size)
    return lambda: model.train_on_batch(x, y)


def torch_step(channels_last, image_size, batch_size, batch_norm=True):
    norm_layer = None if batch_norm else TorchChannelAffine
    model, _ = throughput._plain_torch_resnet50(1000, norm_layer)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (batch_size, image_size, image_size, 3)).astype("float32")
    return throughput._torch_step(model, x, rng.integers(0, 1000, batch_size), channels_last)


def candidates(image_size, batch_size):
    return {
        "ours, channels_last": keras_step("channels_last", image_size, batch_size),
        "ours, channels_first": keras_step("channels_first", image_size, batch_size),
        "plain PyTorch, NCHW": torch_step(False, image_size, batch_size),
        "plain PyTorch, channels_last memory": torch_step(True, image_size, batch_size),
    }


def time_in_turn(steps, count, rounds):
    """`{label: median seconds a step}`, the candidates taking turns."""
    seconds = timing.alternate(steps, count, rounds, warmup=2)
    return {label: statistics.median(times) / count for label, times in seconds.items()}


def print_ratios(title, seconds, images):
    reference = seconds["plain PyTorch, NCHW"]
    print(f"\n{title}")
    print("| implementation | ms a step | images/s | ÷ plain PyTorch NCHW |")
    print("|---|---|---|---|")
    for label, time_ in seconds.items():
        print(f"| {label} | {1000 * time_:.1f} | {images / time_:.1f} | {reference / time_:.2f} |")
    sys.stdout.flush()


def profile(step, label):
    step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        step()
    print(f"\nTop operators of one step, {label} (self CPU time)")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


def main(argv=None):
    if keras.backend.backend() != "torch":
        sys.exit("torch_gap.py: set KERAS_BACKEND=torch")
    args = parse_args(argv)
    print(
        f"torch {torch.__version__}, keras {keras.__version__}, {torch.get_num_threads()} threads"
    )
    steps = candidates(args.image_size, args.batch_size)
    seconds = time_in_turn(steps, args.steps, args.rounds)
    print_ratios(
        f"ResNet-50 train step, {args.image_size}², batch {args.batch_size}",
        seconds,
        args.batch_size,
    )
    if args.profile:
        for label in ("ours, channels_last", "ours, channels_first", "plain PyTorch, NCHW"):
            profile(steps[label], label)
    if args.jit_compile:
        start = time.perf_counter()
        compiled = keras_step("channels_last", args.image_size, args.batch_size, jit_compile=True)
        compiled()
        print(f"\njit_compile=True: first step after {time.perf_counter() - start:.0f} s")
        both = {
            "ours, jit_compile=True": compiled,
            "ours, channels_last": steps["ours, channels_last"],
        }
        both["plain PyTorch, NCHW"] = steps["plain PyTorch, NCHW"]
        print_ratios(
            f"torch.compile, {args.image_size}², batch {args.batch_size}",
            time_in_turn(both, args.steps, args.rounds),
            args.batch_size,
        )
    if args.without_batch_norm:
        split = {
            "ours, channels_last": steps["ours, channels_last"],
            "ours, scale and offset for BatchNormalization": keras_step(
                "channels_last", args.image_size, args.batch_size, batch_norm=False
            ),
            "plain PyTorch, NCHW": steps["plain PyTorch, NCHW"],
            "plain PyTorch, NCHW, scale and offset for BatchNorm2d": torch_step(
                False, args.image_size, args.batch_size, batch_norm=False
            ),
        }
        seconds = time_in_turn(split, args.steps, args.rounds)
        print_ratios(
            f"Without batch normalisation, {args.image_size}², batch {args.batch_size}",
            seconds,
            args.batch_size,
        )
        ours_bn, ours_affine, plain_bn, plain_affine = (1000 * seconds[label] for label in split)
        ours, plain = ours_bn - ours_affine, plain_bn - plain_affine
        print(
            f"\nBatch normalisation a step: ours {ours:.1f} ms, plain PyTorch {plain:.1f} ms;"
            f" without it ours runs at {plain_affine / ours_affine:.2f}x plain PyTorch"
        )


if __name__ == "__main__":
    main()
