"""Lecture claim 10: transposed convolution, its overlaps and its checkerboard.

The lecture: "a stride of 1/2 ... from a 2 x 2 to a 5 x 5 image", where the
kernel's copies overlap, and "visual artifacts ... we apply a filter
afterward".

Measured with keras_cvlec's `Conv2DTranspose` (stride 2, no padding, no
bias) on the active backend (KERAS_BACKEND):

- the 2x2 -> 5x5 case, (2 - 1) * 2 + 3 = 5: with an all-ones 3x3 kernel and
  an all-ones input every output cell counts the kernel copies that overlap
  on it; with the input [[1, 2], [3, 4]] it sums them. Both are checked
  against a NumPy scatter-add (`out[2i + u, 2j + v] += x[i, j] * w[u, v]`),
  and so is a random input and kernel;
- the checkerboard: a constant `--size` x `--size` input through the
  all-ones 3x3 kernel, a random positive 3x3 kernel and the all-ones 4x4
  kernel (4 divisible by the stride). Its amplitude is
  (max - min) / |mean| of the output away from the border, before and after
  a fixed binomial filter [1, 2, 1]^T [1, 2, 1] / 16 (`DepthwiseConv2D`);
- the same up-sampling and filter on a `--image-size` gray image of the
  embedded shapes data (the all-ones 3x3 kernel divided by 9 / 4, its mean
  gain).

Command:

    KERAS_BACKEND=tensorflow python examples/lecture/transposed_conv.py [--out DIR] [--quick]

Outputs in `--out` (default `lecture_out/transposed_conv`):
`transposed_conv.png` (the grids with their numbers, the amplitudes and the
image) and `transposed_conv.json` (the numbers). Exits with status 1 if a
check fails.
"""

import os
import sys

import keras
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from keras_cvlec.data import shapes_dataset  # noqa: E402
from keras_cvlec.layers import Conv2DTranspose  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lecture_common import (  # noqa: E402
    binomial_filter,
    claim_parser,
    draw_grid,
    output_paths,
    parse_claim_args,
    report_checks,
    save_figure,
    write_json,
)

CLAIM = "transposed_conv"
# The sizes of `--quick` (seconds on a CPU; what CI runs).
QUICK = {"image_size": 16}
STRIDE = 2


def transpose(x, kernel):
    """`Conv2DTranspose` (stride 2, "valid", no bias) of the 2D map `x` with
    the 2D `kernel`, as a 2D NumPy array."""
    layer = Conv2DTranspose(1, kernel.shape, strides=STRIDE, padding="valid", use_bias=False)
    layer.build((1, *x.shape, 1))
    layer.set_weights([kernel[:, :, None, None].astype("float32")])
    y = layer(x[None, :, :, None].astype("float32"))
    return keras.ops.convert_to_numpy(y)[0, :, :, 0].astype("float64")


def scatter_add(x, kernel):
    """The NumPy reference: every input cell adds `x[i, j] * kernel` at
    `(STRIDE * i, STRIDE * j)`."""
    (h, w), (kh, kw) = x.shape, kernel.shape
    out = np.zeros(((h - 1) * STRIDE + kh, (w - 1) * STRIDE + kw))
    for (i, j), value in np.ndenumerate(x):
        out[STRIDE * i : STRIDE * i + kh, STRIDE * j : STRIDE * j + kw] += value * kernel
    return out


def inside(y, border):
    """`y` without `border` cells on each side, cut to whole periods of the
    stride (so that every phase of the pattern counts as often)."""
    n = (y.shape[0] - 2 * border) // STRIDE * STRIDE
    return y[border : border + n, border : border + n]


def amplitude(y, border):
    """(max - min) / |mean| of the inside of `y` (see `inside`)."""
    inner = inside(y, border)
    return float((inner.max() - inner.min()) / abs(inner.mean()))


def checkerboard(size, kernel):
    """The transposed convolution of a constant map and its filtered version,
    with their amplitudes away from the border: the kernel size minus 1
    cells, where fewer copies overlap. The same border clears the filtered
    map too ("valid", it is one cell smaller a side and reads one further)."""
    up = transpose(np.ones((size, size)), kernel)
    filtered = binomial_filter(up)
    border = kernel.shape[0] - 1
    return up, filtered, amplitude(up, border), amplitude(filtered, border)


def plot(path, panels, amplitudes, images, title):
    fig, axes = plt.subplots(2, 5, figsize=(23, 11))
    grid_axes = [*axes[0, :4], *axes[1, :2]]
    for ax, (values, panel_title, fmt) in zip(grid_axes, panels):
        draw_grid(ax, values, panel_title, fmt=fmt)
    ax = axes[0, 4]
    names = list(amplitudes)
    positions = np.arange(len(names))
    before = [amplitudes[name]["before_filter"] for name in names]
    after = [amplitudes[name]["after_filter"] for name in names]
    ax.bar(positions - 0.2, before, 0.4, label="transposed conv", color="C3")
    ax.bar(positions + 0.2, after, 0.4, label="+ binomial 3x3 filter", color="C2")
    for x, value in zip([*(positions - 0.2), *(positions + 0.2)], before + after):
        ax.annotate(f"{value:.2g}", (x, value), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(positions, [name.replace("_", " ") for name in names], fontsize=8)
    ax.set_ylim(0, 1.3 * max(before + after))
    ax.set_ylabel("(max - min) / |mean|, constant input")
    ax.set_title("Checkerboard amplitude", fontsize=10)
    ax.legend(fontsize=8)
    for ax, (image, image_title) in zip(axes[1, 2:], images):
        ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0)
        ax.set_title(image_title, fontsize=10)
        ax.set_xlabel("column (pixels)")
        ax.set_ylabel("row (pixels)")
    fig.suptitle(title)
    save_figure(fig, path)


def main(argv=None):
    parser = claim_parser(__doc__, CLAIM)
    parser.add_argument("--size", type=int, default=4, help="the constant input's size")
    parser.add_argument("--image-size", type=int, default=32, help="the shapes image's size")
    parser.add_argument("--seed", type=int, default=0)
    args = parse_claim_args(parser, argv, QUICK)
    if args.size < 4:
        parser.error(f"--size must be at least 4 (an inside away from the border). Got {args.size}")
    png_path, json_path = output_paths(args.out, CLAIM)
    rng = np.random.default_rng(args.seed)

    ones3 = np.ones((3, 3))
    counts = transpose(np.ones((2, 2)), ones3)
    small = np.array([[1.0, 2.0], [3.0, 4.0]])
    summed = transpose(small, ones3)
    random_x, random_kernel = rng.standard_normal((3, 4)), rng.standard_normal((3, 3))
    random_error = float(
        np.max(np.abs(transpose(random_x, random_kernel) - scatter_add(random_x, random_kernel)))
    )

    kernels = {
        "ones_3x3": ones3,
        "random_3x3": rng.uniform(0.0, 1.0, (3, 3)),
        "ones_4x4": np.ones((4, 4)),
    }
    boards = {name: checkerboard(args.size, kernel) for name, kernel in kernels.items()}
    amplitudes = {
        name: {"before_filter": before, "after_filter": after}
        for name, (_, _, before, after) in boards.items()
    }
    ones_up, ones_filtered = boards["ones_3x3"][:2]

    images, _ = shapes_dataset(
        "test", num_images=1, image_size=args.image_size, task="classification", seed=args.seed
    )
    image = images[0].mean(-1)
    image_up = transpose(image, ones3 / (ones3.sum() / STRIDE**2))
    image_filtered = binomial_filter(image_up)

    results = {
        "backend": keras.backend.backend(),
        "stride": STRIDE,
        "output_shape_2x2_kernel_3x3": list(counts.shape),
        "overlap_counts": counts.tolist(),
        "input_1234": small.tolist(),
        "output_1234": summed.tolist(),
        "random_vs_numpy_max_abs_error": float(random_error),
        "constant_input_size": args.size,
        "checkerboard_amplitude": amplitudes,
        "ones_3x3_constant_output": ones_up.tolist(),
        "ones_3x3_filtered_output": ones_filtered.tolist(),
        "image_size": args.image_size,
        "image_up_shape": list(image_up.shape),
        "image_neighbour_difference": {
            # Mean |difference| of horizontal neighbours away from the border:
            # the checkerboard shows as a large one on a smooth image.
            "transposed": float(np.abs(np.diff(image_up[2:-2, 2:-2], axis=1)).mean()),
            "filtered": float(np.abs(np.diff(image_filtered[1:-1, 1:-1], axis=1)).mean()),
        },
    }
    results["checks"] = {
        "output_is_5x5": counts.shape == (5, 5),
        "overlap_counts_match_numpy": bool(
            np.array_equal(counts, scatter_add(np.ones((2, 2)), ones3))
        ),
        "output_1234_matches_numpy": bool(
            np.allclose(summed, scatter_add(small, ones3), atol=1e-5)
        ),
        "random_matches_numpy": random_error < 1e-4,
        # The binomial filter sums to 1: it keeps the mean of the inside.
        "filter_keeps_the_mean": bool(
            np.allclose(inside(ones_filtered, 2), inside(ones_up, 2).mean(), atol=1e-5)
        ),
        "image_up_size_is_2s_plus_1": image_up.shape == (2 * args.image_size + 1,) * 2,
    }
    panels = [
        (small, "input 2x2", "{:g}"),
        (ones3, "kernel 3x3 (all ones), stride 2", "{:g}"),
        (counts, "all-ones input: overlap counts (5x5)", "{:g}"),
        (summed, "input [[1,2],[3,4]]: overlaps summed", "{:g}"),
        (ones_up, f"constant {args.size}x{args.size} input, kernel 3x3", "{:g}"),
        (ones_filtered, "after the binomial 3x3 filter", "{:.2f}"),
    ]
    image_panels = [
        (image, f"shapes image {args.image_size}x{args.image_size} (gray)"),
        (image_up, f"transposed conv, stride 2: {image_up.shape[0]}x{image_up.shape[1]}"),
        (image_filtered, "+ binomial 3x3 filter"),
    ]
    plot(
        png_path,
        panels,
        amplitudes,
        image_panels,
        f"Transposed convolution (stride 2, no padding), {results['backend']} backend",
    )
    write_json(json_path, results)

    print(f"2x2 -> {counts.shape[0]}x{counts.shape[1]}, overlap counts:\n{counts.astype(int)}")
    print(f"random input and kernel vs NumPy scatter-add: max error {random_error:.1e}")
    for name, amp in amplitudes.items():
        print(
            f"checkerboard amplitude {name}: {amp['before_filter']:.3g} -> "
            f"{amp['after_filter']:.2g} after the binomial filter"
        )
    return report_checks(results, png_path, json_path)


if __name__ == "__main__":
    sys.exit(main())
