"""Lecture claim 12: U-Net's skips, and how it up-samples.

The lecture: "information ... legitimately thrown away as you are moving
down, but ... needed to get the fine alignments right": U-Net's skip
connections hand each decoder level the encoder's map of the same
resolution.

Measured on the embedded shapes segmentation data
(`keras_cvlec.data.shapes_dataset`: background, circle, square, triangle;
`--size` px images), for four networks trained alike (`--epochs` epochs of
`--train-images` images, the package's segmentation recipe):

- `unet`: `keras_cvlec.build_unet(depth=..., filters=...)`, transposed
  convolutions;
- `no_skips`: the same network without its skips:
  `keras_cvlec.build_autoencoder(depth=..., filters=...)` up to its last
  decoder block, then the U-Net's 1x1 class head (the parameter counts
  differ by exactly the skip halves of the decoders' first convolutions);
- `unet_bilinear` and `unet_max_unpool`: the U-Net with
  `upsampling="bilinear"` and `"max_unpool"` instead of `"transpose"`.

For each: parameters, test pixel accuracy, mean IoU, mean IoU
restricted to pixels within 1, 2, 4 and 8 px of a true label boundary, and
example masks. `--quick` trains nothing (`--epochs 0`): it checks the counts
and the plumbing.

Command:

    KERAS_BACKEND=tensorflow python examples/lecture/unet_skips.py [--out DIR] [--quick]

Outputs in `--out` (default `lecture_out/unet_skips`): `unet_skips.png` (IoU
by distance to a boundary, the scores, example masks) and `unet_skips.json`
(the numbers). Exits with status 1 if a check fails.
"""

import os
import sys

import keras
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import keras_cvlec  # noqa: E402
from keras_cvlec.data import CLASS_NAMES  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lecture_common import (  # noqa: E402
    BAND_WIDTHS,
    add_segmentation_arguments,
    claim_parser,
    output_paths,
    parse_claim_args,
    plot_band_iou,
    plot_mask_examples,
    report_checks,
    save_figure,
    seeded,
    segmentation_checks,
    segmentation_data,
    train_and_score,
    write_json,
)

CLAIM = "unet_skips"
# The sizes of `--quick` (seconds on a CPU; what CI runs).
QUICK = {
    "size": 16,
    "train_images": 4,
    "test_images": 4,
    "epochs": 0,
    "batch_size": 4,
    "filters": 4,
    "depth": 2,
    "examples": 1,
}


def build_no_skips(shape, depth, filters):
    """`build_autoencoder` up to its last decoder block, then a 1x1
    convolution to the class scores: the U-Net without its skips."""
    autoencoder = keras_cvlec.build_autoencoder(input_shape=shape, depth=depth, filters=filters)
    features = autoencoder.get_layer("decoder1_act2").output
    scores = keras.layers.Conv2D(len(CLASS_NAMES), 1, dtype="float32", name="head")(features)
    return keras.Model(autoencoder.input, scores, name="no_skips")


def builders(args):
    shape = (args.size, args.size, 3)
    unet = dict(
        input_shape=shape, num_classes=len(CLASS_NAMES), depth=args.depth, filters=args.filters
    )
    return {
        "unet": lambda: keras_cvlec.build_unet(**unet),
        "no_skips": lambda: build_no_skips(shape, args.depth, args.filters),
        "unet_bilinear": lambda: keras_cvlec.build_unet(upsampling="bilinear", **unet),
        "unet_max_unpool": lambda: keras_cvlec.build_unet(upsampling="max_unpool", **unet),
    }


def plot(path, rows, examples, title):
    fig = plt.figure(figsize=(15, 10.5), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 1.15])
    axes = top.subplots(1, 2, width_ratios=[1.3, 1])
    plot_band_iou(axes[0], rows)
    names = [row["name"] for row in rows]
    keys = ("accuracy", "mean_iou", "band_iou_2px")
    width = 0.8 / len(keys)
    for index, key in enumerate(keys):
        values = [row["band_iou"]["2"] if key == "band_iou_2px" else row[key] for row in rows]
        positions = [i + (index - 1) * width for i in range(len(rows))]
        bars = axes[1].bar(positions, values, width, label=key.replace("_", " "))
        axes[1].bar_label(bars, fmt="%.2f", fontsize=7)
    axes[1].set_xticks(range(len(rows)), names, fontsize=8)
    axes[1].set_ylabel("test score")
    axes[1].set_ylim(0, 1.2)
    axes[1].set_title("pixel accuracy, mean IoU, IoU within 2 px of a boundary")
    axes[1].legend(fontsize=8, loc="upper center", ncol=len(keys))
    top.suptitle(title)
    bottom.suptitle("test examples", fontsize=10)
    plot_mask_examples(bottom, *examples)
    save_figure(fig, path)


def main(argv=None):
    parser = claim_parser(__doc__, CLAIM)
    add_segmentation_arguments(parser)
    args = parse_claim_args(parser, argv, QUICK)
    if args.size % 2**args.depth:
        parser.error("--size must be a multiple of 2**depth (no-skips net has no crop).")
    png_path, json_path = output_paths(args.out, CLAIM)
    train, test = segmentation_data(args)

    rows, predictions = [], {}
    for name, build in builders(args).items():
        row, predictions[name] = train_and_score(seeded(build, args.seed), train, test, args)
        rows.append({"name": name, **row})
        print(f"  {name:16s} mean IoU {row['mean_iou']:.3f}", flush=True)

    by_name = {row["name"]: row for row in rows}
    checks, band_fractions = segmentation_checks(rows, test[1])
    # U-Net's decoder{l}_conv1 reads 2w channels (skip + up-sampled), the
    # no-skips net's w: 9 w * w more weights a level (no biases under batch norm).
    skip_weights = sum(9 * (args.filters * 2**level) ** 2 for level in range(args.depth))
    checks["no_skips_is_unet_minus_skip_weights"] = (
        by_name["unet"]["params"] - by_name["no_skips"]["params"] == skip_weights
    )
    results = {
        "backend": keras.backend.backend(),
        "data": {
            "size": args.size,
            "train_images": args.train_images,
            "test_images": args.test_images,
            "band_fraction_of_pixels": band_fractions,
        },
        "training": {"epochs": args.epochs, "batch_size": args.batch_size, "recipe": "unet"},
        "unet": {"filters": args.filters, "depth": args.depth},
        "skip_weights": skip_weights,
        "models": rows,
        "checks": checks,
    }
    count = args.examples
    plot(
        png_path,
        rows,
        (test[0][:count], test[1][:count], {name: p[:count] for name, p in predictions.items()}),
        f"U-Net with and without skips, and three up-samplings: {args.size}x{args.size} "
        f"shapes, {args.train_images} images x {args.epochs} epochs, "
        f"{results['backend']} backend",
    )
    write_json(json_path, results)

    for row in rows:
        print(
            f"{row['name']:16s} {row['params']:>9,d} params accuracy {row['accuracy']:.3f} mean IoU {row['mean_iou']:.3f} IoU within "
            f"1/2/4/8 px of a boundary "
            + "/".join(f"{row['band_iou'][str(w)]:.3f}" for w in BAND_WIDTHS)
        )
    return report_checks(results, png_path, json_path)


if __name__ == "__main__":
    sys.exit(main())
