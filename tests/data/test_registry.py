"""`load_dataset` on the shapes data set (a PyDataset, no TensorFlow), its
argument checks, the shared `LoaderOptions`, the moved registry names and the
data modules' import graph."""

import ast
import dataclasses
import importlib
import pathlib

import keras
import numpy as np
import pytest

import keras_cvlec.data
from keras_cvlec.data import (
    ArrayDataset,
    Augmentation,
    DatasetInfo,
    classification_augmentation,
    list_datasets,
    load_dataset,
    registry,
    shapes_dataset,
)
from keras_cvlec.data.options import LoaderOptions


@pytest.mark.backend_independent
def test_list_datasets():
    assert list_datasets() == ["cifar10", "cifar100", "imagenette", "oxford_iiit_pet", "shapes"]


@pytest.mark.backend_independent
def test_shapes_both_tasks_match_the_arrays():
    dataset, info = load_dataset("shapes", "validation", image_size=16, batch_size=4, num_images=10)
    assert isinstance(dataset, keras.utils.PyDataset) and len(dataset) == 3
    assert info == DatasetInfo(
        "shapes",
        "segmentation",
        4,
        ("background", "circle", "square", "triangle"),
        (16, 16),
        num_examples=10,
    )
    images, masks = shapes_dataset("validation", num_images=10, image_size=16)
    batches = [dataset[i] for i in range(3)]
    assert [x.shape for x, _ in batches] == [(4, 16, 16, 3), (4, 16, 16, 3), (2, 16, 16, 3)]
    np.testing.assert_array_equal(np.concatenate([x for x, _ in batches]), images)  # not shuffled
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), masks)
    assert batches[0][1].dtype == np.int32
    dataset, info = load_dataset(
        "shapes", "test", task="classification", image_size=16, num_images=6, batch_size=6
    )
    assert info.num_classes == 3 and info.class_names == ("circle", "square", "triangle")
    assert info.num_examples == 6 and info.ignore_class is None and "test" in info.splits
    x, y = dataset[0]
    assert y.shape == (6,) and y.dtype == np.int32 and set(y) <= {0, 1, 2}


def test_train_split_reshuffles_every_epoch_reproducibly():
    def epochs(seed):
        dataset, _ = load_dataset("shapes", image_size=16, batch_size=8, num_images=8, seed=seed)
        orders = []
        for _ in range(2):
            orders.append(dataset[0][0][:, 0, 0, 0].copy())
            dataset.on_epoch_end()
        return orders

    first, second = epochs(1)
    images, _ = shapes_dataset("train", num_images=8, image_size=16, seed=1)
    assert sorted(first) == sorted(images[:, 0, 0, 0]) and not np.array_equal(first, second)
    np.testing.assert_array_equal(np.stack(epochs(1)), np.stack([first, second]))


def test_fit_and_evaluate_on_the_pydataset():
    train, info = load_dataset(
        "shapes", task="classification", image_size=16, batch_size=4, num_images=8
    )
    test, _ = load_dataset(
        "shapes", "test", task="classification", image_size=16, batch_size=4, num_images=4
    )
    model = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.Conv2D(4, 3),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(info.num_classes, activation="softmax"),
        ]
    )
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(train, epochs=1, verbose=0)
    assert len(history.history["loss"]) == 1
    assert model.predict(test, verbose=0).shape == (4, 3)
    augmented, _ = load_dataset("shapes", image_size=16, augment=True)
    assert isinstance(augmented, ArrayDataset) and isinstance(augmented.transform, Augmentation)
    assert augmented.transform.task == "segmentation"


@pytest.mark.backend_independent
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (
            dict(name_or_path="mnist"),
            ValueError,
            "Unknown data set: 'mnist' .* Registered data sets: cifar10, cifar100, imagenette, oxford_iiit_pet, shapes",
        ),
        (dict(task="detection"), ValueError, "Unknown `task`: 'detection'"),
        (
            dict(split="val"),
            ValueError,
            "Unknown `split`: 'val'. Allowed values: 'train', 'validation', 'test'",
        ),
        (dict(split="test", augment=True), ValueError, "`augment` is for training data only"),
        (dict(augment="yes"), TypeError, "`augment` must be a bool or a callable"),
        (dict(image_size=(32, 16)), ValueError, "square images only"),
        (dict(image_size=0), ValueError, "`image_size` must be None, an int >= 1"),
        (
            dict(image_size=32.0),
            TypeError,
            "`image_size` must be None, an int >= 1.*Received: image_size=32.0",
        ),
        (
            dict(image_size=(32, True)),
            TypeError,
            r"`image_size` must be None, an int >= 1.*Received: image_size=\(32, True\)",
        ),
        (dict(batch_size=0), ValueError, "`batch_size` must be >= 1"),
        (dict(shuffle=1), TypeError, "`shuffle` must be True or False. Received: shuffle=1"),
        (dict(num_images=2.5), TypeError, "`num_images` must be an int"),
        (dict(data_dir="/tmp"), ValueError, "`data_dir` is for tensorflow-datasets names only"),
        (dict(one_hot=1), TypeError, "`one_hot` must be True or False. Received: one_hot=1"),
        (dict(one_hot=True), ValueError, "`one_hot` encodes class labels.*task='segmentation'"),
        (dict(seed=1.0), TypeError, "`seed` must be None or an int. Received: seed=1.0"),
        (dict(seed=-1), ValueError, r"`seed` must be None or an int in \[0, 2147483647\]"),
        (
            dict(image_sizes=32),
            TypeError,
            "load_dataset\\(\\) got an unexpected keyword argument 'image_sizes'.*Loader options: split, task, image_size",
        ),
    ],
)
def test_bad_arguments(kwargs, error, match):
    kwargs = {"name_or_path": "shapes", **kwargs}
    with pytest.raises(error, match=match):
        load_dataset(**kwargs)


@pytest.mark.backend_independent
def test_classification_only_data_set_refuses_segmentation():
    with pytest.raises(
        ValueError,
        match="Data set 'cifar10' has no 'segmentation' task. It supports: 'classification'",
    ):
        load_dataset("cifar10", task="segmentation")


def test_one_hot_labels_with_and_without_mixing():
    sparse, info = load_dataset(
        "shapes", "test", task="classification", image_size=16, num_images=8
    )
    one_hot, _ = load_dataset(
        "shapes", "test", task="classification", image_size=16, num_images=8, one_hot=True
    )
    (images, labels), (one_hot_images, one_hot_labels) = sparse[0], one_hot[0]
    np.testing.assert_array_equal(one_hot_images, images)
    assert one_hot_labels.dtype == np.float32
    np.testing.assert_array_equal(one_hot_labels, np.eye(info.num_classes)[labels])
    # A mixing augmentation takes the encoded labels as they are.
    mixing = classification_augmentation(info.num_classes, mixup_alpha=0.4, seed=0)
    train, _ = load_dataset(
        "shapes",
        "train",
        task="classification",
        image_size=16,
        num_images=8,
        augment=mixing,
        one_hot=True,
    )
    _, soft = train[0]
    assert soft.shape == (8, 3) and soft.dtype == np.float32
    np.testing.assert_allclose(soft.sum(1), 1.0, atol=1e-5)
    assert (soft.max(1) < 1.0).any()


@pytest.mark.backend_independent
def test_loader_options_resolve_and_check_once():
    options = LoaderOptions("validation", image_size=(8, 6), num_images=3, seed=None)
    assert options.shuffle is False and LoaderOptions().shuffle is True
    assert options.resolve_task("shapes", ("segmentation", "classification")) == "segmentation"
    with pytest.raises(
        ValueError,
        match="Data set 'pets' has no 'segmentation' task. It supports: 'classification'",
    ):
        LoaderOptions(task="segmentation").resolve_task("pets", ("classification",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.seed = 0
    assert options.transform("segmentation", 4) is None
    # The default augmentation is seeded by `seed`, and left unseeded by None.
    for seed, layer_seeds in ((3, [3, 4, 5, 6, 7]), (None, [None] * 5)):
        augment = LoaderOptions(augment=True, seed=seed).transform("segmentation", 4)
        assert [layer.seed for layer in augment.pipeline.layers] == layer_seeds


@pytest.mark.backend_independent
def test_load_dataset_builds_one_options_object(monkeypatch):
    expected = LoaderOptions("test", image_size=16, num_images=2, seed=4)
    built = []
    check = LoaderOptions.__post_init__
    monkeypatch.setattr(
        LoaderOptions, "__post_init__", lambda self: (built.append(self), check(self))
    )
    dataset, _ = load_dataset("shapes", "test", image_size=16, num_images=2, seed=4)
    assert built == [expected]
    assert dataset.seed == 4 and dataset.shuffle is False


@pytest.mark.backend_independent
@pytest.mark.parametrize(
    "name, new_module, new_name",
    [
        ("DatasetInfo", "keras_cvlec.data.options", "DatasetInfo"),
        ("SPLITS", "keras_cvlec.data.options", "SPLITS"),
        ("map_batches", "keras_cvlec.data.options", "map_batches"),
        ("resolve_transform", "keras_cvlec.data.options", "resolve_transform"),
        ("TASKS", "keras_cvlec.tasks", "TRAINABLE_TASKS"),
    ],
)
def test_moved_registry_names_warn_and_still_work(name, new_module, new_name):
    with pytest.warns(
        DeprecationWarning, match=f"registry.{name}` is deprecated; use `{new_module}.{new_name}`"
    ):
        old = getattr(registry, name)
    assert old is getattr(importlib.import_module(new_module), new_name)
    with pytest.raises(AttributeError, match="has no attribute 'check_task'"):
        registry.check_task  # noqa: B018


def _data_imports(path):
    """The `keras_cvlec.data` modules the module file `path` imports."""
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("keras_cvlec.data")
        ):
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            imported.update(name for name in names if name.count(".") == 2)
        elif isinstance(node, ast.Import):
            imported.update(a.name for a in node.names if a.name.startswith("keras_cvlec.data."))
    return imported


@pytest.mark.backend_independent
def test_data_modules_import_no_circle():
    folder = pathlib.Path(keras_cvlec.data.__file__).parent
    graph = {
        f"keras_cvlec.data.{file.stem}": _data_imports(file)
        for file in folder.glob("*.py")
        if file.stem != "__init__"
    }
    assert {
        "keras_cvlec.data.folders",
        "keras_cvlec.data.tfds",
        "keras_cvlec.data.shapes",
    } <= graph["keras_cvlec.data.registry"]
    # Depth-first search: a module reached again while still open closes a circle.
    state = {}

    def visit(module, path):
        state[module] = "open"
        for other in graph.get(module, ()):
            assert state.get(other) != "open", f"import circle: {' -> '.join(path + [other])}"
            if other not in state:
                visit(other, path + [other])
        state[module] = "done"

    for module in graph:
        if module not in state:
            visit(module, [module])
