"""tensorflow-datasets loaders, offline with `tfds.testing.mock_data` and a
tiny cifar10 prepared from fake files."""

import contextlib
import signal
import socket
import time
from unittest import mock

import numpy as np
import pytest

from keras_cvlec.data import TFDS_DATASETS, load_dataset, load_tfds, set_epoch
from keras_cvlec.data.tfds import DatasetUnavailableError, tfds_split

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


@contextlib.contextmanager
def offline(seconds=30):
    """No host name resolves (what a machine without network sees), and the
    block fails with TimeoutError after `seconds` instead of hanging."""

    def no_dns(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    def timeout(*args):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(seconds)
    try:
        with mock.patch.object(socket, "getaddrinfo", no_dns):
            yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# A fake cifar-10-binary.tar.gz: 5 train files of 2 records and a test file of
# 4, each record a label byte and a 3x32x32 image whose pixels are the label.
CIFAR_TRAIN_LABELS = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3]
CIFAR_TEST_LABELS = [8, 9, 7, 9]


@pytest.fixture(scope="module")
def cifar10_dir(tmp_path_factory):
    """A tfds data_dir with cifar10 prepared from the fake files."""
    folder = tmp_path_factory.mktemp("cifar_download")
    files = folder / "cifar-10-batches-bin"
    files.mkdir()
    (files / "batches.meta.txt").write_text("\n".join(f"class{i}" for i in range(10)))

    def write(path, labels):
        path.write_bytes(b"".join(bytes([label] * (1 + 3072)) for label in labels))

    for i in range(5):
        write(files / f"data_batch_{i + 1}.bin", CIFAR_TRAIN_LABELS[2 * i : 2 * i + 2])
    write(files / "test_batch.bin", CIFAR_TEST_LABELS)
    data_dir = tmp_path_factory.mktemp("tfds")
    with mock.patch.object(
        tfds.download.DownloadManager, "download_and_extract", return_value=folder
    ):
        tfds.builder("cifar10", data_dir=data_dir).download_and_prepare()
    return data_dir


@pytest.mark.backend_independent
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


@pytest.mark.backend_independent
def test_a_training_split_set_to_an_epoch_takes_the_order_of_that_epoch():
    """Epoch `e` of a seeded training split is ordered by `(seed, e)`: one
    loaded afresh and set to epoch 2 takes the order of the third pass over
    another (as a folder's, tests/data/test_folders.py)."""

    def order(dataset):
        return [image.tobytes() for images, _ in batches(dataset) for image in images]

    with tfds.testing.mock_data(num_examples=12):
        passes, resumed = (
            load_dataset("cifar10", image_size=4, batch_size=4, seed=1)[0] for _ in range(2)
        )
        orders = [order(passes) for _ in range(3)]
        set_epoch(resumed, 2)
        assert order(resumed) == orders[2]
    assert orders[0] != orders[2] and sorted(orders[0]) == sorted(orders[2])


@pytest.mark.backend_independent
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


@pytest.mark.backend_independent
def test_pet_breeds_and_bad_trimap():
    with pet_examples(TRIMAP):
        dataset, info = load_dataset(
            "oxford_iiit_pet", task="classification", batch_size=8, image_size=4, shuffle=False
        )
        labels = batches(dataset)[0][1]
        assert (
            len(
                batches(load_tfds("oxford_iiit_pet", batch_size=8, image_size=4, num_images=3)[0])[
                    0
                ][0]
            )
            == 3
        )
    assert info.num_classes == 37 and info.task == "classification"
    np.testing.assert_array_equal(labels, np.arange(5) * 7 % 37)
    with pet_examples(np.where(TRIMAP == 3, 0, TRIMAP).astype("uint8")):
        with pytest.raises(
            tf.errors.InvalidArgumentError, match="1 \\(pet\\), 2 \\(background\\) or 3"
        ):
            batches(load_tfds("oxford_iiit_pet", "test", image_size=4)[0])


def test_augmented_training_pipeline_keeps_class_ids():
    """Keras augmentation layers inside tf.data on every backend."""
    with pet_examples(TRIMAP, num_examples=8):
        plain = batches(load_tfds("oxford_iiit_pet", image_size=8, batch_size=4, shuffle=False)[0])
        augmented, _ = load_tfds(
            "oxford_iiit_pet", image_size=8, batch_size=4, shuffle=False, augment=True, seed=1
        )
        augmented = batches(augmented)
    assert [x.shape for x, _ in augmented] == [(4, 8, 8, 3)] * 2
    for (x, y), (plain_x, _) in zip(augmented, plain):
        assert not np.allclose(x, plain_x)
        assert x.dtype == np.float32 and y.dtype == np.int32 and y.shape == (4, 8, 8)
        assert 0.0 <= x.min() and x.max() <= 1.0
        assert set(np.unique(y)) <= {0, 1, 2}


@pytest.mark.backend_independent
def test_split_mapping_and_bad_arguments():
    assert [tfds_split("cifar10", s) for s in ("train", "validation", "test")] == [
        "train[:90%]",
        "train[90%:]",
        "test",
    ]
    assert tfds_split("imagenette", "test") == "validation"
    with pytest.raises(
        ValueError, match="'cifar10' has no 'segmentation' task. It supports: 'classification'"
    ):
        load_tfds("cifar10", task="segmentation")
    with pytest.raises(ValueError, match="Unknown `name`: 'mnist'"):
        load_tfds("mnist")
    with pytest.raises(ValueError, match="`augment` is for training data only"):
        load_tfds("cifar10", "test", augment=True)


@pytest.mark.backend_independent
def test_num_examples_and_splits_with_mock_data():
    with tfds.testing.mock_data(num_examples=6):
        counts = []
        for num_images in (None, 4, 10):
            dataset, info = load_dataset(
                "cifar10", "test", batch_size=4, image_size=8, num_images=num_images
            )
            counts.append((info.num_examples, sum(len(x) for x, _ in batches(dataset))))
    assert counts == [(6, 6), (4, 4), (6, 6)]
    assert info.splits == ("train", "validation", "test")


@pytest.mark.backend_independent
def test_prepared_data_set_loads_without_network(cifar10_dir):
    builder = tfds.builder("cifar10", data_dir=cifar10_dir)
    with offline(), mock.patch("requests.head", side_effect=AssertionError("probed the network")):
        loaded = {
            split: load_tfds("cifar10", split, data_dir=cifar10_dir, batch_size=16, shuffle=False)
            for split in ("train", "validation", "test")
        }
        few = load_tfds("cifar10", data_dir=cifar10_dir, num_images=3)[1]
    data = {split: batches(dataset)[0] for split, (dataset, _) in loaded.items()}
    sizes = {split: info.num_examples for split, (_, info) in loaded.items()}
    assert sizes == {split: len(labels) for split, (_, labels) in data.items()}
    assert sizes == {"train": 9, "validation": 1, "test": 4} and few.num_examples == 3
    assert sizes["train"] == builder.info.splits["train[:90%]"].num_examples
    assert loaded["test"][1].class_names == tuple(f"class{i}" for i in range(10))
    train_labels = np.concatenate([data["train"][1], data["validation"][1]])
    assert sorted(train_labels) == sorted(CIFAR_TRAIN_LABELS)
    images, labels = data["test"]
    assert sorted(labels) == sorted(CIFAR_TEST_LABELS)
    # Every byte of a fake image is its label.
    np.testing.assert_allclose(
        images, np.broadcast_to(labels[:, None, None, None] / 255, images.shape), atol=1e-7
    )


@pytest.mark.backend_independent
@pytest.mark.parametrize("name", list(TFDS_DATASETS))
def test_unprepared_data_set_offline_fails_fast_with_instructions(name, tmp_path):
    builder = tfds.builder(name, data_dir=tmp_path)
    start = time.perf_counter()
    with offline(), pytest.raises(DatasetUnavailableError) as raised:
        load_dataset(name, data_dir=tmp_path)
    assert time.perf_counter() - start < 10
    message = str(raised.value)
    assert isinstance(raised.value, RuntimeError) and isinstance(raised.value, FileNotFoundError)
    assert f"The data set {name!r} is not prepared in data_dir {str(tmp_path)!r}" in message
    assert (
        f"run `tfds build {name}`" in message
        and f"~/tensorflow_datasets/{name}/ into {tmp_path}" in message
    )
    assert (
        f"{builder.data_path}/dataset_info.json" in message
        and "Name or service not known" in message
    )
    assert not (tmp_path / name).exists()


@pytest.mark.backend_independent
def test_failed_download_after_the_server_answered(tmp_path):
    failure = tfds.download.DownloadError("Failed to get url cifar. HTTP code: 403.")
    with (
        offline(),
        mock.patch("requests.head") as probe,
        mock.patch.object(
            tfds.download.DownloadManager, "download_and_extract", side_effect=failure
        ),
        pytest.raises(
            DatasetUnavailableError,
            match="Download error: DownloadError: Failed to get url cifar. HTTP code: 403.$",
        ),
    ):
        load_tfds("cifar10", data_dir=tmp_path)
    probe.assert_called_once_with(
        "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz", timeout=5
    )
