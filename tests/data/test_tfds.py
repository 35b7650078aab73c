"""tensorflow-datasets loaders, offline with `tfds.testing.mock_data`."""

import numpy as np
import pytest

from keras_cvlec.data import TFDS_DATASETS, load_dataset, load_tfds
from keras_cvlec.data.tfds import tfds_split

tf = pytest.importorskip("tensorflow")
tfds = pytest.importorskip("tensorflow_datasets")

# A trimap as tfds stores it (1 pet, 2 background, 3 border) and the classes
# it must become (0 background, 1 pet, 2 border).
TRIMAP = np.array([[2, 2, 3, 3], [2, 3, 1, 1], [3, 1, 1, 1], [2, 3, 1, 2]], "uint8")
CLASSES = np.array([[0, 0, 2, 2], [0, 2, 1, 1], [2, 1, 1, 1], [0, 2, 1, 0]], "int32")


def pet_examples(trimap, num_examples=5):
    """A mock `as_dataset` serving oxford_iiit_pet examples with `trimap`
    (as a PNG-decoded mask, (H, W, 1) uint8) and known images and labels."""

    def as_dataset(self, *args, **kwargs):
        height, width = trimap.shape
        images = np.arange(num_examples * height * width * 3) % 256
        return tf.data.Dataset.from_tensor_slices(
            {
                "image": images.reshape(num_examples, height, width, 3).astype("uint8"),
                "segmentation_mask": np.repeat(trimap[None, :, :, None], num_examples, 0),
                "label": np.arange(num_examples) * 7 % 37,
                "species": np.zeros(num_examples, "int64"),
                "file_name": [f"pet{i}.jpg" for i in range(num_examples)],
                "head_bbox": np.zeros((num_examples, 4), "float32"),
            }
        )

    return tfds.testing.mock_data(as_dataset_fn=as_dataset)


def batches(dataset):
    return [(x.numpy(), y.numpy()) for x, y in dataset]


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "imagenette"])
def test_classification_batches(name):
    with tfds.testing.mock_data(num_examples=6):
        dataset, info = load_dataset(name, "test", image_size=(16, 12), batch_size=4)
        default = load_tfds(name, "validation")[1]
        data = batches(dataset)
    assert info.task == "classification" and info.image_size == (16, 12)
    assert info.num_classes == {"cifar10": 10, "cifar100": 100, "imagenette": 10}[name]
    assert len(info.class_names) == info.num_classes
    assert default.image_size == (TFDS_DATASETS[name].image_size,) * 2
    assert [x.shape for x, _ in data] == [(4, 16, 12, 3), (2, 16, 12, 3)]
    images = np.concatenate([x for x, _ in data])
    labels = np.concatenate([y for _, y in data])
    assert images.dtype == np.float32 and labels.dtype == np.int32 and labels.shape == (6,)
    assert 0.0 <= images.min() and images.max() <= 1.0 and images.max() > 0.5
    assert 0 <= labels.min() and labels.max() < info.num_classes
    with tfds.testing.mock_data(num_examples=6):
        one_hot, _ = load_dataset(name, "test", image_size=(16, 12), batch_size=4, one_hot=True)
        one_hot = np.concatenate([y for _, y in batches(one_hot)])
    assert one_hot.dtype == np.float32
    np.testing.assert_array_equal(one_hot, np.eye(info.num_classes)[labels])


def test_pet_trimap_remapped_exactly_and_images_scaled():
    with pet_examples(TRIMAP):
        dataset, info = load_tfds("oxford_iiit_pet", "test", image_size=4, batch_size=3)
        data = batches(dataset)
        resized = batches(load_tfds("oxford_iiit_pet", "test", image_size=9, batch_size=5)[0])
    assert info.class_names == ("background", "pet", "border") and info.num_classes == 3
    assert [(x.shape, y.shape, y.dtype) for x, y in data] == [
        ((3, 4, 4, 3), (3, 4, 4), np.int32),
        ((2, 4, 4, 3), (2, 4, 4), np.int32),
    ]
    for _, masks in data:
        np.testing.assert_array_equal(masks, np.broadcast_to(CLASSES, masks.shape))
    # Same-size bilinear resize is the identity: images are the uint8 / 255.
    expected = (np.arange(5 * 16 * 3) % 256).reshape(5, 4, 4, 3) / 255.0
    np.testing.assert_allclose(np.concatenate([x for x, _ in data]), expected, atol=1e-6)
    # Upsampled with nearest: only class ids, the same fractions of each.
    masks = resized[0][1]
    assert masks.shape == (5, 9, 9) and set(np.unique(masks)) == {0, 1, 2}


def test_pet_breeds_and_bad_trimap():
    with pet_examples(TRIMAP):
        dataset, info = load_dataset("oxford_iiit_pet", task="classification", batch_size=8, image_size=4, shuffle=False)
        labels = batches(dataset)[0][1]
        assert len(batches(load_tfds("oxford_iiit_pet", batch_size=8, image_size=4, num_images=3)[0])[0][0]) == 3
    assert info.num_classes == 37 and info.task == "classification"
    np.testing.assert_array_equal(labels, np.arange(5) * 7 % 37)
    with pet_examples(np.where(TRIMAP == 3, 0, TRIMAP).astype("uint8")):
        with pytest.raises(tf.errors.InvalidArgumentError, match="1 \\(pet\\), 2 \\(background\\) or 3"):
            batches(load_tfds("oxford_iiit_pet", "test", image_size=4)[0])


def test_augmented_training_pipeline_keeps_class_ids():
    """Keras augmentation layers inside tf.data on every backend."""
    with pet_examples(TRIMAP, num_examples=8):
        plain = batches(load_tfds("oxford_iiit_pet", image_size=8, batch_size=4, shuffle=False)[0])
        augmented, _ = load_tfds("oxford_iiit_pet", image_size=8, batch_size=4, shuffle=False, augment=True, seed=1)
        augmented = batches(augmented)
    assert [x.shape for x, _ in augmented] == [(4, 8, 8, 3)] * 2
    for (x, y), (plain_x, _) in zip(augmented, plain):
        assert not np.allclose(x, plain_x)
        assert x.dtype == np.float32 and y.dtype == np.int32 and y.shape == (4, 8, 8)
        assert 0.0 <= x.min() and x.max() <= 1.0
        assert set(np.unique(y)) <= {0, 1, 2}


def test_split_mapping_and_bad_arguments():
    assert [tfds_split("cifar10", s) for s in ("train", "validation", "test")] == [
        "train[:90%]",
        "train[90%:]",
        "test",
    ]
    assert tfds_split("imagenette", "test") == "validation"
    with pytest.raises(ValueError, match="'cifar10' has no 'segmentation' task. It supports: 'classification'"):
        load_tfds("cifar10", task="segmentation")
    with pytest.raises(ValueError, match="Unknown `name`: 'mnist'"):
        load_tfds("mnist")
    with pytest.raises(ValueError, match="`augment` is for training data only"):
        load_tfds("cifar10", "test", augment=True)
