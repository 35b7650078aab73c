"""Lecture claim 3: a trained ResNet survives losing a block.

The lecture: "zeroing out the entire block has no harmful effect" (the
observation behind stochastic depth: a residual block refines its input, so
the network still works without it).

Three toy CNNs of `--depth` blocks (`lecture_common.toy_cnn`, pre-activation
blocks of batch norm, ReLU and a 3x3 convolution) trained on the embedded
shapes data's classification task (Adam, `--epochs` epochs):

- residual (`x + block(x)`);
- residual trained with stochastic depth (`keras_cvlec.layers.StochasticDepth`
  on every branch, its rate growing linearly from 0 at the first block to
  `--drop-path-rate` at the last, as `keras_cvlec.build_resnet` does);
- plain (`block(x)`, the same layers without the skips).

Then each block in turn is removed at inference (its `BlockSwitch` turned
off: a residual block returns its input, i.e. its branch is zeroed; a plain
block is skipped) and the test accuracy measured.

Command:

    KERAS_BACKEND=tensorflow python examples/lecture/stochastic_depth.py [--out DIR] [--quick]

Outputs in `--out` (default `lecture_out/stochastic_depth`):
`stochastic_depth.png` (test accuracy against the removed block) and
`stochastic_depth.json` (the numbers). Exits with status 1 if a check fails.
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

CLAIM = "stochastic_depth"
# The sizes of `--quick` (seconds on a CPU; what CI runs).
QUICK = {
    "depth": 2,
    "width": 4,
    "image_size": 16,
    "train_images": 8,
    "test_images": 8,
    "epochs": 1,
    "batch_size": 8,
    "eager": True,
}


def remove_block(model, depth, removed):
    """Turns block `removed` off and every other block on (`removed=None`:
    all on)."""
    for i in range(1, depth + 1):
        model.get_layer(f"block{i}_switch").on.assign(0.0 if i == removed else 1.0)


def removal_accuracies(model, depth, x, y):
    """Test accuracy with every block, then with each block removed in turn;
    and the smallest change of the logits a removal makes (0 if a switch
    did nothing) and the largest after turning every block back on (0 if
    removals leave nothing behind)."""

    def logits():
        return keras.ops.convert_to_numpy(model(x, training=False))

    remove_block(model, depth, None)
    full_logits = logits()
    accuracies, changes = [], []
    for i in range(1, depth + 1):
        remove_block(model, depth, i)
        removed = logits()
        accuracies.append(float(np.mean(removed.argmax(1) == y)))
        changes.append(float(np.max(np.abs(removed - full_logits))))
    remove_block(model, depth, None)
    restore_error = float(np.max(np.abs(logits() - full_logits)))
    full = float(np.mean(full_logits.argmax(1) == y))
    return full, accuracies, min(changes), restore_error


def plot(path, runs, depth, title):
    fig, ax = plt.subplots(figsize=(13, 5))
    blocks = np.arange(1, depth + 1)
    for k, run in enumerate(runs):
        color = f"C{k}"
        ax.plot(
            blocks,
            run["removed_block_accuracy"],
            color=color,
            marker="o",
            label=f"{run['name']}: block removed",
        )
        ax.axhline(
            run["full_accuracy"],
            color=color,
            linestyle="--",
            linewidth=1,
            label=f"{run['name']}: all blocks ({run['full_accuracy']:.3f})",
        )
    ax.axhline(1 / 3, color="gray", linestyle=":", label="chance (1/3)")
    ax.set_xticks(blocks)
    ax.set_xlabel("block removed at inference, from the input")
    ax.set_ylabel("test accuracy (3 classes)")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    save_figure(fig, path)


def main(argv=None):
    parser = claim_parser(__doc__, CLAIM)
    parser.add_argument("--depth", type=int, default=12)
    add_toy_training_arguments(parser, train_images=2048, test_images=512, epochs=10, batch_size=16)
    parser.add_argument("--drop-path-rate", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parse_claim_args(parser, argv, QUICK)
    png_path, json_path = output_paths(args.out, CLAIM)
    data = shapes_classification(args.train_images, args.test_images, args.image_size)
    x_test, y_test = data[1]

    runs, switch_changes, restore_errors = [], [], []
    for name, residual, rate in (
        ("residual", True, 0.0),
        (f"residual, stochastic depth {args.drop_path_rate:g}", True, args.drop_path_rate),
        ("plain", False, 0.0),
    ):
        keras.utils.set_random_seed(args.seed)
        model = toy_cnn(
            args.depth,
            residual=residual,
            width=args.width,
            image_size=args.image_size,
            drop_path_rate=rate,
        )
        history = fit_classifier(
            model,
            data,
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            eager=args.eager,
        )
        full, accuracies, change, restore_error = removal_accuracies(
            model, args.depth, x_test, y_test
        )
        switch_changes.append(change)
        restore_errors.append(restore_error)
        runs.append(
            {
                "name": name,
                "residual": residual,
                "drop_path_rate": rate,
                "history": history,
                "full_accuracy": full,
                "removed_block_accuracy": accuracies,
                "mean_drop": full - float(np.mean(accuracies)),
                "worst_drop": full - min(accuracies),
            }
        )
        print(
            f"{name:32s} test accuracy {full:.3f}; one block removed: mean "
            f"{np.mean(accuracies):.3f}, worst {min(accuracies):.3f} (block "
            f"{int(np.argmin(accuracies)) + 1})",
            flush=True,
        )
    results = {
        "backend": keras.backend.backend(),
        **{k: v for k, v in vars(args).items() if k not in ("out", "quick", "eager")},
        "runs": runs,
        "smallest_logit_change_of_a_removal": min(switch_changes),
        "largest_logit_error_after_restoring": max(restore_errors),
    }
    results["checks"] = {
        "every_removal_changes_the_logits": results["smallest_logit_change_of_a_removal"] > 0,
        "restoring_all_blocks_gives_the_same_logits": results["largest_logit_error_after_restoring"]
        < 1e-5,
        "one_accuracy_a_block": all(len(r["removed_block_accuracy"]) == args.depth for r in runs),
        "one_loss_an_epoch_all_finite": all(
            len(r["history"]["loss"]) == args.epochs and np.all(np.isfinite(r["history"]["loss"]))
            for r in runs
        ),
    }
    plot(
        png_path,
        runs,
        args.depth,
        f"Removing one block of a trained {args.depth}-block CNN (shapes "
        f"{args.image_size}x{args.image_size}, {results['backend']} backend)",
    )
    write_json(json_path, results)
    return report_checks(results, png_path, json_path)


if __name__ == "__main__":
    sys.exit(main())
