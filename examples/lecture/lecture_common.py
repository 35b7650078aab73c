"""Shared by the lecture scripts: the command line, the output folder and
the result files."""

import argparse
import json
import os


def output_paths(out_dir, claim):
    """Creates `out_dir` and returns the paths of `<claim>.png` and `<claim>.json`.

    An existing folder is reused only if it is empty or holds nothing but
    these two files (a previous run of the same script): a user's other files
    are never overwritten.
    """
    own = {f"{claim}.png", f"{claim}.json"}
    if os.path.exists(out_dir):
        if not os.path.isdir(out_dir):
            raise FileExistsError(f"--out {out_dir!r} exists and is not a folder.")
        foreign = sorted(set(os.listdir(out_dir)) - own)
        if foreign:
            raise FileExistsError(
                f"--out {out_dir!r} is not empty and was not written by this "
                f"script (it holds {', '.join(foreign[:5])}); choose an empty "
                "or new folder."
            )
    os.makedirs(out_dir, exist_ok=True)
    return os.path.join(out_dir, f"{claim}.png"), os.path.join(out_dir, f"{claim}.json")


def write_json(path, results):
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")


def report_checks(results, png_path, json_path):
    """Prints where the results went and which of `results["checks"]`
    failed; returns the script's exit status (1 when one failed)."""
    failed = [name for name, ok in results["checks"].items() if not ok]
    checks = "FAILED " + ", ".join(failed) if failed else "all passed"
    print(f"wrote {png_path} and {json_path}; checks: {checks}")
    return 1 if failed else 0


def claim_parser(doc, claim):
    """The argument parser of a claim script: its docstring's first line as
    the description, `--out` (default `lecture_out/<claim>`) and `--quick`."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--out", default=os.path.join("lecture_out", claim))
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes and one seed: checks in seconds that the script runs (CI)",
    )
    return parser


def parse_claim_args(parser, argv, quick):
    """Parses `argv`; under `--quick` the options in `quick` (a dict of
    argument names to values) replace their defaults. Options given on the
    command line still win."""
    args = parser.parse_args(argv)
    if args.quick:
        parser.set_defaults(**quick)
        args = parser.parse_args(argv)
    return args


def save_figure(fig, path):
    """Lays out `fig`, writes it to `path` as a PNG and closes it."""
    import matplotlib.pyplot as plt

    # Room for the suptitle: tight_layout misses it above images (square axes).
    fig.tight_layout(rect=(0, 0, 1, 0.97) if fig.get_suptitle() else None)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def draw_grid(ax, values, title, fmt="{:g}", cmap="viridis", outline=None):
    """Draws the 2D array `values` on `ax` as coloured cells with every value
    written in its cell (row 0 at the top, rows and columns numbered).

    Args:
        ax: a matplotlib axes.
        values: a 2D array.
        title: the panel's title.
        fmt: how a value is written, a `str.format` pattern.
        cmap: the matplotlib colour map of the cells.
        outline: None, or a boolean array of `values`' shape: those cells get
            a red frame.
    """
    import numpy as np
    from matplotlib.patches import Rectangle

    values = np.asarray(values)
    rows, cols = values.shape
    image = ax.imshow(values, cmap=cmap)
    fontsize = max(6, 12 - max(rows, cols) // 2)
    for (row, col), value in np.ndenumerate(values):
        # Black text on the light half of the colour map, white on the dark half.
        shade = image.cmap(image.norm(value))[:3]
        color = "black" if np.dot(shade, (0.299, 0.587, 0.114)) > 0.5 else "white"
        ax.text(
            col, row, fmt.format(value), ha="center", va="center", fontsize=fontsize, color=color
        )
        if outline is not None and outline[row, col]:
            ax.add_patch(
                Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2)
            )
    ax.set_xticks(range(cols))
    ax.set_yticks(range(rows))
    ax.tick_params(labelsize=7)
    ax.set_xlabel("column (pixels)")
    ax.set_ylabel("row (pixels)")
    ax.set_title(title, fontsize=10)


def binomial_filter(x, gain=1.0):
    """Smooths the 2D map `x` with the fixed binomial kernel
    `[1, 2, 1]^T [1, 2, 1] / 16` times `gain`, a keras_cvlec
    `DepthwiseConv2D` with those weights: the filter applied after
    up-sampling. Its frequency response is zero at the Nyquist frequency, so it
    removes any pattern of period 2 (a checkerboard).

    Args:
        x: a 2D NumPy array, at least 3x3.
        gain: the sum of the kernel's weights.

    Returns:
        The filtered map ("valid": 2 rows and columns smaller), a 2D float64
        NumPy array.
    """
    import keras
    import numpy as np

    from keras_cvlec.layers import DepthwiseConv2D

    kernel = np.outer([1.0, 2.0, 1.0], [1.0, 2.0, 1.0]) * gain / 16.0
    layer = DepthwiseConv2D(3, padding="valid", use_bias=False)
    layer.build((1, *x.shape, 1))
    layer.set_weights([kernel[:, :, None, None].astype("float32")])
    y = layer(np.asarray(x, "float32")[None, :, :, None])
    return keras.ops.convert_to_numpy(y)[0, :, :, 0].astype("float64")
