"""Lecture claim 4: depthwise convolution is cheap.

The lecture: "Depthwise convolution is much less computationally demanding."

Measured on a `--size` x `--size` map with `--channels` C channels in and out
(default 56x56x96, the first stage of ConvNeXt-T), for four layers: a dense
7x7 `Conv2D`, a 7x7 `DepthwiseConv2D` followed by a 1x1 pointwise `Conv2D`,
keras_cvlec's `ConvNeXtBlock`, and its `ResNetBottleneckBlock` ("v1.5") of
matched width (C in and out, C / 4 inside):

- parameters (`model.count_params()`, batch-norm moving statistics included)
  and multiply-accumulates of one image (`keras_cvlec.utils.count_macs`),
  both checked against closed-form formulas, and the ratio
  depthwise+pointwise / dense = 1/C + 1/k^2;
- train throughput (images/s) of `--steps` `train_on_batch` steps of a
  one-layer model on the active backend (KERAS_BACKEND), after one untimed
  step that compiles.

Command:

    KERAS_BACKEND=tensorflow python examples/lecture/depthwise.py [--out DIR]

Outputs in `--out` (default `lecture_out/depthwise`): `depthwise.png` (MACs,
parameters, throughput) and `depthwise.json` (the numbers). Exits with
status 1 if a count differs from its formula.
"""

import os
import sys
import time

import keras
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from keras_cvlec.layers import ConvNeXtBlock, ResNetBottleneckBlock  # noqa: E402
from keras_cvlec.utils import count_macs  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lecture_common import (  # noqa: E402
    claim_parser,
    output_paths,
    parse_claim_args,
    report_checks,
    save_figure,
    write_json,
)

CLAIM = "depthwise"
# The sizes of `--quick` (seconds on a CPU; what CI runs).
QUICK = {"channels": 8, "size": 8, "batch_size": 2, "steps": 1}
K = 7


def layers_and_formulas(c, hw):
    """name: (layers, closed-form parameters, closed-form MACs of one image)."""
    f = c // 4
    return {
        "dense_7x7": (
            [keras.layers.Conv2D(c, K, padding="same")],
            K * K * c * c + c,
            K * K * c * c * hw,
        ),
        "depthwise_7x7_pointwise_1x1": (
            [keras.layers.DepthwiseConv2D(K, padding="same"), keras.layers.Conv2D(c, 1)],
            (K * K * c + c) + (c * c + c),
            (K * K * c + c * c) * hw,
        ),
        # Depthwise 7x7 (+bias), LayerNorm (2C), C->4C and 4C->C (+biases), LayerScale.
        "convnext_block": (
            [ConvNeXtBlock()],
            (K * K * c + c) + 2 * c + (4 * c * c + 4 * c) + (4 * c * c + c) + c,
            (K * K * c + 8 * c * c) * hw,
        ),
        # 1x1 C->f, 3x3 f->f, 1x1 f->C, no biases; three batch norms of 4 numbers a channel.
        "resnet_bottleneck_block": (
            [ResNetBottleneckBlock(f, version="v1.5")],
            c * f + 9 * f * f + f * c + 4 * (f + f + c),
            (c * f + 9 * f * f + f * c) * hw,
        ),
    }


def one_layer_model(layers, size, channels):
    inputs = keras.Input((size, size, channels))
    x = inputs
    for layer in layers:
        x = layer(x)
    return keras.Model(inputs, x)


def train_throughput(model, batch_size, steps, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch_size, *model.input_shape[1:])).astype("float32")
    y = np.zeros((batch_size, *model.output_shape[1:]), "float32")
    model.compile(optimizer="sgd", loss="mse")
    model.train_on_batch(x, y)  # compiles
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return batch_size * steps / (time.perf_counter() - start)


def plot(path, rows, title):
    names = [row["name"].replace("_", "\n", 2) for row in rows]
    colors = ["C3", "C0", "C2", "C1"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for ax, key, label, log in (
        (axes[0], "macs", "multiply-accumulates per image", True),
        (axes[1], "params", "parameters", True),
        (axes[2], "train_images_per_s", "train throughput (images/s)", False),
    ):
        values = [row[key] for row in rows]
        ax.bar(names, values, color=colors)
        if log:
            ax.set_yscale("log")
        for i, value in enumerate(values):
            ax.annotate(f"{value:.3g}", (i, value), ha="center", va="bottom", fontsize=8)
        ax.set_title(label)
        ax.tick_params(axis="x", labelsize=7)
    fig.suptitle(title)
    save_figure(fig, path)


def main(argv=None):
    parser = claim_parser(__doc__, CLAIM)
    parser.add_argument("--channels", type=int, default=96)
    parser.add_argument("--size", type=int, default=56)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parse_claim_args(parser, argv, QUICK)
    if args.channels % 4:
        parser.error("--channels must be a multiple of 4 (the bottleneck is C / 4 wide).")
    png_path, json_path = output_paths(args.out, CLAIM)
    keras.utils.set_random_seed(args.seed)

    rows = []
    for name, (layers, params_formula, macs_formula) in layers_and_formulas(
        args.channels, args.size * args.size
    ).items():
        model = one_layer_model(layers, args.size, args.channels)
        rows.append(
            {
                "name": name,
                "params": int(model.count_params()),
                "params_formula": params_formula,
                "macs": int(count_macs(model)),
                "macs_formula": macs_formula,
                "train_images_per_s": train_throughput(
                    model, args.batch_size, args.steps, args.seed
                ),
            }
        )
    by_name = {row["name"]: row for row in rows}
    dense, separable = by_name["dense_7x7"], by_name["depthwise_7x7_pointwise_1x1"]
    convnext, bottleneck = by_name["convnext_block"], by_name["resnet_bottleneck_block"]
    results = {
        "backend": keras.backend.backend(),
        "channels": args.channels,
        "size": args.size,
        "kernel_size": K,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "layers": rows,
        "separable_over_dense_macs": separable["macs"] / dense["macs"],
        "separable_over_dense_expected": 1 / args.channels + 1 / K**2,
        "separable_over_dense_params": separable["params"] / dense["params"],
        "separable_over_dense_throughput": separable["train_images_per_s"]
        / dense["train_images_per_s"],
        "convnext_over_bottleneck_macs": convnext["macs"] / bottleneck["macs"],
        "convnext_over_bottleneck_params": convnext["params"] / bottleneck["params"],
    }
    results["checks"] = {
        "macs_match_formulas": all(row["macs"] == row["macs_formula"] for row in rows),
        "params_match_formulas": all(row["params"] == row["params_formula"] for row in rows),
        # Exact in integers: separable * C * k^2 == dense * (k^2 + C).
        "separable_ratio_is_1_over_c_plus_1_over_k2": separable["macs"] * args.channels * K**2
        == dense["macs"] * (K**2 + args.channels),
    }
    plot(
        png_path,
        rows,
        f"{args.size}x{args.size}x{args.channels}, "
        f"{results['backend']} backend, batch {args.batch_size}",
    )
    write_json(json_path, results)

    print(f"{args.size}x{args.size}x{args.channels} on {results['backend']}:")
    for row in rows:
        print(
            f"  {row['name']:28s} {row['params']:>10,d} params {row['macs']:>15,d} MACs "
            f"{row['train_images_per_s']:8.1f} train images/s"
        )
    print(
        f"depthwise+pointwise / dense: MACs {results['separable_over_dense_macs']:.4f} "
        f"(1/C + 1/k^2 = {results['separable_over_dense_expected']:.4f}), train speed "
        f"x{results['separable_over_dense_throughput']:.1f}; ConvNeXt / bottleneck MACs "
        f"{results['convnext_over_bottleneck_macs']:.2f}"
    )
    return report_checks(results, png_path, json_path)


if __name__ == "__main__":
    sys.exit(main())
