"""Every script in examples/ runs in-process with tiny settings: it trains
with the recipe resolved for the run (as `train` does), its printed and
returned test metrics are in range and its saved model loads and predicts.
tensorflow-datasets examples read `tfds.testing.mock_data`."""

import contextlib
import importlib.util
import json
import math
import os
import zipfile

import keras
import numpy as np
import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
# One batch of 8 per split: every step has the same shapes (one compile).
TINY = ["--epochs", "1", "--batch-size", "8", "--num-images", "8"]
UNET = ["--filters", "4", "--depth", "2"]


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pet_mock(num_examples):
    """`tfds.testing.mock_data` for oxford_iiit_pet with valid trimaps
    (values 1..3; the generic mock draws any uint8)."""
    tf = pytest.importorskip("tensorflow")
    tfds = pytest.importorskip("tensorflow_datasets")

    def as_dataset(self, *args, **kwargs):
        rng = np.random.default_rng(0)
        return tf.data.Dataset.from_tensor_slices(
            {
                "image": rng.integers(0, 256, (num_examples, 20, 24, 3), "uint8"),
                "segmentation_mask": rng.integers(1, 4, (num_examples, 20, 24, 1), "uint8"),
                "label": rng.integers(0, 37, num_examples),
                "species": np.zeros(num_examples, "int64"),
                "file_name": [f"pet{i}.jpg" for i in range(num_examples)],
                "head_bbox": np.zeros((num_examples, 4), "float32"),
            }
        )

    return tfds.testing.mock_data(as_dataset_fn=as_dataset)


def cifar_mock(num_examples):
    tfds = pytest.importorskip("tensorflow_datasets")
    return tfds.testing.mock_data(num_examples=num_examples)


# name: (extra flags, data context (called with the examples per split),
# image size, model output shape after the batch dimension). ResNet-18 with 8
# filters and ConvNeXt-atto at 32 px are the smallest classifiers; drop path is on.
CASES = {
    "train_unet_shapes": (UNET + ["--image-size", "16"], contextlib.nullcontext, 16, (16, 16, 4)),
    "train_unet_oxford_pets": (UNET + ["--image-size", "16"], pet_mock, 16, (16, 16, 3)),
    "train_resnet_cifar10": (["--image-size", "32", "--filters", "8"], cifar_mock, 32, (10,)),
    "train_convnext_cifar10": (
        ["--variant", "atto", "--drop-path-rate", "0.1", "--image-size", "32"],
        cifar_mock,
        32,
        (10,),
    ),
}


def _saved_loss(path):
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("config.json"))["compile_config"]["loss"]["class_name"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_trains_evaluates_and_saves(name, tmp_path, capsys):
    flags, data, size, output_shape = CASES[name]
    output = str(tmp_path / "model.keras")
    with data(8):
        metrics = load_example(name).main(TINY + flags + ["--output", output])
    printed = capsys.readouterr().out
    # The recipe resolved for 8 images seen: warm-up capped to the one step,
    # and no RandAugment, CutMix or MixUp (at full strength the classifiers
    # would mix one-hot labels and train with CategoricalCrossentropy).
    assert "warm-up          0 steps" in printed
    if output_shape == (10,):
        assert "RandAugment off, CutMix off, MixUp off (strength 0.00" in printed
    assert _saved_loss(output) == "SparseCategoricalCrossentropy"
    test_line = next(line for line in printed.splitlines() if line.startswith("test:"))
    assert set(metrics) >= {"loss", "accuracy"}
    for metric, value in metrics.items():
        assert math.isfinite(value) and f"{metric} {value:.4f}" in test_line
        if metric != "loss":
            assert 0.0 <= value <= 1.0, (metric, value)
    assert metrics["loss"] > 0.0
    model = keras.saving.load_model(output)
    images = np.random.default_rng(0).random((2, size, size, 3), "float32")
    assert model.predict(images, verbose=0).shape == (2, *output_shape)
