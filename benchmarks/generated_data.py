"""Generated data sets that judge the training defaults: they play no part in
choosing them, and none looks like the embedded shapes data (one to three
filled circles, squares or triangles on a smooth background) or sklearn's
8x8 digits.

Each data set is drawn with NumPy and Pillow and written to disk as a user
would have it, in the folder layouts `keras_cvlec.data.folders` reads:

    NAME/train/<class>/<image>.png      classification: class sub-folders
    NAME/train/images/<stem>.jpg|png    segmentation: images, and 8-bit PNG
    NAME/train/masks/<stem>.png         masks of class indices (255: void)
    NAME/test/...                       the held-out test split, the same way
    NAME/val/... or NAME/validation/... a validation split, in some data sets

Every data set has a test split (a flat folder has none). Three of them have
only `train/` and `test/`, as many downloads come: the loader then holds out
10 % of `train/` for validation. The masks of `voronoi` mark the borders
between regions 255 ("void"), which training leaves out of the loss and
metrics. These layouts, the `val/` alias and void need the package from
commit f11810d on (folder loader 5234e59; before f11810d, `keras-cvlec
train` failed plotting a mask holding 255).

Deterministic: image `i` of a split is drawn from
`numpy.random.default_rng((seed, split number, i))`, so the same seed writes
the same bytes, and a smaller split is a prefix of a larger one.

    python benchmarks/generated_data.py OUT_DIR [--datasets NAME ...] [--max-images N]
"""

import argparse
import dataclasses
import os

import numpy as np
from PIL import Image, ImageDraw

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


def _void_borders(mask):
    """`mask` with pixels next to a pixel of another class set to `VOID`: a
    band about two pixels wide on every border between classes, as VOC marks
    object outlines."""
    border = np.zeros(mask.shape, bool)
    vertical = mask[1:] != mask[:-1]
    horizontal = mask[:, 1:] != mask[:, :-1]
    border[1:] |= vertical
    border[:-1] |= vertical
    border[:, 1:] |= horizontal
    border[:, :-1] |= horizontal
    return np.where(border, VOID, mask).astype("uint8")


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
    swing = rng.uniform(0.4, 0.8) * period * np.sin(2 * np.pi * v / wavelength + rng.uniform(0, 2 * np.pi))
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


VORONOI_CLASSES = ("horizontal_stripes", "vertical_stripes", "dots", "checkerboard", "blotches", "speckle")


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


def _clutter(rng, size):
    """A supersampled RGB Pillow image: a two-colour smooth field crossed by
    random strokes and ellipse outlines of random colours."""
    big = size * SUPERSAMPLING
    first, second = _colour_pair(rng, contrast=0.1)
    field = _smooth_noise(rng, big, int(rng.integers(2, 6)))[..., None]
    image = Image.fromarray(np.round((first + field * (second - first)) * 255).astype("uint8"))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(4, 12))):
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
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
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
        ends.append((centre[1] + length * np.cos(angle + turn), centre[0] + length * np.sin(angle + turn)))
    return [ends[0], (centre[1], centre[0]), ends[1]]


def _river_points(rng, size):
    """A meandering river: a sine wave of random amplitude and wavelength
    along a random direction, running past the image on both sides."""
    along = np.linspace(-1.5, 1.5, 120) * size
    across = rng.uniform(0.03, 0.12) * size * np.sin(
        2 * np.pi * along / (rng.uniform(0.4, 1.0) * size) + rng.uniform(0, 2 * np.pi)
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
        void_borders: whether masks mark borders between classes `VOID`.
    """

    name: str
    task: str
    draw: object
    image_size: int
    class_names: tuple
    split_sizes: dict
    image_format: str = "png"
    void_borders: bool = False

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def mask_values(self):
        """The values the masks of this segmentation data set hold."""
        return set(range(self.num_classes)) | ({VOID} if self.void_borders else set())


DATASETS = {
    dataset.name: dataset
    for dataset in (
        Dataset("textures", "classification", draw_texture, 32, tuple(TEXTURES),
                {"train": 11000, "test": 2000}),
        Dataset("polygons", "classification", draw_polygon, 64, POLYGON_CLASSES,
                {"train": 3000, "val": 500, "test": 1000}, image_format="jpeg"),
        Dataset("cells", "classification", draw_cells, 96, CELL_CLASSES,
                {"train": 550, "test": 600}),
        Dataset("voronoi", "segmentation", draw_voronoi, 64, VORONOI_CLASSES,
                {"train": 800, "validation": 200, "test": 400}, image_format="jpeg",
                void_borders=True),
        Dataset("roads", "segmentation", draw_roads, 48, ROADS_CLASSES,
                {"train": 1100, "test": 400}),
    )
}
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
        raise FileExistsError(f"Folder {folder!r} is not empty: generated data is written to a new folder.")
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
            _save(image, os.path.join(folder, split, "images", stem + extension), dataset.image_format)
            _save(mask, os.path.join(folder, split, "masks", stem + ".png"))
    return sizes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="a new folder; each data set goes to OUT_DIR/NAME")
    parser.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), default=list(DATASETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-images", type=int, metavar="N", help="at most N images a split")
    args = parser.parse_args()
    for name in args.datasets:
        sizes = write_dataset(name, os.path.join(args.out_dir, name), seed=args.seed,
                              max_images=args.max_images)
        print(f"{name}: {os.path.join(args.out_dir, name)} {sizes}")


if __name__ == "__main__":
    main()
