"""Generated data sets that judge the training defaults: none looks like the
embedded shapes data (one to three filled circles, squares or triangles on a
smooth background) or sklearn's 8x8 digits. They come in groups
(`GROUPS`, each `Dataset`'s `group`):

- `round1`: textures, polygons, cells, voronoi, roads. Used while revising
  the defaults (2026-12-01), so no longer held out; kept for reference.
- `heldout2`: leaves, fabrics, glyphs, fields, cracks: parametric leaf
  outlines with veins over soft scenes, noise filtered to four spectra,
  type rendered over clutter, aerial farmland with void on field borders
  only, and binary thin cracks (~2 % of the pixels). Held out for a
  verdict on the defaults; now used while revising them, so no longer held
  out.
- `heldout3` (`DEFAULT_GROUP`): gauges, vehicles, spectrograms, clouds,
  nuclei. They played no part in choosing the defaults and are unlike
  round 1 and heldout2 too: the needle angle of an analog dial, vehicles
  seen from above at any rotation, signals shown as spectrograms, satellite
  scenes of land, water, clouds and their shadows, and crowded nuclei with
  void on a ring around each.

Each data set is drawn with NumPy and Pillow and written to disk as a user
would have it, in the folder layouts `keras_cvlec.data.folders` reads:

    NAME/train/<class>/<image>.png      classification: class sub-folders
    NAME/train/images/<stem>.jpg|png    segmentation: images, and 8-bit PNG
    NAME/train/masks/<stem>.png         masks of class indices (255: void)
    NAME/test/...                       the held-out test split, the same way
    NAME/val/... or NAME/validation/... a validation split, in some data sets

Every data set has a test split (a flat folder has none). Most have only
`train/` and `test/`, as many downloads come: the loader then holds out 10 %
of `train/` for validation; polygons, voronoi, fabrics, vehicles and nuclei
have their own. The masks of `voronoi` mark the borders between regions 255
("void"), those of `fields` the borders between field parcels, those of
`nuclei` a ring around each nucleus; training leaves void out of the loss
and metrics. These layouts, the `val/` alias and void need the
package from commit f11810d on (folder loader 5234e59; before f11810d,
`keras-cvlec train` failed plotting a mask holding 255). `glyphs` needs
Pillow >= 10.1 with FreeType (`ImageFont.load_default(size=...)`), and its
bytes may change with Pillow's font rendering.

Deterministic: image `i` of a split is drawn from
`numpy.random.default_rng((seed, split number, i))`, so the same seed writes
the same bytes, and a smaller split is a prefix of a larger one.

    python benchmarks/generated_data.py OUT_DIR [--group GROUP | --datasets NAME ...]
        [--max-images N] [--seed SEED]      # default: every data set
"""

import argparse
import dataclasses
import functools
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

VOID = 255
# Shapes are drawn this many times larger, then downsampled (anti-aliasing).
SUPERSAMPLING = 4


# --- Building blocks -------------------------------------------------------


def _coordinates(size):
    """`(yy, xx)`: the pixel-centre coordinates of a `size` x `size` image."""
    axis = np.arange(size, dtype="float32") + 0.5
    return np.meshgrid(axis, axis, indexing="ij")


def _smooth_noise(rng, size, cells):
    """A smooth random field in `[0, 1]`: a `cells` x `cells` grid of uniform
    values upsampled bicubically (blobs about `size / cells` pixels wide)."""
    coarse = rng.random((cells + 1, cells + 1), dtype="float32")
    field = np.asarray(Image.fromarray(coarse).resize((size, size), Image.BICUBIC))
    return (field - field.min()) / max(float(field.max() - field.min()), 1e-6)


def _colour_pair(rng, contrast=0.3):
    """Two random RGB colours whose mean intensities differ by >= `contrast`."""
    while True:
        first, second = rng.random((2, 3), dtype="float32")
        if abs(first.mean() - second.mean()) >= contrast:
            return first, second


def _wave(u, period, phase, sharpness):
    """A periodic profile of `u` in `[0, 1]`: a sine that `sharpness` squares
    towards a square wave."""
    return 0.5 + 0.5 * np.tanh(sharpness * np.sin(2 * np.pi * u / period + phase)) / np.tanh(
        sharpness
    )


def _rotated(yy, xx, angle):
    """The coordinates along and across the direction `angle` (degrees)."""
    a = np.deg2rad(angle)
    return xx * np.cos(a) + yy * np.sin(a), -xx * np.sin(a) + yy * np.cos(a)


def _finish(rng, image):
    """A float RGB image as uint8, after a random illumination ramp and
    pixel noise (as a camera adds)."""
    yy, xx = _coordinates(image.shape[0])
    u, _ = _rotated(yy, xx, rng.uniform(0, 360))
    ramp = 1 + rng.uniform(-0.25, 0.25) * (u / image.shape[0])
    image = image * ramp[..., None] + rng.normal(0, rng.uniform(0.02, 0.07), image.shape)
    return np.round(np.clip(image, 0, 1) * 255).astype("uint8")


def _downsample(image, size):
    """A supersampled Pillow image back to `size` x `size` as floats in [0, 1]
    (a box filter: each pixel is the mean of its sub-pixels)."""
    return np.asarray(image.resize((size, size), Image.BOX), "float32") / 255


def _borders(labels):
    """Where a pixel of `labels` (any integers) has a 4-neighbour of another
    label: a band about two pixels wide on every border, as a bool array."""
    border = np.zeros(labels.shape, bool)
    vertical = labels[1:] != labels[:-1]
    horizontal = labels[:, 1:] != labels[:, :-1]
    border[1:] |= vertical
    border[:-1] |= vertical
    border[:, 1:] |= horizontal
    border[:, :-1] |= horizontal
    return border


def _void_borders(mask):
    """`mask` with pixels next to a pixel of another class set to `VOID`: a
    band about two pixels wide on every border between classes, as VOC marks
    object outlines."""
    return np.where(_borders(mask), VOID, mask).astype("uint8")


# --- Procedural textures (the `textures` and `voronoi` data sets) ---------
# Each takes `(rng, yy, xx, period)` and returns a pattern in [0, 1] with a
# random phase, orientation jitter and sharpness: the class is the kind of
# pattern, never its colour, scale or position.


def _stripes(*angles):
    """Stripes across one of `angles` (degrees), jittered by up to 12."""

    def pattern(rng, yy, xx, period):
        u, _ = _rotated(yy, xx, rng.choice(angles) + rng.uniform(-12, 12))
        return _wave(u, period, rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 3))

    return pattern


def _plaid(rng, yy, xx, period):
    u, v = _rotated(yy, xx, rng.uniform(0, 90))
    phases = rng.uniform(0, 2 * np.pi, 2)
    across = _wave(v, period * rng.uniform(0.7, 1.4), phases[1], 1.5)
    return 0.5 * (_wave(u, period, phases[0], 1.5) + across)


def _checkerboard(rng, yy, xx, period):
    u, v = _rotated(yy, xx, rng.uniform(0, 90))
    phase_u, phase_v = rng.uniform(0, 2 * np.pi, 2)
    product = np.sin(2 * np.pi * u / period + phase_u) * np.sin(2 * np.pi * v / period + phase_v)
    return 0.5 + 0.5 * np.tanh(4 * product) / np.tanh(4)


def _dots(rng, yy, xx, period):
    """A rotated lattice of soft discs."""
    u, v = _rotated(yy, xx, rng.uniform(0, 90))
    offset = rng.random(2)
    du = (u / period + offset[0]) % 1 - 0.5
    dv = (v / period + offset[1]) % 1 - 0.5
    radius = rng.uniform(0.2, 0.35)
    return 1 / (1 + np.exp((np.hypot(du, dv) - radius) * 25))


def _rings(rng, yy, xx, period):
    """Concentric rings around a centre that may lie outside the image."""
    size = yy.shape[0]
    cy, cx = rng.uniform(-0.5 * size, 1.5 * size, 2)
    return _wave(np.hypot(yy - cy, xx - cx), period, rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 3))


def _blotches(rng, yy, xx, period):
    """Thresholded smooth noise: irregular patches about `period` wide."""
    field = _smooth_noise(rng, yy.shape[0], max(2, round(yy.shape[0] / period)))
    return 1 / (1 + np.exp((field - rng.uniform(0.4, 0.6)) * -20))


def _speckle(rng, yy, xx, period):
    """Random binary grains of one or two pixels."""
    grain = int(rng.integers(1, 3))
    cells = -(-yy.shape[0] // grain)
    grains = (rng.random((cells, cells)) < rng.uniform(0.3, 0.7)).astype("float32")
    return np.kron(grains, np.ones((grain, grain), "float32"))[: yy.shape[0], : yy.shape[0]]


def _waves(rng, yy, xx, period):
    """Wavy lines: stripes whose position swings sinusoidally along them."""
    u, v = _rotated(yy, xx, rng.uniform(0, 180))
    wavelength = rng.uniform(2, 4) * period
    swing = (
        rng.uniform(0.4, 0.8)
        * period
        * np.sin(2 * np.pi * v / wavelength + rng.uniform(0, 2 * np.pi))
    )
    return _wave(u + swing, period, rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 3))


TEXTURES = {
    "horizontal_stripes": _stripes(90),
    "vertical_stripes": _stripes(0),
    # Either diagonal: a horizontal flip (a default augmentation) maps one
    # onto the other, so they must share a class.
    "diagonal_stripes": _stripes(45, 135),
    "plaid": _plaid,
    "checkerboard": _checkerboard,
    "dots": _dots,
    "rings": _rings,
    "blotches": _blotches,
    "speckle": _speckle,
    "waves": _waves,
}


def _texture(rng, size, name):
    """`TEXTURES[name]` in two random colours, at a random period of 11 % to
    25 % of `size` (3.5 to 8 pixels at 32)."""
    yy, xx = _coordinates(size)
    pattern = TEXTURES[name](rng, yy, xx, rng.uniform(0.11, 0.25) * size)
    first, second = _colour_pair(rng)
    return first + pattern[..., None] * (second - first)


def draw_texture(rng, size, label):
    """One of the ten `TEXTURES` filling the image, in random colours, phase,
    period and orientation jitter, half the time partly hidden by a shaded
    ellipse (up to about a quarter of the image), under an illumination ramp
    and noise.

    Unlike shapes: no object and no background; the class is a texture
    statistic spread over the whole image, and colour carries no information.
    """
    image = _texture(rng, size, tuple(TEXTURES)[label])
    if rng.random() < 0.5:
        yy, xx = _coordinates(size)
        cy, cx = rng.uniform(0, size, 2)
        ry, rx = rng.uniform(0.1, 0.3, 2) * size
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        shade = rng.random(3) * (0.6 + 0.4 * _smooth_noise(rng, size, 3))[..., None]
        image = np.where(inside[..., None], shade, image)
    return _finish(rng, image)


VORONOI_CLASSES = (
    "horizontal_stripes",
    "vertical_stripes",
    "dots",
    "checkerboard",
    "blotches",
    "speckle",
)


def draw_voronoi(rng, size):
    """4 to 9 regions of a Voronoi partition whose borders are bent by smooth
    noise; each region takes one of six `VORONOI_CLASSES` textures at random,
    in its own colours, period and phase. The mask holds each pixel's
    texture class; `write_dataset` marks a band about two pixels wide
    along the borders between classes `VOID`.

    Unlike shapes: regions tile the whole image (no background class), their
    outlines are irregular, and only the texture, not colour or shape, tells
    the classes apart; neighbouring regions may share a class.
    """
    yy, xx = _coordinates(size)
    count = int(rng.integers(4, 10))
    sites = rng.uniform(0, size, (count, 2))
    bend = 0.15 * size
    wy = yy + bend * (_smooth_noise(rng, size, 3) - 0.5)
    wx = xx + bend * (_smooth_noise(rng, size, 3) - 0.5)
    distances = (wy[None] - sites[:, :1, None]) ** 2 + (wx[None] - sites[:, 1:, None]) ** 2
    region = np.argmin(distances, axis=0)
    classes = rng.integers(0, len(VORONOI_CLASSES), count)
    image = np.zeros((size, size, 3), "float32")
    for k in range(count):
        inside = region == k
        image[inside] = _texture(rng, size, VORONOI_CLASSES[classes[k]])[inside]
    return _finish(rng, image), classes[region].astype("uint8")


# --- Polygons over clutter -------------------------------------------------


# `(star, vertices, filled)` per class, and the class sub-folder names.
POLYGON_KINDS = tuple(
    (star, vertices, filled)
    for star in (False, True)
    for vertices in (3, 4, 5, 6, 7)
    for filled in (True, False)
)
POLYGON_CLASSES = tuple(
    f"{'star' if star else 'polygon'}{vertices}_{'filled' if filled else 'outline'}"
    for star, vertices, filled in POLYGON_KINDS
)


def _clutter(rng, size, strokes=(4, 12)):
    """A supersampled RGB Pillow image: a two-colour smooth field crossed by
    `strokes` (low, high: a random number in `[low, high)`) random strokes
    and ellipse outlines of random colours."""
    big = size * SUPERSAMPLING
    first, second = _colour_pair(rng, contrast=0.1)
    field = _smooth_noise(rng, big, int(rng.integers(2, 6)))[..., None]
    image = Image.fromarray(np.round((first + field * (second - first)) * 255).astype("uint8"))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(*strokes))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        width = int(rng.integers(1, 4)) * SUPERSAMPLING
        y0, x0, y1, x1 = rng.uniform(-0.1, 1.1, 4) * big
        if rng.random() < 0.6:
            draw.line((x0, y0, x1, y1), fill=colour, width=width)
        else:
            box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
            draw.ellipse(box, outline=colour, width=width)
    return image


def _polygon_corners(rng, centre, radius, vertices, star):
    """The `(x, y)` corners of a regular polygon, or of a star with
    `vertices` points (inner radius 40 % to 55 % of the outer one), at a
    random rotation."""
    corners = 2 * vertices if star else vertices
    angles = rng.uniform(0, 2 * np.pi) + 2 * np.pi * np.arange(corners) / corners
    radii = np.full(corners, radius)
    if star:
        radii[1::2] *= rng.uniform(0.4, 0.55)
    return [(centre[1] + r * np.cos(a), centre[0] + r * np.sin(a)) for r, a in zip(radii, angles)]


def draw_polygon(rng, size, label):
    """A regular polygon or a star of 3 to 7 points, filled or drawn as an
    outline (`POLYGON_CLASSES`: 20 classes), at a random position, radius
    (22 % to 38 % of the image), rotation and colour, over `_clutter`; half
    the time a small disc of another colour hides part of one edge.

    Unlike shapes: the classes are counted corners, convex against star and
    filled against outline, at any rotation, over clutter made of the same
    kind of strokes.
    """
    star, vertices, filled = POLYGON_KINDS[label]
    big = size * SUPERSAMPLING
    image = _clutter(rng, size)
    background = np.asarray(image).mean() / 255
    colour = rng.random(3)
    while abs(colour.mean() - background) < 0.25:
        colour = rng.random(3)
    fill = tuple(int(c) for c in np.round(colour * 255))
    radius = rng.uniform(0.22, 0.38) * big
    corners = _polygon_corners(rng, rng.uniform(radius, big - radius, 2), radius, vertices, star)
    draw = ImageDraw.Draw(image)
    if filled:
        draw.polygon(corners, fill=fill)
    else:
        width = round(rng.uniform(0.035, 0.05) * big)
        draw.line(corners + corners[:1], fill=fill, width=width, joint="curve")
    if rng.random() < 0.5:
        edge = int(rng.integers(len(corners)))
        (x0, y0), (x1, y1) = corners[edge], corners[(edge + 1) % len(corners)]
        x, y, r = (x0 + x1) / 2, (y0 + y1) / 2, rng.uniform(0.06, 0.1) * big
        draw.ellipse(
            (x - r, y - r, x + r, y + r), fill=tuple(int(c) for c in rng.integers(0, 256, 3))
        )
    return _finish(rng, _downsample(image, size))


# --- Cells ------------------------------------------------------------------

CELL_CLASSES = ("1_cell", "2_cells", "3_cells")


def _blob(yy, xx, centre, sigma, aspect=1.0, angle=0.0):
    """An elongated Gaussian bump of height 1."""
    u, v = _rotated(yy - centre[0], xx - centre[1], angle)
    return np.exp(-0.5 * ((u / (sigma * aspect)) ** 2 + (v / sigma) ** 2))


def _separated_points(rng, count, low, high, distance):
    """`count` random `(y, x)` points in `[low, high)`, pairwise at least
    `distance` apart."""
    while True:
        points = rng.uniform(low, high, (count, 2))
        gaps = np.hypot(*(points[:, None] - points[None]).transpose(2, 0, 1))
        if count < 2 or gaps[np.triu_indices(count, 1)].min() >= distance:
            return points


def draw_cells(rng, size, label):
    """A micrograph-like image of 1, 2 or 3 cells (the class): elongated
    Gaussian cells with a darker nucleus, among 2 to 8 small bright debris
    particles and sometimes a faint out-of-focus cell, on an unevenly lit
    background, with granular texture and a random stain colour.

    Unlike shapes: soft blobs without edges, one colour map per image, and
    the class is a count that ignores the debris and the faint blob.
    """
    yy, xx = _coordinates(size)
    scale = size / 96
    intensity = 0.1 * _smooth_noise(rng, size, 3)
    if rng.random() < 0.5:  # out of focus: large and faint, not counted
        centre, sigma = rng.uniform(0, size, 2), rng.uniform(12, 16) * scale
        intensity += rng.uniform(0.1, 0.2) * _blob(yy, xx, centre, sigma)
    cells = _separated_points(rng, label + 1, 12 * scale, size - 12 * scale, 24 * scale)
    for centre in cells:
        sigma, amplitude = rng.uniform(6, 9) * scale, rng.uniform(0.6, 1.0)
        aspect, angle = rng.uniform(1, 1.6), rng.uniform(0, 180)
        intensity += amplitude * _blob(yy, xx, centre, sigma, aspect, angle)
        nucleus = centre + rng.normal(0, 0.25 * sigma, 2)
        intensity -= 0.35 * amplitude * _blob(yy, xx, nucleus, 0.4 * sigma)
    for _ in range(int(rng.integers(2, 9))):
        centre, sigma = rng.uniform(0, size, 2), rng.uniform(1.2, 2.5) * scale
        aspect, angle = rng.uniform(1, 2), rng.uniform(0, 180)
        intensity += rng.uniform(0.3, 0.9) * _blob(yy, xx, centre, sigma, aspect, angle)
    intensity *= 0.85 + 0.3 * _smooth_noise(rng, size, max(2, size // 8))
    background, stain = rng.uniform(0, 0.25, 3), rng.uniform(0.3, 1, 3)
    return _finish(rng, background + intensity[..., None] * stain)


# --- Roads and rivers (thin structures) ---------------------------------------

ROADS_CLASSES = ("background", "road", "river")


def _coverage(size, points, width):
    """The fraction of each pixel a polyline of `width` pixels covers
    (drawn supersampled), in `[0, 1]`."""
    layer = Image.new("L", (size * SUPERSAMPLING,) * 2)
    scaled = [(x * SUPERSAMPLING, y * SUPERSAMPLING) for x, y in points]
    ImageDraw.Draw(layer).line(scaled, fill=255, width=round(width * SUPERSAMPLING), joint="curve")
    return _downsample(layer, size)


def _road_points(rng, size):
    """A straight road through a random point, bent there by up to 35
    degrees, running past the image on both sides."""
    centre = rng.uniform(0.2, 0.8, 2) * size
    angle = rng.uniform(0, np.pi)
    ends = []
    for turn, sign in ((0.0, -1), (np.deg2rad(rng.uniform(-35, 35)), 1)):
        length = sign * 1.5 * size
        ends.append(
            (centre[1] + length * np.cos(angle + turn), centre[0] + length * np.sin(angle + turn))
        )
    return [ends[0], (centre[1], centre[0]), ends[1]]


def _river_points(rng, size):
    """A meandering river: a sine wave of random amplitude and wavelength
    along a random direction, running past the image on both sides."""
    along = np.linspace(-1.5, 1.5, 120) * size
    across = (
        rng.uniform(0.03, 0.12)
        * size
        * np.sin(2 * np.pi * along / (rng.uniform(0.4, 1.0) * size) + rng.uniform(0, 2 * np.pi))
    )
    cy, cx = rng.uniform(0.2, 0.8, 2) * size
    a = rng.uniform(0, np.pi)
    x = cx + along * np.cos(a) - across * np.sin(a)
    y = cy + along * np.sin(a) + across * np.cos(a)
    return list(zip(x, y))


def draw_roads(rng, size):
    """An aerial-view-like image: 1 to 3 grey roads (straight, one bend) and
    0 to 2 meandering rivers (blue, or muddy brown like the ground) over a
    green-brown terrain with grain, houses (small squares, some grey like
    roads) and trees. Roads cross rivers on bridges. The mask holds 0
    background, 1 road, 2 river (a pixel at least half covered).

    Unlike shapes: thin structures a few pixels wide that cross the whole
    image, a background class covering most pixels, and look-alike clutter.
    """
    scale = size / 64
    green = rng.uniform((0.2, 0.35, 0.1), (0.45, 0.6, 0.3))
    brown = rng.uniform((0.4, 0.3, 0.15), (0.6, 0.45, 0.3))
    field = _smooth_noise(rng, size, int(rng.integers(2, 6)))[..., None]
    grain = 0.9 + 0.2 * _smooth_noise(rng, size, size // 2)
    image = (green + field * (brown - green)) * grain[..., None]
    for _ in range(int(rng.integers(0, 12))):  # houses and trees
        y, x = rng.integers(0, size, 2)
        side = max(1, round(rng.uniform(1.5, 4) * scale))
        house = rng.random() < 0.6
        image[y : y + side, x : x + side] = rng.uniform(0.1, 0.8, 3) if house else (0.1, 0.25, 0.08)
    mask = np.zeros((size, size), "uint8")
    structures = [(2, _river_points, (2.5, 5)) for _ in range(int(rng.integers(0, 3)))]
    structures += [(1, _road_points, (1.5, 3.5)) for _ in range(int(rng.integers(1, 4)))]
    for value, points, (low, high) in structures:
        coverage = _coverage(size, points(rng, size), rng.uniform(low, high) * scale)[..., None]
        if value == 1:
            colour = rng.uniform(0.35, 0.7) + rng.uniform(-0.05, 0.05, 3)
        elif rng.random() < 0.7:
            colour = rng.uniform((0.1, 0.25, 0.4), (0.3, 0.45, 0.65))
        else:
            colour = rng.uniform((0.35, 0.3, 0.15), (0.5, 0.4, 0.25))
        image = image * (1 - coverage) + colour * coverage
        mask[coverage[..., 0] >= 0.5] = value
    return _finish(rng, image), mask


# === Group "heldout2": held out for a verdict, now used while revising the defaults ===
# Unlike round 1 (textures, polygons, cells, voronoi, roads), the embedded
# shapes data and sklearn's digits: natural-ish objects drawn from parametric
# curves, noise filtered in the frequency domain, rendered type, and aerial
# and surface scenes with void and heavy class imbalance.

# --- Leaves -------------------------------------------------------------------
# A family draws `(rng) -> (outlines, veins)` in leaf coordinates: x across,
# y along the midrib from the base (0) to the tip (about 1); outlines are
# closed polygons, veins open polylines, both `(n, 2)` arrays of `(x, y)`.


def _profile_outline(halfwidth, samples=64):
    """A leaf outline from the half-width as a function of `y` in [0, 1]:
    up the right side, down the left."""
    y = np.linspace(0, 1, samples)
    x = halfwidth(y)
    return np.concatenate([np.stack([x, y], 1), np.stack([-x, y], 1)[::-1]])


def _pinnate_veins(rng, halfwidth, along):
    """A midrib and a pair of side veins from each of the points `along` the
    midrib, slanting towards the tip to near the edge."""
    veins = [np.array([(0.0, 0.0), (0.0, 0.96)])]
    for y in along:
        rise = rng.uniform(0.07, 0.14)
        x = 0.85 * float(halfwidth(np.float64(min(y + rise, 1.0))))
        veins += [np.array([(0.0, y), (x, y + rise)]), np.array([(0.0, y), (-x, y + rise)])]
    return veins


def _leaf_lanceolate(rng):
    width = rng.uniform(0.09, 0.15)
    halfwidth = lambda y: width * np.sin(np.pi * y) ** 0.9  # noqa: E731
    return [_profile_outline(halfwidth)], _pinnate_veins(rng, halfwidth, np.linspace(0.15, 0.75, 4))


def _leaf_ovate(rng):
    """Widest below the middle."""
    width, skew = rng.uniform(0.28, 0.38), rng.uniform(0.65, 0.8)
    halfwidth = lambda y: width * np.sin(np.pi * y**skew)  # noqa: E731
    return [_profile_outline(halfwidth)], _pinnate_veins(rng, halfwidth, np.linspace(0.1, 0.7, 4))


def _leaf_serrate(rng):
    """Elliptic with saw teeth pointing to the tip."""
    width, teeth, depth = rng.uniform(0.2, 0.28), rng.integers(6, 10), rng.uniform(0.15, 0.3)
    halfwidth = lambda y: width * np.sin(np.pi * y) * (1 - depth + depth * ((y * teeth) % 1))  # noqa: E731
    return [_profile_outline(halfwidth, 160)], _pinnate_veins(
        rng, halfwidth, np.linspace(0.12, 0.72, 5)
    )


def _leaf_cordate(rng):
    """Heart-shaped: two round lobes either side of the stalk, a pointed tip,
    veins fanning out from the base."""
    s = np.linspace(0, 2 * np.pi, 120, endpoint=False)
    width = rng.uniform(0.34, 0.46)
    x = width * np.sin(s) ** 3
    y = (5 - (13 * np.cos(s) - 5 * np.cos(2 * s) - 2 * np.cos(3 * s) - np.cos(4 * s))) / 22
    veins = [np.array([(0.0, 0.0), (0.0, 0.95)])]
    for side in (1, -1):
        veins += [
            np.array([(0.0, 0.0), (side * 0.6 * width, 0.5)]),
            np.array([(0.0, 0.0), (side * 0.75 * width, 0.0)]),
        ]
    return [np.stack([x, y], 1)], veins


def _leaf_palmate(rng):
    """Maple-like: five pointed, toothed lobes around the end of the stalk,
    smaller towards the stalk, a vein to each lobe tip."""
    depth, sharpness = rng.uniform(0.35, 0.55), rng.uniform(1.5, 3)
    radius = 1 / (1 + depth)
    phi = np.linspace(-np.pi, np.pi, 240, endpoint=False)
    lobes = np.abs(np.cos(2.5 * phi)) ** sharpness * (1 - 0.45 * np.abs(phi) / np.pi)
    r = radius * (depth + (1 - depth) * lobes) * (1 + 0.04 * np.abs(np.sin(12.5 * phi)))
    centre = depth * radius
    outline = np.stack([r * np.sin(phi), centre + r * np.cos(phi)], 1)
    tips = np.deg2rad([-144, -72, 0, 72, 144])
    reach = 0.85 * radius * (depth + (1 - depth) * (1 - 0.45 * np.abs(tips) / np.pi))
    veins = [
        np.array([(0.0, 0.0), (r * np.sin(a), centre + r * np.cos(a))]) for a, r in zip(tips, reach)
    ]
    return [outline], veins


def _leaf_oak(rng):
    """Pinnately lobed: rounded lobes between deep notches along both edges."""
    width, lobes, depth = rng.uniform(0.28, 0.36), int(rng.integers(3, 6)), rng.uniform(0.4, 0.6)

    def halfwidth(y):
        return (
            width
            * np.sin(np.pi * y) ** 0.7
            * (1 - depth + depth * np.abs(np.sin(np.pi * lobes * y)))
        )

    along = (np.arange(lobes) + 0.5) / lobes - 0.1
    return [_profile_outline(halfwidth, 160)], _pinnate_veins(rng, halfwidth, along[along > 0.05])


def _leaf_trifoliate(rng):
    """Three ovate leaflets at the end of a stalk, the side ones spread by
    45 to 75 degrees."""
    stalk, length, width = rng.uniform(0.3, 0.4), rng.uniform(0.5, 0.6), rng.uniform(0.16, 0.22)
    leaflet = _profile_outline(lambda y: width / length * np.sin(np.pi * y**0.8)) * length
    spread = rng.uniform(45, 75)
    outlines, veins = [], [np.array([(0.0, 0.0), (0.0, stalk)])]
    for angle in (-spread, 0, spread):
        a = np.deg2rad(angle)
        turn = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
        outlines.append(leaflet @ turn + (0, stalk))
        veins.append(np.array([(0.0, 0.0), (0.0, 0.92 * length)]) @ turn + (0, stalk))
    return outlines, veins


def _leaf_ginkgo(rng):
    """Fan-shaped: a wedge from the stalk to a wavy outer edge with a notch
    in the middle, veins radiating from the stalk."""
    half_angle, notch = np.deg2rad(rng.uniform(55, 75)), rng.uniform(0.2, 0.4)
    phi = np.linspace(-half_angle, half_angle, 80)
    wave = 0.03 * np.sin(rng.uniform(8, 14) * phi + rng.uniform(0, 2 * np.pi))
    r = 1 - notch * np.exp(-((phi / 0.15) ** 2)) + wave
    outline = np.concatenate([[(0.0, 0.0)], np.stack([r * np.sin(phi), r * np.cos(phi)], 1)])
    angles = np.linspace(-0.8, 0.8, int(rng.integers(5, 8))) * half_angle
    reach = 0.9 * (1 - notch * np.exp(-((angles / 0.15) ** 2)))
    veins = [np.array([(0.0, 0.0), (r * np.sin(a), r * np.cos(a))]) for a, r in zip(angles, reach)]
    return [outline], veins


LEAF_FAMILIES = {
    "lanceolate": _leaf_lanceolate,
    "ovate": _leaf_ovate,
    "serrate": _leaf_serrate,
    "cordate": _leaf_cordate,
    "palmate": _leaf_palmate,
    "oak": _leaf_oak,
    "trifoliate": _leaf_trifoliate,
    "ginkgo": _leaf_ginkgo,
}
# Leaf colours, from fresh green to autumn brown (jittered per leaf).
LEAF_COLOURS = np.array(
    [
        (0.25, 0.5, 0.15),
        (0.1, 0.3, 0.1),
        (0.55, 0.6, 0.2),
        (0.8, 0.7, 0.2),
        (0.8, 0.4, 0.1),
        (0.6, 0.12, 0.1),
        (0.45, 0.3, 0.15),
    ],
    "float32",
)


def _scene_background(rng, big):
    """A supersampled float RGB background: a gradient between two random
    colours along a random direction mixed with smooth noise, under 0 to 3
    soft out-of-focus blobs."""
    yy, xx = _coordinates(big)
    u, _ = _rotated(yy, xx, rng.uniform(0, 360))
    mix = rng.uniform(0.2, 0.6)
    noise = _smooth_noise(rng, big, int(rng.integers(2, 5)))
    field = (1 - mix) * (u - u.min()) / (u.max() - u.min()) + mix * noise
    first, second = _colour_pair(rng, contrast=0.1)
    image = first + field[..., None] * (second - first)
    for _ in range(int(rng.integers(0, 4))):
        weight = rng.uniform(0.3, 0.8) * _blob(
            yy, xx, rng.uniform(0, big, 2), rng.uniform(0.08, 0.2) * big
        )
        image += weight[..., None] * (rng.random(3) - image)
    return image


def draw_leaf(rng, size, label):
    """A leaf of one of eight `LEAF_FAMILIES` (the class): lanceolate, ovate,
    serrate, cordate (heart), palmate (maple), oak (lobed), trifoliate (three
    leaflets) or ginkgo (fan), with its stalk, midrib and side veins drawn
    in a lighter or darker shade. Each leaf varies in proportions, lobe
    depth, tooth count and spread; it is bent by up to 0.15 of its length,
    slightly lopsided, rotated at random, 50 % to 85 % of the image long,
    in a random leaf colour (green to autumn brown, at least 0.25 from the
    background's mean under the leaf in some channel) with a light gradient
    along it, half the time casting a shadow, over `_scene_background`
    crossed by 0 to 2 thin twigs.

    Unlike round 1 and shapes: one smooth, curved, organic outline at any
    rotation whose family shows in its outline and veins, never in colour,
    over a soft natural-looking scene rather than clutter or texture.
    """
    big = size * SUPERSAMPLING
    image = _scene_background(rng, big)
    outlines, veins = tuple(LEAF_FAMILIES.values())[label](rng)
    stalk = rng.uniform(0.08, 0.22)
    veins = [np.array([(0.0, -stalk), (0.0, 0.0)])] + veins
    bend, lopsided = rng.uniform(-0.15, 0.15), rng.uniform(-0.1, 0.1)
    a = np.deg2rad(rng.uniform(0, 360))
    turn = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])

    def place(points, scale=1.0, offset=0.0):
        """Leaf coordinates to image coordinates: bent, lopsided, turned."""
        x, y = points[:, 0], points[:, 1]
        x = np.where(x > 0, x * (1 + lopsided), x) + bend * y**2
        return (np.stack([x, y], 1) @ turn) * scale + offset

    corners = np.concatenate([place(p) for p in outlines + veins[:1]])
    scale = min(rng.uniform(0.5, 0.85) * big / (1 + stalk), 0.92 * big / np.ptp(corners, 0).max())
    offset = (
        big / 2 - (corners.max(0) + corners.min(0)) / 2 * scale + rng.uniform(-0.1, 0.1, 2) * big
    )
    mask, lines = Image.new("L", (big, big)), Image.new("L", (big, big))
    for outline in outlines:
        ImageDraw.Draw(mask).polygon([tuple(p) for p in place(outline, scale, offset)], fill=255)
    midrib = max(1, round(0.025 * scale))
    for number, vein in enumerate(veins):  # the stalk, the midrib, the rest
        width = (round(1.6 * midrib), midrib)[number] if number < 2 else max(1, round(0.6 * midrib))
        ImageDraw.Draw(lines).line(
            [tuple(p) for p in place(vein, scale, offset)], fill=255, width=width
        )
    mask = np.asarray(mask, "float32")[..., None] / 255
    lines = np.asarray(lines, "float32")[..., None] / 255
    for _ in range(int(rng.integers(0, 3))):  # twigs
        y0, x0, y1, x1 = rng.uniform(-0.1, 1.1, 4) * big
        twig = Image.new("L", (big, big))
        ImageDraw.Draw(twig).line(
            (x0, y0, x1, y1), fill=255, width=int(rng.integers(1, 3)) * SUPERSAMPLING
        )
        twig = np.asarray(twig, "float32")[..., None] / 255
        image = image * (1 - twig) + rng.uniform(0.15, 0.45) * np.array((1, 0.8, 0.6)) * twig
    if rng.random() < 0.5:  # a shadow
        shift = rng.integers(-round(0.05 * big), round(0.05 * big) + 1, 2)
        image = image * (
            1 - rng.uniform(0.2, 0.4) * np.roll(np.maximum(mask, lines), tuple(shift), (0, 1))
        )
    under = (image * mask).sum((0, 1)) / max(float(mask.sum()), 1.0)
    while True:
        colour = LEAF_COLOURS[rng.integers(len(LEAF_COLOURS))] + rng.uniform(-0.08, 0.08, 3)
        if np.abs(colour - under).max() >= 0.25:
            break
    yy, xx = _coordinates(big)
    u, _ = _rotated(yy, xx, rng.uniform(0, 360))
    leaf = colour * (1 + rng.uniform(-0.15, 0.15) * (u / big))[..., None]
    if rng.random() < 0.5:  # darker veins
        vein = colour * rng.uniform(0.55, 0.75)
    else:
        vein = colour + rng.uniform(0.25, 0.45) * (1 - colour)
    image = image * (1 - mask) + leaf * mask
    image = image * (1 - lines) + vein * lines
    image = Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype("uint8"))
    return _finish(rng, _downsample(image, size))


# --- Fabrics (filtered noise) ----------------------------------------------------


def _filtered_noise(rng, size, gain):
    """Gaussian white noise filtered in the frequency domain, scaled to mean
    0 and standard deviation 1. `gain(f, angle)` takes the frequency (cycles
    a pixel, 0 to 0.71) and its direction (radians, in (-pi/2, pi/2]) of
    each Fourier coefficient."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None]
    spectrum = np.fft.rfft2(rng.standard_normal((size, size))) * gain(
        np.hypot(fy, fx), np.arctan2(fy, fx)
    )
    field = np.fft.irfft2(spectrum, s=(size, size))
    return (field - field.mean()) / max(float(field.std()), 1e-6)


def _power_law(rng):
    """Isotropic `1 / f ** beta` noise (beta 1.6 to 2.6): soft felted fuzz."""
    beta = rng.uniform(1.6, 2.6)
    return lambda f, angle: np.where(f > 0, np.maximum(f, 1e-3) ** (-beta / 2), 0)


def _ring(rng):
    """Isotropic band-pass at 0.1 to 0.22 cycles a pixel: curly loops."""
    centre, width = rng.uniform(0.1, 0.22), rng.uniform(0.02, 0.045)
    return lambda f, angle: np.exp(-0.5 * ((f - centre) / width) ** 2)


def _oriented(rng, count):
    """Band-pass around `count` directions 90 degrees apart (the first at
    random): ridges (1) or a weave (2), 0.08 to 0.2 cycles a pixel."""
    first, spread = rng.uniform(0, np.pi), rng.uniform(0.08, 0.25)
    bands = [
        (
            first + k * np.pi / 2,
            rng.uniform(0.08, 0.2),
            rng.uniform(0.015, 0.04),
            rng.uniform(0.6, 1),
        )
        for k in range(count)
    ]

    def gain(f, angle):
        total = 0
        for direction, centre, width, weight in bands:
            off = (angle - direction + np.pi / 2) % np.pi - np.pi / 2
            total = total + weight * np.exp(
                -0.5 * ((f - centre) / width) ** 2 - 0.5 * (off / spread) ** 2
            )
        return total

    return gain


FABRICS = {
    "felt": _power_law,
    "boucle": _ring,
    "corduroy": lambda rng: _oriented(rng, 1),
    "canvas": lambda rng: _oriented(rng, 2),
}


def draw_fabric(rng, size, label):
    """A close-up of a fabric: white noise filtered by one of four spectra
    of `FABRICS` (the class): 1/f^beta fuzz (felt), an isotropic ring
    (boucle loops), one oriented band (corduroy ridges) or two orthogonal
    ones (canvas weave), in any direction and at overlapping frequencies,
    mixed with 0 % to 35 % of fuzz, squashed by a sigmoid, coloured between
    two random yarn colours, under soft folds (smooth shading of 20 % to
    60 %), an illumination ramp and noise.

    Unlike round 1 and shapes: stochastic micro-texture without any edge,
    line or object; the class is the shape of the power spectrum (textures
    draws deterministic patterns), at a few training images a class.
    """
    pattern = _filtered_noise(rng, size, tuple(FABRICS.values())[label](rng))
    fuzz = rng.uniform(0, 0.35)
    pattern = (1 - fuzz) * pattern + fuzz * _filtered_noise(rng, size, _power_law(rng))
    pattern = 1 / (1 + np.exp(-rng.uniform(1, 2.5) * pattern))
    first, second = _colour_pair(rng, contrast=0.1)
    image = first + pattern[..., None] * (second - first)
    folds = 1 + rng.uniform(0.2, 0.6) * (_smooth_noise(rng, size, int(rng.integers(2, 4))) - 0.5)
    return _finish(rng, image * folds[..., None])


# --- Glyphs (rendered type) -----------------------------------------------------

# Class folder name: character. No two are mirror images of each other (a
# horizontal flip is a default augmentation).
GLYPHS = {
    "A": "A",
    "F": "F",
    "G": "G",
    "K": "K",
    "M": "M",
    "R": "R",
    "2": "2",
    "4": "4",
    "7": "7",
    "ampersand": "&",
    "question_mark": "?",
    "hash": "#",
}


@functools.cache
def _font(size):
    """Pillow's built-in font at `size` pixels (Aileron Regular; needs
    Pillow >= 10.1 built with FreeType)."""
    return ImageFont.load_default(size=size)


def draw_glyph(rng, size, label):
    """One character of `GLYPHS` (the class) from Pillow's built-in font at
    a random size (about 35 % to 60 % of the image high), weight (stroke
    0 to 6 % of the size), rotation (up to 30 degrees either way), position
    (shifted by up to 12 %) and colour (0.25 from the background in mean
    intensity), over a noisy background: half the time `_clutter` with 0 to
    4 strokes, half the time one of the `TEXTURES` at 20 % to 50 % of its
    contrast.

    Unlike round 1, shapes and digits: typeset letters, digits and signs
    of thin strokes, 12 classes that differ in small details, at 32 pixels
    with many images, over backgrounds that have strokes of their own.
    """
    big = size * SUPERSAMPLING
    if rng.random() < 0.5:
        image = _clutter(rng, size, strokes=(0, 5))
    else:
        texture = _texture(rng, big, tuple(TEXTURES)[rng.integers(len(TEXTURES))])
        texture = texture.mean() + rng.uniform(0.2, 0.5) * (texture - texture.mean())
        image = Image.fromarray(np.round(texture * 255).astype("uint8"))
    font_size = round(rng.uniform(0.5, 0.85) * big)
    layer = Image.new("L", (big, big))
    ImageDraw.Draw(layer).text(
        (big / 2, big / 2),
        tuple(GLYPHS.values())[label],
        fill=255,
        font=_font(font_size),
        anchor="mm",
        stroke_width=round(rng.uniform(0, 0.06) * font_size),
    )
    shift = tuple(rng.uniform(-0.12, 0.12, 2) * big)
    layer = layer.rotate(rng.uniform(-30, 30), resample=Image.BICUBIC, translate=shift)
    background = np.asarray(image).mean() / 255
    colour = rng.random(3)
    while abs(colour.mean() - background) < 0.25:
        colour = rng.random(3)
    image.paste(tuple(int(c) for c in np.round(colour * 255)), mask=layer)
    return _finish(rng, _downsample(image, size))


# --- Aerial fields (segmentation with void on some borders) ---------------------

FIELD_CLASSES = ("background", "crop_rows", "bare_soil", "forest", "water")


def _parcels(rng, size):
    """Field parcels: strips 25 % to 55 % of the image wide along a random
    direction, cut every 30 % to 70 % by cuts skewed by up to 0.4. Returns
    each pixel's parcel number (ints) and the direction (degrees)."""
    yy, xx = _coordinates(size)
    angle = rng.uniform(0, 180)
    u, v = _rotated(yy, xx, angle)
    edges = v.min() - rng.uniform(0, 0.5) * size + np.cumsum(rng.uniform(0.25, 0.55, 12) * size)
    strip = np.digitize(v, edges)
    parcels = np.zeros((size, size), int)
    for number in range(strip.max() + 1):
        across = u + rng.uniform(-0.4, 0.4) * v
        cuts = (
            across.min() - rng.uniform(0, 0.6) * size + np.cumsum(rng.uniform(0.3, 0.7, 16) * size)
        )
        inside = strip == number
        parcels[inside] = number * 32 + np.digitize(across[inside], cuts)
    return parcels, angle


def draw_fields(rng, size):
    """An aerial view of farmland: parcels (`_parcels`) of meadow (class 0,
    "background", green with patches), crops in rows (1: stripes 2.5 to 4.5
    pixels apart at 64 along or across the parcel, crop on soil) or bare
    soil (2: brown with grain); half the images show hedges or tracks along
    the parcel borders. Over them forest (3, 0 to ~40 % of the image:
    thresholded smooth noise, dark crowns) and water (4: a meandering river
    or a lake in 80 % of the images). The parcel borders, where not under
    forest or water, are a band about two pixels wide of `VOID` in the mask
    (as annotators leave field edges); borders of forest and water are
    labelled.

    Unlike round 1 and shapes: large straight-edged regions that tile the
    image, classes told apart by fine row texture and colour together, and
    void on some borders only.
    """
    scale = size / 64
    yy, xx = _coordinates(size)
    parcels, angle = _parcels(rng, size)
    image = np.zeros((size, size, 3), "float32")
    mask = np.zeros((size, size), "uint8")
    soils = ((0.35, 0.25, 0.15), (0.65, 0.5, 0.35))
    for parcel in np.unique(parcels):
        inside = parcels == parcel
        kind = int(rng.choice(3, p=(0.35, 0.45, 0.2)))
        if kind == 0:
            colour = rng.uniform((0.25, 0.4, 0.1), (0.55, 0.65, 0.3))
            texture = (
                colour * (0.8 + 0.4 * _smooth_noise(rng, size, int(rng.integers(3, 9))))[..., None]
            )
        elif kind == 1:
            u, _ = _rotated(yy, xx, angle + rng.choice((0, 90)) + rng.uniform(-5, 5))
            rows = _wave(
                u, rng.uniform(2.5, 4.5) * scale, rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 2)
            )
            soil, crop = rng.uniform(*soils), rng.uniform((0.2, 0.4, 0.1), (0.6, 0.65, 0.25))
            texture = soil + rows[..., None] * (crop - soil)
        else:
            grain = _smooth_noise(rng, size, size // 2)
            texture = rng.uniform(*soils) * (0.85 + 0.3 * grain)[..., None]
        image[inside] = texture[inside]
        mask[inside] = kind
    border = _borders(parcels)
    if rng.random() < 0.5:  # hedges (dark) or tracks (light)
        if rng.random() < 0.6:
            image[border] = image[border] * rng.uniform(0.5, 0.8)
        else:
            image[border] = rng.uniform(0.55, 0.75)
    forest = _smooth_noise(rng, size, int(rng.integers(2, 5))) > rng.uniform(0.6, 1.0)
    crowns = _smooth_noise(rng, size, max(2, size // 3))
    dark = rng.uniform((0.05, 0.15, 0.05), (0.2, 0.35, 0.15))
    image[forest] = (dark * (0.6 + 0.8 * crowns)[..., None])[forest]
    mask[forest] = 3
    kind = rng.random()
    if kind < 0.45:
        water = _coverage(size, _river_points(rng, size), rng.uniform(3, 7) * scale)
    elif kind < 0.8:
        lake = _smooth_noise(rng, size, 3)
        water = 1 / (1 + np.exp(-40 * (lake - rng.uniform(0.7, 0.85))))
    else:
        water = np.zeros((size, size), "float32")
    colour = rng.uniform((0.05, 0.15, 0.25), (0.2, 0.35, 0.5))
    shine = (0.9 + 0.2 * _smooth_noise(rng, size, 2))[..., None]
    image = image * (1 - water[..., None]) + colour * shine * water[..., None]
    mask[water >= 0.5] = 4
    mask[border & (mask < 3)] = VOID
    return _finish(rng, image), mask


# --- Cracks in concrete (thin, rare foreground) -----------------------------------

CRACK_CLASSES = ("concrete", "crack")


def _crack_points(rng, size, start):
    """A random walk from `start` (`(x, y)`): 8 to 30 steps of 3 % to 6 %
    of the image, turning by about 20 degrees a step."""
    heading, points = rng.uniform(0, 2 * np.pi), [tuple(start)]
    for _ in range(int(rng.integers(8, 31))):
        heading += rng.normal(0, 0.35)
        step = rng.uniform(0.03, 0.06) * size
        points.append(
            (points[-1][0] + step * np.cos(heading), points[-1][1] + step * np.sin(heading))
        )
    return points


def draw_cracks(rng, size):
    """Concrete: a grey surface with 1/f^beta roughness, dark stains, pores
    (small dark spots) and light aggregate grains, a quarter of the time cut
    by a straight saw joint (a distractor, not a crack); 0, 1 or 2 cracks
    (a quarter of the images have none), each a random walk
    (`_crack_points`) 1.2 to 2.2 pixels wide at 48 with half the time a
    branch, darkened by 45 % to 80 %. The mask holds 1 where a crack covers
    at least half a pixel, else 0: about 2 % of the pixels.

    Unlike round 1 and shapes: binary, the foreground a few percent of the
    pixels, thin irregular lines in texture and spots of the same darkness.
    """
    scale = size / 48
    yy, xx = _coordinates(size)
    grey = rng.uniform(0.45, 0.75) + rng.uniform(-0.04, 0.04, 3)
    image = (
        grey * (1 + rng.uniform(0.04, 0.1) * _filtered_noise(rng, size, _power_law(rng)))[..., None]
    )
    image = (
        image
        * (1 - rng.uniform(0, 0.25) * _smooth_noise(rng, size, int(rng.integers(2, 5))))[..., None]
    )
    for _ in range(int(rng.integers(5, 30))):  # pores and grains
        spot = _blob(yy, xx, rng.uniform(0, size, 2), rng.uniform(0.4, 1.0) * scale)[..., None]
        image = (
            image * (1 - rng.uniform(0.2, 0.6) * spot)
            if rng.random() < 0.6
            else image + 0.25 * spot
        )
    if rng.random() < 0.25:  # a saw joint, straight across
        y0, y1 = rng.uniform(0, size, 2)
        joint = _coverage(size, [(-size, y0), (2 * size, y1)], rng.uniform(0.8, 1.5) * scale)
        if rng.random() < 0.5:
            joint = joint.T
        image = image * (1 - rng.uniform(0.15, 0.3) * joint)[..., None]
    mask = np.zeros((size, size), "uint8")
    for _ in range(int(rng.choice((0, 1, 1, 2)))):
        points = _crack_points(rng, size, rng.uniform(0, size, 2))
        walks = [(points, rng.uniform(1.2, 2.2) * scale)]
        if rng.random() < 0.5:
            walks.append(
                (_crack_points(rng, size, points[rng.integers(len(points))]), 0.8 * walks[0][1])
            )
        for walk, width in walks:
            coverage = _coverage(size, walk, max(width, 1.2 * scale))
            image = image * (1 - rng.uniform(0.45, 0.8) * coverage)[..., None]
            mask[coverage >= 0.5] = 1
    return _finish(rng, image), mask


# === Group "heldout3": data sets that played no part in choosing the defaults ===
# Unlike round 1, heldout2, the embedded shapes data and sklearn's digits: a
# quantity read off an instrument, man-made silhouettes seen from above,
# signals shown as spectrograms, satellite scenes whose classes cast each
# other (clouds and their shadows), and touching blobs split by void.

# --- Gauges (reading an analog dial) --------------------------------------------

# The needle's angle from the top of the dial (0 at 12 o'clock, the scale
# running 135 degrees either way) folded to its size: a needle left of the
# top and its mirror image right of it share a class, as a horizontal flip
# (a default augmentation) maps one onto the other. Class k: 15 k to
# 15 (k + 1) degrees.
GAUGE_SECTOR = 15.0
GAUGE_CLASSES = tuple(
    f"deg{GAUGE_SECTOR * k:03.0f}_{GAUGE_SECTOR * (k + 1):03.0f}" for k in range(9)
)


def gauge_angle(rng, label):
    """A needle angle (degrees from the top, clockwise positive) of class
    `label`: `|angle|` uniform in the label's sector, either side."""
    return rng.choice((-1.0, 1.0)) * rng.uniform(GAUGE_SECTOR * label, GAUGE_SECTOR * (label + 1))


def _dial_point(centre, radius, angle, squash):
    """`(x, y)` at `radius` along `angle` (degrees from the top, clockwise)
    from `centre` (`(x, y)`), the dial squashed by `squash` (x, y factors)."""
    a = np.deg2rad(angle)
    return (centre[0] + squash[0] * radius * np.sin(a), centre[1] - squash[1] * radius * np.cos(a))


def draw_gauge(rng, size, label):
    """An analog dial seen slightly off-axis (squashed by up to 15 % along
    one axis), 70 % to 90 % of the image wide, over `_clutter`: a bezel,
    a light or dark face, 6 to 11 major ticks over a 270-degree scale with
    or without minor ticks, half the time a coloured zone at one or both
    ends of the scale, and a tapered needle with a tail and a hub that
    casts a shadow; half the time a glare of reflected light on the
    glass. The class is the needle's angle folded about the top
    (`GAUGE_CLASSES`: nine sectors of 15 degrees).

    Unlike round 1, heldout2 and shapes: the same object in every image; the
    class is a continuous quantity (an angle) read against a scale, and
    neighbouring classes differ by a few degrees of one thin part.
    """
    big = size * SUPERSAMPLING
    image = _clutter(rng, size, strokes=(2, 8))
    draw = ImageDraw.Draw(image)
    radius = rng.uniform(0.35, 0.45) * big
    squash = np.ones(2)
    squash[rng.integers(2)] = rng.uniform(0.85, 1.0)
    centre = big / 2 + rng.uniform(-0.06, 0.06, 2) * big
    cx, cy = centre

    def colour(value):
        return tuple(int(c) for c in np.round(np.clip(value, 0, 1) * 255))

    def ellipse(r, **options):
        rx, ry = squash * r
        draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), **options)

    bezel = rng.uniform(0.1, 0.9) * np.ones(3) + rng.uniform(-0.1, 0.1, 3)
    ellipse(radius * rng.uniform(1.08, 1.18), fill=colour(bezel))
    light = rng.random() < 0.7
    face = rng.uniform(0.8, 1.0, 3) - rng.uniform(0, 0.1, 3) if light else rng.uniform(0.0, 0.2, 3)
    ink = rng.uniform(0.0, 0.2, 3) if light else rng.uniform(0.8, 1.0, 3)
    ellipse(radius, fill=colour(face))
    if rng.random() < 0.5:  # coloured zones (red, amber, green) at the ends
        zone = colour(rng.choice([(0.85, 0.1, 0.1), (0.95, 0.65, 0.05), (0.1, 0.65, 0.2)]))
        ends = [(-135, -135 + rng.uniform(30, 70)), (135 - rng.uniform(30, 70), 135)]
        for start, stop in ends if rng.random() < 0.5 else ends[int(rng.integers(2)) :][:1]:
            arc = np.linspace(start, stop, 12)
            points = [
                _dial_point(centre, r, a, squash)
                for r, angles in ((0.78 * radius, arc), (0.92 * radius, arc[::-1]))
                for a in angles
            ]
            draw.polygon(points, fill=zone)
    majors = int(rng.integers(6, 12))
    minors = int(rng.choice((0, 1, 4)))
    width = max(1, round(0.03 * radius))
    for k in range(majors):
        a = -135 + 270 * k / (majors - 1)
        draw.line(
            [_dial_point(centre, r, a, squash) for r in (0.72 * radius, 0.93 * radius)],
            fill=colour(ink),
            width=2 * width,
        )
        for m in range(1, minors + 1 if k < majors - 1 else 1):
            b = a + 270 / (majors - 1) * m / (minors + 1)
            draw.line(
                [_dial_point(centre, r, b, squash) for r in (0.82 * radius, 0.93 * radius)],
                fill=colour(ink),
                width=width,
            )
    angle = gauge_angle(rng, label)
    length, tail = rng.uniform(0.7, 0.9) * radius, rng.uniform(0.1, 0.25) * radius
    base = rng.uniform(0.04, 0.08) * radius
    needle_colour = rng.choice(
        [(0.85, 0.1, 0.05), (0.95, 0.45, 0.05), tuple(ink), (0.9, 0.85, 0.1)]
    )

    def needle(offset):
        tip = _dial_point(centre + offset, length, angle, squash)
        back = _dial_point(centre + offset, tail, angle + 180, squash)
        sides = [_dial_point(centre + offset, base, angle + turn, squash) for turn in (90, -90)]
        return [tip, sides[0], back, sides[1]]

    shadow = Image.new("L", (big, big))
    ImageDraw.Draw(shadow).polygon(needle(rng.uniform(0.02, 0.06, 2) * radius), fill=255)
    shadow = np.asarray(shadow, "float32")[..., None] / 255 * rng.uniform(0.2, 0.45)
    image = Image.fromarray(np.round(np.asarray(image) * (1 - shadow)).astype("uint8"))
    draw = ImageDraw.Draw(image)
    draw.polygon(needle(np.zeros(2)), fill=colour(needle_colour))
    ellipse(rng.uniform(0.07, 0.12) * radius, fill=colour(rng.uniform(0, 1, 3)))
    image = _downsample(image, size)
    if rng.random() < 0.5:  # glare on the glass
        yy, xx = _coordinates(size)
        centre = (cy / SUPERSAMPLING, cx / SUPERSAMPLING) + rng.uniform(
            -0.3, 0.3, 2
        ) * radius / SUPERSAMPLING
        glare = _blob(
            yy,
            xx,
            centre,
            rng.uniform(0.1, 0.25) * radius / SUPERSAMPLING,
            rng.uniform(1.5, 3),
            rng.uniform(0, 180),
        )
        image = image + rng.uniform(0.3, 0.6) * glare[..., None] * (1 - image)
    return _finish(rng, image)


# --- Vehicles seen from above ------------------------------------------------------
# A vehicle is a list of `(polygon, role)` in vehicle coordinates: x along
# it from the back (0) to the front (1), y across; `role` 0 is the body
# colour, 1 a dark part (windows, rotor), 2 a light part (roof detail).


def _box(x0, x1, half_width, cut=0.0):
    """A rectangle from `x0` to `x1`, `half_width` either side, its corners
    cut by `cut` (rounded-looking)."""
    c = min(cut, (x1 - x0) / 2, half_width)
    w = half_width
    return np.array(
        [
            (x0 + c, -w),
            (x1 - c, -w),
            (x1, -w + c),
            (x1, w - c),
            (x1 - c, w),
            (x0 + c, w),
            (x0, w - c),
            (x0, -w + c),
        ]
    )


def _oval(x0, x1, half_width, points=20):
    t = np.linspace(0, 2 * np.pi, points, endpoint=False)
    return np.stack([(x0 + x1) / 2 + (x1 - x0) / 2 * np.cos(t), half_width * np.sin(t)], 1)


def _vehicle_car(rng):
    w = rng.uniform(0.2, 0.25)
    front, back = rng.uniform(0.62, 0.7), rng.uniform(0.15, 0.22)
    return [
        (_box(0, 1, w, 0.08), 0),
        (_box(back, front, 0.85 * w, 0.04), 2),
        (_box(front, front + 0.12, 0.8 * w, 0.02), 1),
        (_box(back - 0.08, back, 0.75 * w, 0.02), 1),
    ]


def _vehicle_truck(rng):
    w = rng.uniform(0.17, 0.21)
    cab = rng.uniform(0.17, 0.22)
    return [
        (_box(0, 1 - cab - 0.03, w, 0.01), 2),
        (_box(1 - cab, 1, 0.92 * w, 0.04), 0),
        (_box(1 - 0.45 * cab, 1 - 0.15 * cab, 0.8 * w, 0.01), 1),
    ]


def _vehicle_bus(rng):
    w = rng.uniform(0.12, 0.15)
    parts = [(_box(0, 1, w, 0.04), 0), (_box(0.9, 0.97, 0.85 * w, 0.01), 1)]
    for x in np.linspace(0.1, 0.8, int(rng.integers(2, 5))):  # roof units
        parts.append((_box(x, x + 0.08, 0.55 * w), 2))
    return parts


def _vehicle_motorbike(rng):
    w = rng.uniform(0.07, 0.1)
    bar = rng.uniform(0.2, 0.28)
    return [
        (_oval(0, 1, w), 0),
        (_box(0.72, 0.76, bar, 0.01), 1),
        (_oval(0.35, 0.6, 1.4 * w), 1),
        (_oval(0.48, 0.62, 0.9 * w), 2),
    ]


def _vehicle_boat(rng):
    w = rng.uniform(0.15, 0.22)
    bow = rng.uniform(0.55, 0.7)
    hull = np.array(
        [
            (0, -0.85 * w),
            (bow, -w),
            (0.85, -0.6 * w),
            (1, 0),
            (0.85, 0.6 * w),
            (bow, w),
            (0, 0.85 * w),
        ]
    )
    cabin = rng.uniform(0.25, 0.45)
    return [
        (hull, 0),
        (_box(cabin, cabin + 0.22, 0.6 * w, 0.03), 2),
        (_box(cabin + 0.18, cabin + 0.22, 0.6 * w), 1),
    ]


def _vehicle_airplane(rng):
    span, sweep, w = rng.uniform(0.8, 1.0), rng.uniform(0.0, 0.2), rng.uniform(0.05, 0.07)
    chord, at = rng.uniform(0.12, 0.18), rng.uniform(0.45, 0.55)
    wing = np.array(
        [
            (at, -w),
            (at + chord, -w),
            (at - sweep + 0.05, -span / 2),
            (at - sweep, -span / 2),
            (at - sweep, span / 2),
            (at - sweep + 0.05, span / 2),
            (at + chord, w),
            (at, w),
        ]
    )
    back = 0.02 - 0.5 * sweep
    tail = np.array(
        [
            (0.02, -0.02),
            (0.1, -0.02),
            (back + 0.03, -0.17),
            (back, -0.17),
            (back, 0.17),
            (back + 0.03, 0.17),
            (0.1, 0.02),
            (0.02, 0.02),
        ]
    )
    return [(wing, 0), (tail, 0), (_oval(0, 1, w), 0), (_oval(0.86, 0.95, 0.6 * w), 1)]


def _vehicle_helicopter(rng):
    w = rng.uniform(0.1, 0.14)
    rotor, turn = rng.uniform(0.4, 0.5), rng.uniform(0, np.pi / 2)
    parts = [
        (_oval(0.45, 1, w), 0),
        (_box(0, 0.5, 0.25 * w), 0),
        (_box(0.02, 0.06, 0.1), 0),
        (_oval(0.82, 0.98, 0.7 * w), 1),
    ]
    for a in (turn, turn + np.pi / 2):  # two crossed rotor blades
        blade = _box(-rotor, rotor, 0.015) @ np.array(
            [[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]]
        )
        parts.append((blade + (0.68, 0), 1))
    return parts


VEHICLES = {
    "car": _vehicle_car,
    "truck": _vehicle_truck,
    "bus": _vehicle_bus,
    "motorbike": _vehicle_motorbike,
    "boat": _vehicle_boat,
    "airplane": _vehicle_airplane,
    "helicopter": _vehicle_helicopter,
}
# Ground seen from above: asphalt, grass, sand, water (jittered per image).
GROUNDS = np.array(
    [(0.3, 0.3, 0.32), (0.3, 0.45, 0.2), (0.7, 0.62, 0.45), (0.15, 0.3, 0.4)], "float32"
)


def draw_vehicle(rng, size, label):
    """A vehicle seen from above, one of seven `VEHICLES` (the class): car,
    truck (cab and trailer), bus (roof units), motorbike (handlebar and
    rider), boat (pointed bow, cabin), airplane (swept wings and tail) or
    helicopter (crossed rotor blades), each with jittered proportions, at a
    random rotation, 45 % to 85 % of the image long whatever the class, in
    a random colour with dark windows and a lighter or darker roof, casting
    a shadow, over ground of any kind (asphalt, grass, sand or water,
    unrelated to the class) with grain, painted markings and 0 to 4 small
    unrelated boxes (parked things, crates); a quarter of the time a tree
    crown hides part of the picture.

    Unlike round 1, heldout2 and shapes: man-made objects of several parts
    whose arrangement, not their size, colour or surroundings, tells the
    class, seen at any rotation.
    """
    big = size * SUPERSAMPLING
    ground = GROUNDS[rng.integers(len(GROUNDS))] + rng.uniform(-0.08, 0.08, 3)
    grain = 0.85 + 0.3 * _smooth_noise(rng, size, max(2, size // 3))
    base = ground * grain[..., None] * (0.9 + 0.2 * _smooth_noise(rng, size, 3))[..., None]
    image = Image.fromarray(np.round(np.clip(base, 0, 1) * 255).astype("uint8"))
    image = image.resize((big, big), Image.BILINEAR)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(0, 4))):  # painted markings
        y0, x0, y1, x1 = rng.uniform(-0.1, 1.1, 4) * big
        paint = (255, 255, 255) if rng.random() < 0.6 else (230, 200, 40)
        draw.line((x0, y0, x1, y1), fill=paint, width=int(rng.integers(1, 3)) * SUPERSAMPLING)
    for _ in range(int(rng.integers(0, 5))):  # small unrelated boxes
        x, y = rng.uniform(0, big, 2)
        w, h = rng.uniform(0.04, 0.12, 2) * big
        draw.rectangle((x, y, x + w, y + h), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    parts = VEHICLES[tuple(VEHICLES)[label]](rng)
    length = rng.uniform(0.45, 0.85) * big
    a = np.deg2rad(rng.uniform(0, 360))
    turn = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    corners = np.concatenate([p for p, _ in parts]) @ turn * length
    offset = big / 2 - (corners.max(0) + corners.min(0)) / 2 + rng.uniform(-0.08, 0.08, 2) * big

    def place(polygon, shift=0.0):
        return [tuple(p) for p in polygon @ turn * length + offset + shift]

    shadow = Image.new("L", (big, big))
    shift = rng.uniform(0.02, 0.07, 2) * big * rng.choice((-1, 1), 2)
    for polygon, _ in parts:
        ImageDraw.Draw(shadow).polygon(place(polygon, shift), fill=255)
    shadow = np.asarray(shadow, "float32")[..., None] / 255 * rng.uniform(0.25, 0.5)
    image = Image.fromarray(np.round(np.asarray(image) * (1 - shadow)).astype("uint8"))
    draw = ImageDraw.Draw(image)
    body = rng.random(3)
    while np.abs(body - ground).max() < 0.3:
        body = rng.random(3)
    roof = np.clip(
        body * rng.uniform(0.6, 0.8) if rng.random() < 0.5 else body + 0.35 * (1 - body), 0, 1
    )
    colours = (body, rng.uniform(0.05, 0.2) + rng.uniform(-0.03, 0.03, 3), roof)
    for polygon, role in parts:
        draw.polygon(
            place(polygon), fill=tuple(int(c) for c in np.round(np.clip(colours[role], 0, 1) * 255))
        )
    image = _downsample(image, size)
    if rng.random() < 0.25:  # a tree crown
        yy, xx = _coordinates(size)
        crown = _blob(yy, xx, rng.uniform(0, size, 2), rng.uniform(0.1, 0.2) * size) > 0.4
        leaves = rng.uniform((0.05, 0.2, 0.05), (0.2, 0.4, 0.15))
        leaves = leaves * (0.7 + 0.6 * _smooth_noise(rng, size, size // 4))[..., None]
        image = np.where(crown[..., None], leaves, image)
    return _finish(rng, image)


# --- Spectrograms (signals over time and frequency) --------------------------------
# A kind draws `(rng, t) -> signal` from `t`, the sample times (ints); the
# frequencies are in cycles a sample (0 to 0.5). Time reversal (a horizontal
# flip of the spectrogram, a default augmentation) keeps every kind: rising
# and falling chirps share a class.


def _envelope(rng, t, minimum=0.4):
    """An on/off envelope: on for a random stretch of at least `minimum` of
    the clip, with soft edges."""
    n = len(t)
    length = rng.uniform(minimum, 1.0) * n
    start = rng.uniform(0, n - length)
    ramp = rng.uniform(0.01, 0.05) * n
    return np.clip(np.minimum(t - start, start + length - t) / ramp, 0, 1)


def _tone(rng, t):
    f = rng.uniform(0.05, 0.45) + rng.uniform(-0.01, 0.01) * t / len(t)
    return _envelope(rng, t) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))


def _harmonics(rng, t):
    """A harmonic stack: 3 to 6 partials of a fundamental, softer upwards."""
    f0 = rng.uniform(0.03, 0.09)
    decay = rng.uniform(0.3, 0.9)
    partials = [k for k in range(1, int(rng.integers(3, 7)) + 1) if k * f0 < 0.48]
    signal = sum(
        decay ** (k - 1) * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi))
        for k in partials
    )
    return _envelope(rng, t) * signal / np.sqrt(len(partials))


def _vibrato(rng, t):
    """A tone whose frequency swings sinusoidally, 1 to 4 swings a clip."""
    fc, depth = rng.uniform(0.1, 0.4), rng.uniform(0.015, 0.05)
    rate = rng.uniform(1, 4) / len(t)
    phase = 2 * np.pi * fc * t + depth / rate * np.sin(
        2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)
    )
    return _envelope(rng, t, 0.6) * np.sin(phase)


def _chirp(rng, t):
    """A linear sweep, up or down, over at least 0.12 cycles a sample."""
    while True:
        f0, f1 = rng.uniform(0.03, 0.47, 2)
        if abs(f1 - f0) >= 0.12:
            break
    envelope = _envelope(rng, t, 0.5)
    on = np.flatnonzero(envelope > 0)
    u = np.clip((t - on[0]) / max(on[-1] - on[0], 1), 0, 1)
    phase = 2 * np.pi * (on[-1] - on[0]) * (f0 * u + 0.5 * (f1 - f0) * u**2)
    return envelope * np.sin(phase)


def _clicks(rng, t):
    """Regular clicks (broadband vertical lines), 4 to 14 a clip."""
    period = len(t) / rng.uniform(4, 14)
    signal = np.zeros(len(t))
    decay = rng.uniform(1, 4)
    for start in np.arange(rng.uniform(0, period), len(t), period).astype(int):
        burst = np.exp(-np.arange(20) / decay) * rng.standard_normal(20)
        signal[start : start + 20] += burst[: len(t) - start]
    return signal


def _noise_bursts(rng, t):
    """1 to 4 bursts of band-limited noise, each 8 % to 25 % of the clip."""
    signal = np.zeros(len(t))
    for _ in range(int(rng.integers(1, 5))):
        centre, width = rng.uniform(0.08, 0.42), rng.uniform(0.04, 0.15)
        spectrum = np.fft.rfft(rng.standard_normal(len(t)))
        f = np.fft.rfftfreq(len(t))
        band = np.fft.irfft(spectrum * (np.abs(f - centre) < width / 2), n=len(t))
        length = rng.uniform(0.08, 0.25) * len(t)
        start = rng.uniform(0, len(t) - length)
        ramp = 0.2 * length
        envelope = np.clip(np.minimum(t - start, start + length - t) / ramp, 0, 1)
        signal += envelope * band / max(band.std(), 1e-6)
    return signal


# `{class: (kind, gain in dB)}`: the gain makes up for how thinly a kind
# spreads over the time-frequency plane (a click over every frequency).
SPECTROGRAMS = {
    "tone": (_tone, 0),
    "harmonics": (_harmonics, 3),
    "vibrato": (_vibrato, 3),
    "chirp": (_chirp, 3),
    "clicks": (_clicks, 12),
    "noise_bursts": (_noise_bursts, 9),
}


def _spectrogram(signal, size):
    """The magnitude (dB) of the short-time Fourier transform of `signal`:
    `size` frames (columns, hop 16) by `size` frequency bins (rows, low at
    the bottom), Hann window of `2 * size - 2` samples."""
    window = 2 * size - 2
    hop = (len(signal) - window) // (size - 1)
    frames = np.stack([signal[k * hop : k * hop + window] for k in range(size)])
    magnitude = np.abs(np.fft.rfft(frames * np.hanning(window), axis=1))
    return 20 * np.log10(magnitude.T[::-1] + 1e-6)


def _colour_map(rng):
    """A random colour map: `values in [0, 1] -> RGB`, 3 or 4 colours of
    rising brightness (dark to light), or grey, sometimes reversed."""
    if rng.random() < 0.25:
        stops = np.linspace(0, 1, 2)[:, None] * np.ones(3)
    else:
        count = int(rng.integers(3, 5))
        stops = np.sort(rng.random((count, 3)), axis=0) * 0.3 + rng.random((count, 3)) * 0.7
        stops = stops[np.argsort(stops.mean(1))]
        stops = (stops - stops.min()) / max(float(stops.max() - stops.min()), 1e-6)
    if rng.random() < 0.2:
        stops = stops[::-1]
    positions = np.linspace(0, 1, len(stops))
    return lambda v: np.stack([np.interp(v, positions, stops[:, c]) for c in range(3)], -1)


def draw_spectrogram(rng, size, label):
    """The spectrogram (`_spectrogram`) of a clip of one of six
    `SPECTROGRAMS` (the class): a steady tone, a harmonic stack, a tone
    with vibrato, a rising or falling chirp, regular clicks, or bursts of
    band-limited noise, each starting and stopping at random, in pink-ish
    background noise at a random signal-to-noise ratio (-10 to 6 dB over
    the signal's active part, plus each kind's gain), with a low mains
    hum half the time and 0 to 3 short tone pips in every class; shown over
    a dynamic range of 35 to 70 dB through a random colour map (or grey),
    under an illumination ramp and noise.

    Unlike round 1, heldout2 and shapes: an image of a signal, not a scene;
    the axes mean time and frequency, so the class is a pattern along one
    axis (steady, periodic, sweeping, broadband), anywhere in the other.
    """
    window = 2 * size - 2
    length = window + (size - 1) * 16
    t = np.arange(length, dtype="float64")
    kind, gain = tuple(SPECTROGRAMS.values())[label]
    signal = kind(rng, t)
    on = np.abs(signal) > 1e-3 * np.abs(signal).max()
    signal = signal / max(float(np.sqrt(np.mean(signal[on] ** 2))), 1e-9)
    signal = signal * 10 ** ((gain + rng.uniform(-10, 6)) / 20)
    beta = rng.uniform(0, 1.5)
    f = np.fft.rfftfreq(length)
    background = np.fft.rfft(rng.standard_normal(length)) * np.maximum(f, 1e-3) ** (-beta / 2)
    background = np.fft.irfft(background, n=length)
    background = background / background.std()
    if rng.random() < 0.5:  # mains hum
        background += rng.uniform(0.3, 1) * np.sin(2 * np.pi * rng.uniform(0.005, 0.02) * t)
    for _ in range(int(rng.integers(0, 4))):  # short tone pips
        start, pip = rng.uniform(0, length), rng.uniform(0.02, 0.05) * length
        envelope = np.clip(np.minimum(t - start, start + pip - t) / 8, 0, 1)
        background += (
            rng.uniform(0.3, 1.5) * envelope * np.sin(2 * np.pi * rng.uniform(0.05, 0.45) * t)
        )
    decibels = _spectrogram(signal + background, size)
    top = decibels.max()
    values = np.clip((decibels - top) / rng.uniform(35, 70) + 1, 0, 1) ** rng.uniform(0.7, 1.5)
    return _finish(rng, _colour_map(rng)(values))


# --- Clouds over land and water (satellite scenes) ----------------------------------

CLOUD_CLASSES = ("land", "water", "cloud", "shadow")


def _shifted(field, dy, dx):
    """`field` moved by `(dy, dx)` pixels (ints), zeros where it moved from."""
    out = np.zeros_like(field)
    h, w = field.shape
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = field[
        max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
    ]
    return out


def draw_clouds(rng, size):
    """A satellite view: land (green to brown, 1/f^beta texture, patches of
    fields) with water (lakes from smooth noise, or a river; 0 to ~50 % of
    the image), under fractal clouds (0 to ~60 %; none in 15 % of the
    images) that cast shadows shifted 3 to 9 pixels at 64 (all the same
    way: the sun), through haze. Distractors: bright land (snow, salt,
    sand) that looks like cloud, dark land (burnt or forest) that looks like
    shadow, and thin cirrus too faint to count as cloud. The mask: 0 land,
    1 water, 2 cloud (opacity >= 0.5), 3 shadow (at least half of the
    shadow's full strength, not under cloud).

    Unlike round 1, heldout2 and shapes: fuzzy-edged classes defined by
    opacity, one class (shadow) a displaced copy of another, and look-alikes
    of both in the ground.
    """
    scale = size / 64
    yy, xx = _coordinates(size)
    green = rng.uniform((0.15, 0.3, 0.1), (0.4, 0.5, 0.25))
    brown = rng.uniform((0.4, 0.3, 0.15), (0.65, 0.5, 0.35))
    mix = _smooth_noise(rng, size, int(rng.integers(2, 6)))[..., None]
    texture = 1 + rng.uniform(0.05, 0.15) * _filtered_noise(rng, size, _power_law(rng))[..., None]
    image = (green + mix * (brown - green)) * texture
    for _ in range(int(rng.integers(0, 5))):  # fields: rotated rectangles
        u, v = _rotated(yy - rng.uniform(0, size), xx - rng.uniform(0, size), rng.uniform(0, 180))
        inside = (np.abs(u) < rng.uniform(4, 12) * scale) & (np.abs(v) < rng.uniform(4, 12) * scale)
        image[inside] = image[inside] * rng.uniform(0.8, 1.2, 3)
    for colour, chance in (
        ((0.85, 0.85, 0.82), 0.3),
        ((0.08, 0.08, 0.06), 0.3),
    ):  # bright, dark land
        if rng.random() < chance:
            patch = _smooth_noise(rng, size, int(rng.integers(3, 7))) > rng.uniform(0.75, 0.9)
            image[patch] = np.clip(colour + rng.uniform(-0.05, 0.05, 3), 0, 1)
    kind = rng.random()
    if kind < 0.5:
        lake = _smooth_noise(rng, size, int(rng.integers(2, 5)))
        water = 1 / (1 + np.exp(-40 * (lake - rng.uniform(0.55, 0.85))))
    elif kind < 0.8:
        water = _coverage(size, _river_points(rng, size), rng.uniform(3, 8) * scale)
    else:
        water = np.zeros((size, size), "float32")
    colour = rng.uniform((0.02, 0.08, 0.15), (0.15, 0.3, 0.4))
    silt = (0.8 + 0.4 * _smooth_noise(rng, size, 3))[..., None]
    image = image * (1 - water[..., None]) + colour * silt * water[..., None]
    mask = np.where(water >= 0.5, 1, 0).astype("uint8")
    if rng.random() < 0.85:
        beta = rng.uniform(2.8, 3.6)
        gain = lambda f, angle: np.where(f > 0, np.maximum(f, 1e-3) ** (-beta / 2), 0)  # noqa: E731
        density = _filtered_noise(rng, size, gain)
        opacity = np.clip((density - rng.uniform(-0.5, 1.5)) * rng.uniform(0.6, 2), 0, 1)
    else:
        opacity = np.zeros((size, size))
    a = rng.uniform(0, 2 * np.pi)
    distance = rng.uniform(3, 9) * scale
    shadow = _shifted(opacity, round(distance * np.sin(a)), round(distance * np.cos(a)))
    image = image * (1 - rng.uniform(0.45, 0.7) * shadow)[..., None]
    mask[(shadow >= 0.5) & (opacity < 0.5)] = 3
    cirrus = (
        rng.uniform(0, 0.35)
        * _smooth_noise(rng, size, int(rng.integers(2, 5)))
        * (rng.random() < 0.4)
    )
    white = (
        rng.uniform(0.8, 1.0)
        * (0.85 + 0.15 * _smooth_noise(rng, size, max(2, size // 8)))[..., None]
    )
    cover = np.maximum(opacity, cirrus)[..., None]
    image = image * (1 - cover) + white * cover
    mask[opacity >= 0.5] = 2
    haze = rng.uniform(0, 0.25)
    image = image * (1 - haze) + haze * np.array((0.7, 0.75, 0.85))
    return _finish(rng, image), mask


# --- Nuclei (touching blobs, void around each) --------------------------------------

NUCLEUS_CLASSES = ("background", "nucleus")


def draw_nuclei(rng, size):
    """A micrograph of 4 to 18 nuclei in 1 to 3 clusters, so that many
    touch or overlap: wobbly ellipses 2.5 to 6.5 pixels in radius at 48
    (up to 1.5 times that along them; a pixel belongs to the nucleus it lies
    deepest in), with chromatin grain and soft or sharp edges, stained either as fluorescence (bright on
    dark) or as brightfield (dark purple on pink), among small debris and
    0 to 2 faint out-of-focus nuclei (background). The mask holds 1 in the
    nuclei, and `VOID` on a ring one pixel wide around each nucleus:
    every pixel with a 4-neighbour in another nucleus or the background, on
    one side of that border (the background's, or the lower-numbered
    nucleus's), so no nucleus pixel touches a background pixel or another
    nucleus's.

    Unlike round 1, heldout2 and shapes: binary, small instances crowded
    together, with void between touching instances as well as around them.
    """
    scale = size / 48
    yy, xx = _coordinates(size)
    count = int(rng.integers(4, 19))
    clusters = rng.uniform(0.2, 0.8, (int(rng.integers(1, 4)), 2)) * size
    depth = np.full((size, size), np.inf)
    instance = np.full((size, size), -1)
    brightness = np.zeros((size, size))
    edge = rng.uniform(0.04, 0.2)
    for k in range(count):
        centre = clusters[rng.integers(len(clusters))] + rng.normal(
            0, rng.uniform(4, 10) * scale, 2
        )
        radius = rng.uniform(2.5, 6.5) * scale
        u, v = _rotated(yy - centre[0], xx - centre[1], rng.uniform(0, 180))
        u = u / rng.uniform(1, 1.5)
        theta = np.arctan2(v, u)
        wobble = 1 + sum(
            rng.uniform(0, 0.08) * np.cos(m * theta + rng.uniform(0, 2 * np.pi)) for m in (2, 3, 5)
        )
        rho = np.hypot(u, v) / (radius * wobble)
        inside = (rho < 1) & (rho < depth)
        instance[inside] = k
        depth = np.minimum(depth, rho)
        soft = 1 / (1 + np.exp((rho - 1) / edge))
        brightness = np.maximum(brightness, rng.uniform(0.5, 1.0) * soft)
    for _ in range(int(rng.integers(0, 3))):  # faint, out of focus: background
        weight = rng.uniform(0.1, 0.25)
        brightness += weight * _blob(yy, xx, rng.uniform(0, size, 2), rng.uniform(3, 6) * scale)
    for _ in range(int(rng.integers(2, 12))):  # debris
        weight = rng.uniform(0.3, 0.8)
        brightness += weight * _blob(yy, xx, rng.uniform(0, size, 2), rng.uniform(0.4, 1.0) * scale)
    grain = 0.75 + 0.5 * _smooth_noise(rng, size, max(2, size // 3))
    brightness = np.clip(brightness * grain, 0, 1.2)[..., None]
    if rng.random() < 0.5:  # fluorescence
        background = rng.uniform(0, 0.15, 3)
        stain = np.eye(3)[rng.choice(3, p=(0.2, 0.3, 0.5))] * rng.uniform(0.7, 1) + rng.uniform(
            0, 0.3, 3
        )
        image = background + brightness * (stain - background)
    else:  # brightfield
        pink = rng.uniform((0.8, 0.55, 0.7), (0.95, 0.75, 0.85))
        pink = pink * (0.9 + 0.2 * _smooth_noise(rng, size, 4))[..., None]
        purple = rng.uniform((0.2, 0.1, 0.35), (0.45, 0.3, 0.6))
        image = pink + np.clip(brightness, 0, 1) * (purple - pink)
    mask = (instance >= 0).astype("uint8")
    void = np.zeros((size, size), bool)
    for first, second, near, far in (
        (instance[:-1], instance[1:], void[:-1], void[1:]),
        (instance[:, :-1], instance[:, 1:], void[:, :-1], void[:, 1:]),
    ):
        different = first != second
        near |= different & (first < second)
        far |= different & (second < first)
    mask[void] = VOID
    return _finish(rng, image), mask


# --- The data sets and writing them -----------------------------------------


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A generated data set: how to draw it and how much of it to write.

    Attributes:
        name: the key in `DATASETS`, and the folder name.
        task: `"classification"` or `"segmentation"`.
        draw: `(rng, size, label) -> image` (classification) or
            `(rng, size) -> (image, mask)` (segmentation), uint8 arrays.
        image_size: height and width in pixels.
        class_names: class sub-folder names (classification) or the names
            of mask values `0, 1, ...` (segmentation).
        split_sizes: `{split folder: number of images}`, `"train"` first.
        image_format: `"png"` or `"jpeg"` (masks are always PNG).
        void_borders: whether `write_dataset` marks every border between
            classes `VOID` in the masks.
        draws_void: whether `draw` marks some pixels `VOID` itself.
        group: the key in `GROUPS` (keyword only, required): which round
            of judging the data set belongs to.
    """

    name: str
    task: str
    draw: object
    image_size: int
    class_names: tuple
    split_sizes: dict
    image_format: str = "png"
    void_borders: bool = False
    draws_void: bool = False
    group: str = dataclasses.field(kw_only=True)

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def mask_values(self):
        """The values the masks of this segmentation data set hold."""
        return set(range(self.num_classes)) | (
            {VOID} if self.void_borders or self.draws_void else set()
        )


DATASETS = {
    dataset.name: dataset
    for dataset in (
        # Round 1: looked at while revising the defaults (2026-12-01).
        Dataset(
            "textures",
            "classification",
            draw_texture,
            32,
            tuple(TEXTURES),
            {"train": 11000, "test": 2000},
            group="round1",
        ),
        Dataset(
            "polygons",
            "classification",
            draw_polygon,
            64,
            POLYGON_CLASSES,
            {"train": 3000, "val": 500, "test": 1000},
            image_format="jpeg",
            group="round1",
        ),
        Dataset(
            "cells",
            "classification",
            draw_cells,
            96,
            CELL_CLASSES,
            {"train": 550, "test": 600},
            group="round1",
        ),
        Dataset(
            "voronoi",
            "segmentation",
            draw_voronoi,
            64,
            VORONOI_CLASSES,
            {"train": 800, "validation": 200, "test": 400},
            image_format="jpeg",
            void_borders=True,
            group="round1",
        ),
        Dataset(
            "roads",
            "segmentation",
            draw_roads,
            48,
            ROADS_CLASSES,
            {"train": 1100, "test": 400},
            group="round1",
        ),
        # Round 2: held out for a verdict, now used while revising the defaults.
        Dataset(
            "leaves",
            "classification",
            draw_leaf,
            48,
            tuple(LEAF_FAMILIES),
            {"train": 2000, "test": 800},
            image_format="jpeg",
            group="heldout2",
        ),
        Dataset(
            "fabrics",
            "classification",
            draw_fabric,
            64,
            tuple(FABRICS),
            {"train": 800, "val": 200, "test": 600},
            group="heldout2",
        ),
        Dataset(
            "glyphs",
            "classification",
            draw_glyph,
            32,
            tuple(GLYPHS),
            {"train": 6000, "test": 1200},
            group="heldout2",
        ),
        Dataset(
            "fields",
            "segmentation",
            draw_fields,
            64,
            FIELD_CLASSES,
            {"train": 700, "test": 300},
            image_format="jpeg",
            draws_void=True,
            group="heldout2",
        ),
        Dataset(
            "cracks",
            "segmentation",
            draw_cracks,
            48,
            CRACK_CLASSES,
            {"train": 1500, "test": 400},
            group="heldout2",
        ),
        # Held out, round 3: no part in choosing the defaults.
        Dataset(
            "gauges",
            "classification",
            draw_gauge,
            44,
            GAUGE_CLASSES,
            {"train": 1500, "test": 600},
            image_format="jpeg",
            group="heldout3",
        ),
        Dataset(
            "vehicles",
            "classification",
            draw_vehicle,
            40,
            tuple(VEHICLES),
            {"train": 4000, "val": 500, "test": 1000},
            group="heldout3",
        ),
        Dataset(
            "spectrograms",
            "classification",
            draw_spectrogram,
            64,
            tuple(SPECTROGRAMS),
            {"train": 600, "test": 400},
            group="heldout3",
        ),
        Dataset(
            "clouds",
            "segmentation",
            draw_clouds,
            64,
            CLOUD_CLASSES,
            {"train": 800, "test": 300},
            image_format="jpeg",
            group="heldout3",
        ),
        Dataset(
            "nuclei",
            "segmentation",
            draw_nuclei,
            48,
            NUCLEUS_CLASSES,
            {"train": 1200, "val": 200, "test": 400},
            draws_void=True,
            group="heldout3",
        ),
    )
}
# `{group: names of its data sets}`, in the order of `DATASETS`.
GROUPS = {
    group: tuple(d.name for d in DATASETS.values() if d.group == group)
    for group in dict.fromkeys(d.group for d in DATASETS.values())
}
# The group that judges the defaults now (held out); round1 and heldout2 were
# used while revising the defaults and are kept for reference.
DEFAULT_GROUP = "heldout3"
EXTENSIONS = {"png": ".png", "jpeg": ".jpg"}


def _save(array, path, image_format="png"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    options = {"quality": 90} if image_format == "jpeg" else {}
    Image.fromarray(array).save(path, format=image_format.upper(), **options)


def write_dataset(name, folder, *, seed=0, max_images=None):
    """Draws a data set of `DATASETS` and writes it to `folder` (see the
    module docstring for the layout). Classification labels take turns
    (image `i` has class `i % num_classes`), so every split is balanced.

    Args:
        name: a key of `DATASETS`.
        folder: a folder that does not exist yet, or an empty one.
        seed: int seed of the drawing.
        max_images: None, or at most this many images a split (a quick,
            small version: the first images of each full split).

    Returns:
        `{split folder: number of images written}`.
    """
    dataset = DATASETS[name]
    if os.path.exists(folder) and os.listdir(folder):
        raise FileExistsError(
            f"Folder {folder!r} is not empty: generated data is written to a new folder."
        )
    sizes = {split: min(count, max_images or count) for split, count in dataset.split_sizes.items()}
    extension = EXTENSIONS[dataset.image_format]
    for number, (split, count) in enumerate(sizes.items()):
        for index in range(count):
            rng = np.random.default_rng((seed, number, index))
            stem = f"{split}_{index:05d}"
            if dataset.task == "classification":
                label = index % dataset.num_classes
                image = dataset.draw(rng, dataset.image_size, label)
                path = os.path.join(folder, split, dataset.class_names[label], stem + extension)
                _save(image, path, dataset.image_format)
                continue
            image, mask = dataset.draw(rng, dataset.image_size)
            if dataset.void_borders:
                mask = _void_borders(mask)
            _save(
                image, os.path.join(folder, split, "images", stem + extension), dataset.image_format
            )
            _save(mask, os.path.join(folder, split, "masks", stem + ".png"))
    return sizes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="a new folder; each data set goes to OUT_DIR/NAME")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--datasets",
        nargs="+",
        choices=sorted(DATASETS),
        metavar="NAME",
        help=f"data sets by name: {', '.join(DATASETS)} (default: all)",
    )
    which.add_argument(
        "--group",
        choices=sorted(GROUPS),
        help="the data sets of one group: "
        + "; ".join(f"{group}: {', '.join(names)}" for group, names in GROUPS.items()),
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-images", type=int, metavar="N", help="at most N images a split")
    args = parser.parse_args()
    for name in args.datasets or (GROUPS[args.group] if args.group else DATASETS):
        sizes = write_dataset(
            name, os.path.join(args.out_dir, name), seed=args.seed, max_images=args.max_images
        )
        print(f"{name}: {os.path.join(args.out_dir, name)} {sizes}")


if __name__ == "__main__":
    main()
