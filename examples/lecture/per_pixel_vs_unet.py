"""Lecture claim 8: per-pixel classification without down-sampling vs FCN vs U-Net.

The lecture: classifying every pixel with convolutions at full resolution
takes "a significant amount of computation"; FCN's coarse scores, up-sampled,
leave the "edges between labels being blurred"; U-Net goes down in resolution
and back up with skips.

Measured on the embedded shapes segmentation data
(`keras_cvlec.data.shapes_dataset`: background, circle, square, triangle;
`--size` px images), four networks of the same depth as a U-Net of `--depth`
down-sampling steps and `--filters` filters (2 (2 depth + 1) 3x3 convolutions
on the way through, each with batch norm and ReLU):

- `per_pixel`: a plain stack of those convolutions at full resolution, all
  `--filters` wide (about the U-Net's compute; receptive field
  1 + 2 x convolutions pixels);
- `per_pixel_unet_widths`: the same stack with the U-Net's widths (`filters`
  doubling to `filters * 2**depth` and back) kept at full resolution: counted
  and timed, not trained (too slow to train here, which is the claim);
- `fcn8s`: `keras_cvlec.build_fcn(backbone="resnet18", variant="8s")`;
- `unet`: `keras_cvlec.build_unet(depth=..., filters=...)` (transposed
  convolutions).

For each: multiply-accumulates of one image (`keras_cvlec.utils.count_macs`;
the per-pixel nets' also by formula) and train throughput (images/s); for
the three trained ones (`--epochs` epochs of `--train-images` images, the
package's segmentation recipe), test pixel accuracy, mean IoU, and mean IoU
restricted to pixels within 1, 2, 4 and 8 px of a true label boundary. The
trained models' throughput is that of their whole training run; the
untrained one's, of `--timing-steps` `train_on_batch` steps after one that
compiles. `--quick` trains nothing, times nothing and leaves the FCN out
(its ResNet-18 alone takes seconds to build on JAX): it checks the counts
and the plumbing.

Command:

    KERAS_BACKEND=tensorflow python examples/lecture/per_pixel_vs_unet.py [--out DIR] [--quick]

Outputs in `--out` (default `lecture_out/per_pixel_vs_unet`):
`per_pixel_vs_unet.png` (MACs, throughput, IoU by distance to a boundary,
example masks) and `per_pixel_vs_unet.json` (the numbers). Exits with
status 1 if a check fails.
"""

import os
import sys
import time

import keras
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import keras_cvlec  # noqa: E402
from keras_cvlec.data import CLASS_NAMES  # noqa: E402
from keras_cvlec.losses import SparseCategoricalCrossentropy  # noqa: E402
from keras_cvlec.utils import count_macs  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lecture_common import (  # noqa: E402
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

CLAIM = "per_pixel_vs_unet"
# The sizes of `--quick` (seconds on a CPU; what CI runs).
QUICK = {
    "size": 32,
    "train_images": 4,
    "test_images": 4,
    "epochs": 0,
    "batch_size": 4,
    "filters": 4,
    "depth": 2,
    "examples": 1,
    "timing_steps": 0,
    "no_fcn": True,
}


def per_pixel_widths(filters, depth, unet_widths):
    """The widths of the per-pixel stack's 3x3 convolutions: the U-Net's
    (two a level, down and back up) or all `filters`."""
    levels = [*range(depth + 1), *reversed(range(depth))]
    return [filters * 2**level if unet_widths else filters for level in levels for _ in (0, 1)]


def build_per_pixel(size, widths, name):
    """3x3 conv + batch norm + ReLU of each width at full resolution, then a
    1x1 convolution to the class scores."""
    inputs = keras.Input((size, size, 3))
    x = inputs
    for index, width in enumerate(widths):
        x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"conv{index}")(x)
        x = keras.layers.BatchNormalization(name=f"norm{index}")(x)
        x = keras.layers.ReLU(name=f"relu{index}")(x)
    outputs = keras.layers.Conv2D(len(CLASS_NAMES), 1, name="head")(x)
    return keras.Model(inputs, outputs, name=name)


def per_pixel_macs(size, widths):
    """Closed form: 9 Cin Cout H W a 3x3 convolution, Cin classes H W the head."""
    channels = [3, *widths]
    convs = sum(9 * c_in * c_out for c_in, c_out in zip(channels, channels[1:]))
    return (convs + widths[-1] * len(CLASS_NAMES)) * size * size


def train_images_per_second(model, images, masks, batch_size, steps):
    """Images a second of `steps` `train_on_batch` steps, after one that
    compiles; None for 0 steps."""
    if not steps:
        return None
    model.compile(optimizer="adam", loss=SparseCategoricalCrossentropy(from_logits=True))
    x, y = images[:batch_size], masks[:batch_size]
    model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return len(x) * steps / (time.perf_counter() - start)


def builders(args):
    shape = (args.size, args.size, 3)
    models = {
        "per_pixel": lambda: build_per_pixel(
            args.size, per_pixel_widths(args.filters, args.depth, False), "per_pixel"
        ),
        "per_pixel_unet_widths": lambda: build_per_pixel(
            args.size, per_pixel_widths(args.filters, args.depth, True), "per_pixel_unet_widths"
        ),
        "fcn8s": lambda: keras_cvlec.build_fcn(
            backbone="resnet18", variant="8s", num_classes=len(CLASS_NAMES), input_shape=shape
        ),
        "unet": lambda: keras_cvlec.build_unet(
            input_shape=shape, num_classes=len(CLASS_NAMES), depth=args.depth, filters=args.filters
        ),
    }
    if args.no_fcn:
        del models["fcn8s"]
    return models


def plot(path, rows, examples, title):
    fig = plt.figure(figsize=(15, 10.5), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 1.15])
    axes = top.subplots(1, 3)
    names = [row["name"].replace("_", "\n", 2) for row in rows]
    colors = ["C0", "C7", "C1", "C2"]
    for ax, key, label, log in (
        (axes[0], "macs", "multiply-accumulates per image", True),
        (axes[1], "train_images_per_s", "train throughput (images/s)", False),
    ):
        values = [row[key] or 0 for row in rows]
        ax.bar(names, values, color=colors[: len(rows)])
        if log:
            ax.set_yscale("log")
        for i, value in enumerate(values):
            text = f"{value:.3g}" if value else "not measured"
            ax.annotate(text, (i, value), ha="center", va="bottom", fontsize=8)
        ax.set_title(label)
        ax.set_ylabel(label)
        ax.tick_params(axis="x", labelsize=8)
    plot_band_iou(axes[2], [row for row in rows if row["scored"]])
    top.suptitle(title)
    bottom.suptitle("test examples (per_pixel_unet_widths not trained, not scored)", fontsize=10)
    plot_mask_examples(bottom, *examples)
    save_figure(fig, path)


def main(argv=None):
    parser = claim_parser(__doc__, CLAIM)
    add_segmentation_arguments(parser)
    parser.add_argument(
        "--timing-steps",
        type=int,
        default=3,
        help="timed train steps of per_pixel_unet_widths (0: not timed, --quick)",
    )
    parser.add_argument(
        "--no-fcn",
        action="store_true",
        help="leave FCN-8s out (its ResNet-18 is the slowest to build; --quick)",
    )
    args = parse_claim_args(parser, argv, QUICK)
    if args.size % 2**args.depth or (args.size < 32 and not args.no_fcn):
        parser.error("--size must be a multiple of 2**depth, and at least 32 with the FCN.")
    png_path, json_path = output_paths(args.out, CLAIM)
    train, test = segmentation_data(args)

    rows, predictions = [], {}
    for name, build in builders(args).items():
        model = seeded(build, args.seed)
        row = {"name": name, "scored": name != "per_pixel_unet_widths"}
        row["macs"] = int(count_macs(model))
        if row["scored"]:
            scores, predictions[name] = train_and_score(model, train, test, args)
            row.update(scores)
        else:
            row.update(
                params=int(model.count_params()),
                train_images_per_s=train_images_per_second(
                    model, *train, args.batch_size, args.timing_steps
                ),
            )
        if name.startswith("per_pixel"):
            widths = per_pixel_widths(args.filters, args.depth, name == "per_pixel_unet_widths")
            row["macs_formula"] = per_pixel_macs(args.size, widths)
            row["receptive_field_px"] = 1 + 2 * len(widths)
        rows.append(row)
        print(f"  {name:22s} {row['macs']:>14,d} MACs", flush=True)

    by_name = {row["name"]: row for row in rows}
    checks, band_fractions = segmentation_checks([row for row in rows if row["scored"]], test[1])
    checks["per_pixel_macs_match_formula"] = all(
        row["macs"] == row["macs_formula"] for row in rows if "macs_formula" in row
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
        "models": rows,
        "macs_over_unet": {row["name"]: row["macs"] / by_name["unet"]["macs"] for row in rows},
        "checks": checks,
    }
    count = args.examples
    plot(
        png_path,
        rows,
        (test[0][:count], test[1][:count], {name: p[:count] for name, p in predictions.items()}),
        f"Per-pixel classification vs FCN-8s vs U-Net: {args.size}x{args.size} shapes, "
        f"{args.train_images} images x {args.epochs} epochs, {results['backend']} backend",
    )
    write_json(json_path, results)

    for row in rows:
        scores = (
            f" accuracy {row['accuracy']:.3f} mean IoU {row['mean_iou']:.3f} "
            f"IoU within 2 px of a boundary {row['band_iou']['2']:.3f}"
            if row["scored"]
            else " (not trained)"
        )
        speed = row["train_images_per_s"]
        print(
            f"{row['name']:22s} {row['macs'] / 1e6:9.1f} M MACs "
            f"(x{results['macs_over_unet'][row['name']]:.2f} U-Net) "
            f"{f'{speed:7.1f}' if speed else '    n/a'} train images/s{scores}"
        )
    return report_checks(results, png_path, json_path)


if __name__ == "__main__":
    sys.exit(main())
