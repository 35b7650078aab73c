"""Lecture claim 11: max-unpooling puts each maximum back where it was.

The lecture: "remember which element was the max and stick it in the same
place", zeros elsewhere, then a filter; against "filling in the same
number".

Measured with keras_cvlec's `MaxPoolingWithArgmax2D` and `MaxUnpooling2D`
(2x2 windows, stride 2) on the active backend (KERAS_BACKEND):

- a `--size` x `--size` map holding 1 .. size^2 in a random order (no
  ties): the pooled map, the indices `y * width + x` of the maxima and the
  unpooled map, each checked against NumPy; the unpooled map's zeros (3 in
  every 4 cells) and its sum (the pooled map's);
- "filling in the same number": 2x2 average pooling followed by nearest
  up-sampling (`keras.layers.AveragePooling2D`, `UpSampling2D`), which keeps
  the map's mean;
- a fixed binomial 3x3 filter after each (the map mirrored around it;
  gain 4 after max-unpooling, the pool's area, to make up for its zeros,
  gain 1 after nearest up-sampling);
- the same on two `--image-size` gray images: one of the embedded shapes
  data (smooth, textured) and sparse bright dots (at most one in a 2x2
  window, where max-unpooling is exact): the mean squared error of each
  reconstruction against its image.

Command:

    KERAS_BACKEND=tensorflow python examples/lecture/unpooling.py [--out DIR] [--quick]

Outputs in `--out` (default `lecture_out/unpooling`): `unpooling.png` (the
grids with their numbers and the image) and `unpooling.json` (the numbers).
Exits with status 1 if a check fails.
"""

import os
import sys

import keras
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from keras_cvlec.data import shapes_dataset  # noqa: E402
from keras_cvlec.layers import MaxPoolingWithArgmax2D, MaxUnpooling2D  # noqa: E402

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

CLAIM = "unpooling"
# The sizes of `--quick` (seconds on a CPU; what CI runs).
QUICK = {"size": 4, "image_size": 16}
POOL = 2
# The maps of `up_and_down` compared with an image, and their names.
RECONSTRUCTIONS = {
    "unpooled": "max-unpooled (zeros)",
    "unpooled_filtered": "max-unpooled + filter",
    "nearest": "average, same number",
    "nearest_filtered": "average, same number + filter",
}


def up_and_down(maps):
    """Every map of the comparison for each 2D map of `maps` (all of one
    size): a dict of lists of 2D arrays, one a map. One compiled model makes
    them (op-by-op eager calls of the pooling layers are slow on JAX)."""
    size = maps[0].shape
    inputs = keras.Input((*size, 1))
    pooled, indices = MaxPoolingWithArgmax2D(POOL)(inputs)
    averaged = keras.layers.AveragePooling2D(POOL)(inputs)
    outputs = {
        "pooled": pooled,
        "indices": indices,
        "unpooled": MaxUnpooling2D(POOL)([pooled, indices]),
        "averaged": averaged,
        "nearest": keras.layers.UpSampling2D(POOL)(averaged),
    }
    model = keras.Model(inputs, outputs)
    results = model.predict_on_batch(np.stack(maps).astype("float32")[..., None])
    results = {name: [value[..., 0] for value in results[name]] for name in outputs}
    results["unpooled_filtered"] = [smooth(x, gain=POOL * POOL) for x in results["unpooled"]]
    results["nearest_filtered"] = [smooth(x) for x in results["nearest"]]
    return results


def smooth(x, gain=1.0):
    """The binomial filter, keeping the size: `x` padded by its mirror image
    (without the edge, so a sparse map stays as sparse in the padding)."""
    return binomial_filter(np.pad(x, 1, mode="reflect"), gain=gain)


def sparse_dots(size, rng):
    """A dark image with a bright dot in one of every 4 2x2 windows, anywhere
    in its window: max-unpooling puts every dot back exactly."""
    windows = size // POOL
    dots = np.zeros((size, size))
    for i, j in zip(*np.nonzero(rng.uniform(size=(windows, windows)) < 0.25)):
        dy, dx = rng.integers(POOL, size=2)
        dots[POOL * i + dy, POOL * j + dx] = rng.uniform(0.5, 1.0)
    return dots


def numpy_max_unpooling(x):
    """The NumPy reference: (pooled, indices, unpooled) of 2x2 max pooling."""
    h, w = x.shape
    windows = x.reshape(h // POOL, POOL, w // POOL, POOL).transpose(0, 2, 1, 3)
    windows = windows.reshape(h // POOL, w // POOL, POOL * POOL)
    arg = windows.argmax(-1)
    rows = np.arange(h // POOL)[:, None] * POOL + arg // POOL
    cols = np.arange(w // POOL)[None, :] * POOL + arg % POOL
    unpooled = np.zeros_like(x)
    unpooled[rows, cols] = x[rows, cols]
    return windows.max(-1), rows * w + cols, unpooled


def plot(path, grids, mse, images, title):
    fig, axes = plt.subplots(4, 5, figsize=(23, 20))
    for ax, (values, panel_title, fmt, outline) in zip(
        [*axes[0], axes[1, 1], axes[1, 3], axes[1, 4]], grids
    ):
        draw_grid(ax, values, panel_title, fmt=fmt, outline=outline)
    axes[1, 2].axis("off")
    ax = axes[1, 0]
    names = list(RECONSTRUCTIONS.values())
    positions = np.arange(len(names))
    for offset, (image_name, errors) in zip((-0.2, 0.2), mse.items()):
        values = [errors[name] for name in names]
        ax.barh(positions + offset, values, 0.4, label=f"{image_name} image")
        for position, value in zip(positions + offset, values):
            ax.annotate(f" {value:.4f}", (value, position), va="center", fontsize=8)
    ax.set_yticks(positions, [name.replace(", ", ",\n") for name in names], fontsize=8)
    ax.set_xlim(0, 1.35 * max(max(errors.values()) for errors in mse.values()))
    ax.invert_yaxis()
    ax.set_xlabel("mean squared error vs the image (intensity in [0, 1])²")
    ax.set_title("Images (bottom rows): 2x2 pooling, then up-sampling", fontsize=10)
    ax.legend(fontsize=8)
    for ax, (image, image_title) in zip(axes[2:].flat, images):
        ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0)
        ax.set_title(image_title, fontsize=10)
        ax.set_xlabel("column (pixels)")
        ax.set_ylabel("row (pixels)")
    fig.suptitle(title)
    save_figure(fig, path)


def main(argv=None):
    parser = claim_parser(__doc__, CLAIM)
    parser.add_argument("--size", type=int, default=6, help="the small map's size (even)")
    parser.add_argument("--image-size", type=int, default=32, help="the shapes image's size")
    parser.add_argument("--seed", type=int, default=0)
    args = parse_claim_args(parser, argv, QUICK)
    for name, value in (("--size", args.size), ("--image-size", args.image_size)):
        if value < 2 or value % POOL:
            parser.error(f"{name} must be an even number >= 2. Got {value}")
    png_path, json_path = output_paths(args.out, CLAIM)
    rng = np.random.default_rng(args.seed)

    x = rng.permutation(args.size * args.size).reshape(args.size, args.size) + 1.0
    maps = {name: values[0] for name, values in up_and_down([x]).items()}
    pooled_ref, indices_ref, unpooled_ref = numpy_max_unpooling(x)
    images, _ = shapes_dataset(
        "test", num_images=1, image_size=args.image_size, task="classification", seed=args.seed
    )
    test_images = {"shapes": images[0].mean(-1), "dots": sparse_dots(args.image_size, rng)}
    image_maps = up_and_down(list(test_images.values()))
    reconstructions, mse = {}, {}
    for i, (image_name, image) in enumerate(test_images.items()):
        reconstructions[image_name] = {
            name: image_maps[key][i] for key, name in RECONSTRUCTIONS.items()
        }
        mse[image_name] = {
            name: float(np.mean((value - image) ** 2))
            for name, value in reconstructions[image_name].items()
        }

    results = {
        "backend": keras.backend.backend(),
        "pool_size": POOL,
        "input": x.tolist(),
        **{name: value.tolist() for name, value in maps.items()},
        "unpooled_zero_fraction": float(np.mean(maps["unpooled"] == 0)),
        "image_size": args.image_size,
        "image_mse": mse,
    }
    results["checks"] = {
        "pooled_matches_numpy": bool(np.array_equal(maps["pooled"], pooled_ref)),
        "indices_match_numpy": bool(np.array_equal(maps["indices"], indices_ref)),
        "unpooled_matches_numpy": bool(np.array_equal(maps["unpooled"], unpooled_ref)),
        "unpooled_zeros_are_3_in_4": results["unpooled_zero_fraction"] == 1 - 1 / POOL**2,
        "unpooled_sum_is_pooled_sum": float(maps["unpooled"].sum()) == float(maps["pooled"].sum()),
        "nearest_keeps_the_mean": bool(np.isclose(maps["nearest"].mean(), x.mean())),
        "image_maps_keep_the_size": all(
            value.shape == test_images[image_name].shape
            for image_name, maps_of_image in reconstructions.items()
            for value in maps_of_image.values()
        ),
        # One dot at most in a window: max-unpooling gives the image back.
        "dots_max_unpooled_exactly": mse["dots"][RECONSTRUCTIONS["unpooled"]] < 1e-12,
    }
    grids = [
        (x, "input (maxima framed)", "{:g}", unpooled_ref != 0),
        (maps["pooled"], "2x2 max pooling", "{:g}", None),
        (maps["indices"], "indices of the maxima (y * width + x)", "{:d}", None),
        (maps["unpooled"], "max-unpooled: each max in its place", "{:g}", None),
        (maps["unpooled_filtered"], "max-unpooled + binomial filter (gain 4)", "{:.1f}", None),
        (maps["averaged"], "2x2 average pooling", "{:.2f}", None),
        (maps["nearest"], "nearest up-sampling: the same number", "{:.2f}", None),
        (maps["nearest_filtered"], "nearest + binomial filter (gain 1)", "{:.1f}", None),
    ]
    images = []
    for image_name, image in test_images.items():
        images.append((image, f"{image_name} image {args.image_size}x{args.image_size} (gray)"))
        images += [
            (value, f"{name}: MSE {mse[image_name][name]:.4f}")
            for name, value in reconstructions[image_name].items()
        ]
    plot(
        png_path,
        grids,
        mse,
        images,
        f"Max-unpooling vs filling in the same number (2x2 windows), {results['backend']} backend",
    )
    write_json(json_path, results)

    print(f"input:\n{x.astype(int)}\nindices:\n{maps['indices']}")
    print(f"max-unpooled:\n{maps['unpooled'].astype(int)}")
    print(f"zeros {results['unpooled_zero_fraction']:.2f} of the max-unpooled map")
    for image_name, errors in mse.items():
        for name, value in errors.items():
            print(f"{image_name} image, {name}: MSE {value:.4f}")
    return report_checks(results, png_path, json_path)


if __name__ == "__main__":
    sys.exit(main())
