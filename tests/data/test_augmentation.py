"""Augmentation with Keras layers, run eagerly on every backend."""

import keras
import numpy as np
import pytest

from keras_cvlec.data import (
    Augmentation,
    classification_augmentation,
    default_augmentation,
    segmentation_augmentation,
    shapes_dataset,
)

OFF = dict(flip=None, translation=0.0, zoom=0.0, rotation=0.0, brightness=0.0, contrast=0.0)


@pytest.fixture(scope="module")
def shapes():
    return shapes_dataset("validation", num_images=8, image_size=16, seed=5)


def numpy(batch):
    return tuple(keras.ops.convert_to_numpy(t) for t in batch)


@pytest.mark.parametrize("inputs", ["numpy", "tensors"])
def test_flip_moves_image_and_mask_together(shapes, inputs):
    """NumPy batches run as a TensorFlow graph (with TensorFlow installed),
    backend tensors eagerly on the backend."""
    images, masks = shapes
    augment = segmentation_augmentation(**{**OFF, "flip": "horizontal"}, seed=2)
    if inputs == "tensors":
        out_images, out_masks = numpy(
            augment(keras.ops.convert_to_tensor(images), keras.ops.convert_to_tensor(masks))
        )
    else:
        out_images, out_masks = augment(images, masks)
        assert isinstance(out_images, np.ndarray) and isinstance(out_masks, np.ndarray)
    assert out_masks.dtype == np.int32 and out_images.dtype == np.float32
    flipped = []
    for image, mask, out_image, out_mask in zip(images, masks, out_images, out_masks):
        was_flipped = not np.allclose(out_image, image)  # noisy images are never symmetric
        flipped.append(was_flipped)
        np.testing.assert_array_equal(out_mask, np.flip(mask, axis=1) if was_flipped else mask)
        np.testing.assert_allclose(out_image, np.flip(image, axis=1) if was_flipped else image)
    assert 0 < sum(flipped) < len(flipped)


def test_geometric_transforms_keep_class_ids_and_align(shapes):
    """Rotation, zoom and translation: masks keep their class ids and match
    the image transformed alongside (an image that encodes its own mask)."""
    _, masks = shapes
    encoded = np.repeat(masks[..., None] / 3.0, 3, axis=-1).astype("float32")
    augment = segmentation_augmentation(
        **{**OFF, "translation": 0.2, "zoom": 0.3, "rotation": 0.1}, seed=0
    )
    out_images, out_masks = numpy(augment(encoded, masks))
    assert out_masks.shape == masks.shape and out_images.shape == encoded.shape
    assert set(np.unique(out_masks)) <= {0, 1, 2, 3}
    assert 0.0 <= out_images.min() and out_images.max() <= 1.0
    assert (out_masks != masks).mean() > 0.1  # it moved
    # Bilinear images differ from nearest masks only along region edges:
    # inside regions (3x3 neighbourhood of one class) they agree.
    decoded = np.round(out_images[..., 0] * 3)
    padded = np.pad(out_masks, ((0, 0), (1, 1), (1, 1)), mode="edge")
    interior = np.ones(out_masks.shape, bool)
    for dy in range(3):
        for dx in range(3):
            interior &= padded[:, dy : dy + 16, dx : dx + 16] == out_masks
    assert interior.mean() > 0.5 and (decoded == out_masks)[interior].mean() > 0.98
    assert (decoded == out_masks).mean() > (decoded == masks).mean() + 0.03


def _two_class_masks(masks):
    """Masks of classes 0 and 3 only: a blend of the two would read 1 or 2."""
    return np.where(masks > 0, 3, 0).astype("int32")


@pytest.mark.parametrize("inputs", ["numpy", "tensors"])
def test_rotation_never_adds_a_class_to_a_mask(shapes, inputs):
    images, masks = shapes
    masks = _two_class_masks(masks)
    augment = segmentation_augmentation(**{**OFF, "rotation": 0.25}, seed=3)
    if inputs == "tensors":
        images, masks_in = keras.ops.convert_to_tensor(images), keras.ops.convert_to_tensor(masks)
        _, out_masks = numpy(augment(images, masks_in))
    else:
        _, out_masks = augment(images, masks)
    assert set(np.unique(out_masks).tolist()) == {0, 3}
    assert (out_masks != masks).mean() > 0.05  # it rotated


def test_rotated_mask_is_the_nearest_neighbour_rotation(shapes):
    """The mask gets the image's rotation with nearest interpolation: equal
    to Keras's affine transform of the same matrix, and every pixel whose
    source point lies inside the mask is one of its four neighbours there."""
    _, masks = shapes
    masks = _two_class_masks(masks)
    augment = segmentation_augmentation(**{**OFF, "rotation": 0.25}, seed=3)
    (layer,) = augment.pipeline.layers
    x = keras.ops.convert_to_tensor(masks[..., None].astype("float32"))
    transformation = layer.get_random_transformation({"images": x}, training=True)
    matrix = keras.ops.convert_to_numpy(transformation["rotation_matrix"]).copy()
    out = keras.ops.convert_to_numpy(layer.transform_segmentation_masks(x, transformation))[..., 0]

    def rotate(interpolation):
        rotated = keras.ops.image.affine_transform(
            x,
            keras.ops.convert_to_tensor(matrix.copy()),
            interpolation=interpolation,
            fill_mode=layer.fill_mode,
            fill_value=layer.fill_value,
        )
        return keras.ops.convert_to_numpy(rotated)[..., 0]

    np.testing.assert_array_equal(out, rotate("nearest"))
    assert not np.array_equal(np.floor(rotate("bilinear")), out)  # the two differ here
    # NumPy: output (x, y) samples the input at ((a0 x + a1 y + a2) / k, ...).
    rows, cols = np.meshgrid(np.arange(16), np.arange(16), indexing="ij")
    checked = 0
    for mask, result, (a0, a1, a2, b0, b1, b2, c0, c1) in zip(masks, out, matrix):
        k = c0 * cols + c1 * rows + 1.0
        src_x, src_y = (a0 * cols + a1 * rows + a2) / k, (b0 * cols + b1 * rows + b2) / k
        inside = (src_x >= 0) & (src_x <= 15) & (src_y >= 0) & (src_y <= 15)
        neighbours = [
            mask[np.clip(fy(src_y), 0, 15).astype(int), np.clip(fx(src_x), 0, 15).astype(int)]
            for fy in (np.floor, np.ceil)
            for fx in (np.floor, np.ceil)
        ]
        matches = np.any([result == n for n in neighbours], axis=0)
        assert matches[inside].all()
        checked += inside.sum()
    assert checked > 0.5 * out.size


def test_photometric_changes_images_only(shapes):
    images, masks = shapes
    keras.config.set_dtype_policy("mixed_float16")
    augment = segmentation_augmentation(**{**OFF, "brightness": 0.3, "contrast": 0.3}, seed=1)
    out_images, out_masks = numpy(augment(images, masks))
    np.testing.assert_array_equal(out_masks, masks)
    assert out_images.dtype == np.float32  # the layers are float32 under mixed precision
    assert not np.allclose(out_images, images)
    assert 0.0 <= out_images.min() and out_images.max() <= 1.0
    # The largest seed: the layers' seeds `seed + i` wrap around.
    largest = segmentation_augmentation(
        **{**OFF, "brightness": 0.3, "contrast": 0.3}, seed=2**31 - 1
    )
    assert [layer.seed for layer in largest.pipeline.layers] == [2**31 - 1, 0]
    assert numpy(largest(images, masks))[0].shape == images.shape


def test_classification_default_and_mixing():
    images, labels = shapes_dataset("test", num_images=8, image_size=16, task="classification")
    out_images, out_labels = numpy(
        default_augmentation("classification", num_classes=3, seed=0)(images, labels)
    )
    assert out_images.shape == images.shape and 0.0 <= out_images.min() and out_images.max() <= 1.0
    assert out_labels.dtype == np.int32
    np.testing.assert_array_equal(out_labels, labels)  # geometric/RandAugment keep labels
    assert not np.allclose(out_images, images)
    mixing = classification_augmentation(3, cutmix_alpha=1.0, mixup_alpha=0.2, seed=0)
    assert mixing.one_hot
    out_images, soft = numpy(mixing(images, labels))
    assert soft.shape == (8, 3) and soft.dtype == np.float32
    np.testing.assert_allclose(soft.sum(1), 1.0, atol=1e-5)
    assert soft.min() >= 0.0 and (soft.max(1) < 1.0).any()  # some labels were blended
    assert 0.0 <= out_images.min() and out_images.max() <= 1.0
    # Seeded: a second augmentation of the same seed draws the same batches.
    again = classification_augmentation(3, cutmix_alpha=1.0, mixup_alpha=0.2, seed=0)
    for first, second in zip((out_images, soft), numpy(again(images, labels))):
        np.testing.assert_allclose(first, second, atol=1e-6)
    assert not np.allclose(numpy(mixing(images, labels))[0], out_images)  # a new draw


def test_rand_augment_configuration():
    """Only configured here: RandAugment takes minutes to run (or compile)
    eagerly and inside tf.data on the JAX and torch backends."""
    augment = classification_augmentation(rand_augment_ops=3, rand_augment_factor=0.7, seed=4)
    layer = augment.pipeline.layers[-1]
    assert isinstance(layer, keras.layers.RandAugment) and not augment.one_hot
    assert (layer.num_ops, layer.factor, tuple(layer.value_range), layer.seed) == (
        3,
        (0.0, 0.7),
        (0.0, 1.0),
        6,
    )
    assert [type(layer).__name__ for layer in augment.pipeline.layers] == [
        "RandomFlip",
        "RandomTranslation",
        "RandAugment",
    ]


def test_bad_arguments():
    with pytest.raises(ValueError, match="Unknown `flip`: 'diagonal'"):
        segmentation_augmentation(flip="diagonal")
    with pytest.raises(ValueError, match="`zoom` must be >= 0.0. Received: zoom=-0.1"):
        segmentation_augmentation(zoom=-0.1)
    with pytest.raises(
        TypeError, match="`num_classes` must be an int >= 2. Received: num_classes=None"
    ):
        classification_augmentation(mixup_alpha=0.2)
    with pytest.raises(ValueError, match="classification task only"):
        Augmentation("segmentation", [keras.layers.MixUp()], num_classes=3)
    with pytest.raises(ValueError, match="Unknown `task`: 'detection'"):
        default_augmentation("detection")
