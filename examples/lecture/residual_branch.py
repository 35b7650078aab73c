"""Lecture claim 2: what goes in the residual block.

The lecture: "the one on the right can express the negative outputs" (a
branch ending in a ReLU can only add, one ending in a convolution can also
subtract).

Two residual toy CNNs (`lecture_common.toy_cnn`) of `--depth` blocks
`x + branch(x)`, on the embedded shapes data's classification task:

- `conv_relu`: branch = 3x3 convolution, batch norm, ReLU;
- `conv_relu_conv1x1`: the same, then a 1x1 convolution.

Measured:

- what the branches add on the test images (inference mode), at
  initialisation and after training: the fraction of negative values, the
  minimum and the maximum, per block and overall, and their histogram;
- training with `--seeds` seeds each (Adam, `--epochs` epochs): training loss
  and test accuracy after every epoch, final test accuracy's mean and spread.

Command:

    KERAS_BACKEND=tensorflow python examples/lecture/residual_branch.py [--out DIR] [--quick]

Outputs in `--out` (default `lecture_out/residual_branch`):
`residual_branch.png` (histogram of the added values, negative fraction per
block, training loss and test accuracy) and `residual_branch.json` (the
numbers). Exits with status 1 if a check fails.
"""

import os
import sys

import keras
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lecture_common import (  # noqa: E402
    add_toy_training_arguments,
    claim_parser,
    fit_classifier,
    output_paths,
    parse_claim_args,
    report_checks,
    save_figure,
    shapes_classification,
    toy_cnn,
    write_json,
)

CLAIM = "residual_branch"
# The sizes of `--quick` (seconds on a CPU; what CI runs).
QUICK = {
    "depth": 2,
    "width": 4,
    "image_size": 16,
    "train_images": 8,
    "test_images": 8,
    "epochs": 1,
    "batch_size": 8,
    "seeds": 1,
    "eager": True,
}
# The two branches compared (of `lecture_common.VARIANTS`).
VARIANTS = ("conv_relu", "conv_relu_conv1x1")
BINS = 60


def branch_outputs(model, depth, x):
    """What every block adds on `x` (inference mode), and the largest
    difference between a block's output and its input plus that value (0 if
    the probe reads the right tensors)."""
    switches = [model.get_layer(f"block{i}_switch") for i in range(1, depth + 1)]
    probe = keras.Model(model.input, [t for s in switches for t in (*s.input, s.output)])
    values = [keras.ops.convert_to_numpy(t) for t in probe(x, training=False)]
    inputs, branches, outputs = values[0::3], values[1::3], values[2::3]
    mismatch = max(
        float(np.max(np.abs(out - (inp + b)))) for inp, b, out in zip(inputs, branches, outputs)
    )
    return branches, mismatch


def value_stats(branches):
    """Negative fraction, minimum and maximum, overall and per block."""
    flat = np.concatenate([b.ravel() for b in branches])
    return {
        "fraction_negative": float(np.mean(flat < 0)),
        "min": float(flat.min()),
        "max": float(flat.max()),
        "per_block": [
            {
                "fraction_negative": float(np.mean(b < 0)),
                "min": float(b.min()),
                "max": float(b.max()),
            }
            for b in branches
        ],
    }


def plot(path, results, histograms, edges, title):
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.6))
    depth = results["depth"]
    for k, name in enumerate(VARIANTS):
        row = results["branches"][name]
        color = f"C{k}"
        trained = row["trained"]
        axes[0].stairs(
            histograms[name] + 1, edges, color=color, label=f"{name} (min {trained['min']:.2f})"
        )
        blocks = np.arange(1, depth + 1)
        axes[1].bar(
            blocks + (k - 0.5) * 0.4,
            [b["fraction_negative"] for b in trained["per_block"]],
            width=0.4,
            color=color,
            label=name,
        )
        losses = np.array([s["history"]["loss"] for s in row["seeds"]])
        accuracies = np.array([s["history"]["val_accuracy"] for s in row["seeds"]])
        epochs = np.arange(1, losses.shape[1] + 1)
        for ax, curves in ((axes[2], losses), (axes[3], accuracies)):
            ax.plot(epochs, curves.mean(0), color=color, marker="o", markersize=3, label=name)
            ax.fill_between(epochs, curves.min(0), curves.max(0), color=color, alpha=0.2)
    axes[1].text(
        0.02,
        0.93,
        f"{VARIANTS[0]}: {results['branches'][VARIANTS[0]]['trained']['fraction_negative']:.0%} "
        "in every block",
        transform=axes[1].transAxes,
        ha="left",
        color="C0",
        fontsize=9,
    )
    axes[0].axvline(0, color="gray", linewidth=0.8)
    axes[0].set_yscale("log")
    # Headroom above the histograms for the legend.
    axes[0].set_ylim(0.7, 1e3 * max(int(h.max()) + 1 for h in histograms.values()))
    axes[0].set_title("Values the branches add (trained, test images)")
    axes[0].set_xlabel("branch output value")
    axes[0].set_ylabel("count + 1 (log)")
    axes[1].set_title("Fraction of negative values added, per block")
    axes[1].set_xlabel("block, from the input")
    axes[1].set_ylabel("fraction < 0")
    axes[1].set_ylim(0, 1)
    axes[1].set_xticks(np.arange(1, depth + 1))
    seeds = len(results["branches"][VARIANTS[0]]["seeds"])
    axes[2].set_title(f"Training loss (mean, min-max band of {seeds} seeds)")
    axes[2].set_ylabel("cross-entropy")
    axes[3].set_title(f"Test accuracy (mean, min-max band of {seeds} seeds)")
    axes[3].set_ylabel("accuracy (3 classes, chance 1/3)")
    for ax in axes[2:]:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes[0].legend(fontsize=8, loc="upper left")
    axes[1].legend(fontsize=8, loc="upper right")
    for ax in axes[2:]:
        ax.legend(fontsize=8)
    fig.suptitle(title)
    save_figure(fig, path)


def main(argv=None):
    parser = claim_parser(__doc__, CLAIM)
    parser.add_argument("--depth", type=int, default=8)
    add_toy_training_arguments(parser, train_images=1024, test_images=256, epochs=8, batch_size=32)
    parser.add_argument("--seeds", type=int, default=3)
    args = parse_claim_args(parser, argv, QUICK)
    png_path, json_path = output_paths(args.out, CLAIM)
    data = shapes_classification(args.train_images, args.test_images, args.image_size)
    x_test = data[1][0]

    results = {
        "backend": keras.backend.backend(),
        **{k: v for k, v in vars(args).items() if k not in ("out", "quick", "eager")},
        "branches": {},
    }
    added, mismatches = {}, []
    for name in VARIANTS:
        row = {"seeds": []}
        for seed in range(args.seeds):
            keras.utils.set_random_seed(seed)
            model = toy_cnn(
                args.depth,
                residual=True,
                branch=name,
                width=args.width,
                image_size=args.image_size,
            )
            at_init, mismatch = branch_outputs(model, args.depth, x_test)
            mismatches.append(mismatch)
            history = fit_classifier(
                model,
                data,
                epochs=args.epochs,
                batch_size=args.batch_size,
                learning_rate=args.learning_rate,
                eager=args.eager,
            )
            row["seeds"].append({"seed": seed, "history": history})
            if seed == 0:
                trained, mismatch = branch_outputs(model, args.depth, x_test)
                mismatches.append(mismatch)
                row["params"] = int(model.count_params())
                row["at_init"] = value_stats(at_init)
                row["trained"] = value_stats(trained)
                added[name] = np.concatenate([b.ravel() for b in trained])
        final = [s["history"]["val_accuracy"][-1] for s in row["seeds"]]
        row["final_test_accuracy"] = {
            "mean": float(np.mean(final)),
            "min": float(np.min(final)),
            "max": float(np.max(final)),
        }
        row["final_training_loss_mean"] = float(
            np.mean([s["history"]["loss"][-1] for s in row["seeds"]])
        )
        results["branches"][name] = row
        print(
            f"{name:18s} adds values in [{row['trained']['min']:.3f}, {row['trained']['max']:.3f}], "
            f"{row['trained']['fraction_negative']:.1%} negative (at init "
            f"{row['at_init']['fraction_negative']:.1%}); final test accuracy "
            f"{row['final_test_accuracy']['mean']:.3f} (min {row['final_test_accuracy']['min']:.3f}, "
            f"max {row['final_test_accuracy']['max']:.3f}, {args.seeds} seeds)",
            flush=True,
        )
    relu, conv = (results["branches"][name] for name in VARIANTS)
    everything = np.concatenate(list(added.values()))
    edges = np.linspace(everything.min(), everything.max(), BINS + 1)
    histograms = {name: np.histogram(values, edges)[0] for name, values in added.items()}
    results["trained_histogram"] = {
        "edges": edges.tolist(),
        **{name: counts.tolist() for name, counts in histograms.items()},
    }
    w, d = args.width, args.depth
    results["probe_max_mismatch"] = max(mismatches)
    results["checks"] = {
        "probe_reads_what_the_blocks_add": results["probe_max_mismatch"] < 1e-4,
        "conv_relu_branch_never_negative": all(
            relu[when]["fraction_negative"] == 0 and relu[when]["min"] >= 0
            for when in ("at_init", "trained")
        ),
        "conv1x1_branch_has_negative_values": all(
            conv[when]["fraction_negative"] > 0 for when in ("at_init", "trained")
        ),
        "conv1x1_adds_its_parameters": conv["params"] - relu["params"] == d * (w * w + w),
        "one_loss_an_epoch_all_finite": all(
            len(s["history"]["loss"]) == args.epochs and np.all(np.isfinite(s["history"]["loss"]))
            for row in (relu, conv)
            for s in row["seeds"]
        ),
    }
    plot(
        png_path,
        results,
        histograms,
        edges,
        f"Residual branches x + F(x), {d} blocks of width {w}, shapes "
        f"{args.image_size}x{args.image_size}, {results['backend']} backend",
    )
    write_json(json_path, results)
    return report_checks(results, png_path, json_path)


if __name__ == "__main__":
    sys.exit(main())
