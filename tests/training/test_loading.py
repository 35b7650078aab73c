"""`load_trained_model`: what a model is, read from its run's `run.json`, or
guessed from its layers for a bare `.keras` file; channels-first models load
with their classes and input size on the right axes."""

import json
import os

import keras
import numpy as np
import pytest
from PIL import Image

from keras_cvlec import layers as cvlec_layers
from keras_cvlec.training import load_trained_model, predict

SAVED = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "saved_models"
)


def _channels_first_segmenter(path):
    """A bare channels-first model: 3 x 16 x 20 images to 4-class logits."""
    model = keras.Sequential(
        [
            keras.Input((3, 16, 20)),
            cvlec_layers.Conv2D(4, 3, padding="same", data_format="channels_first"),
        ]
    )
    model.save(path)
    return model


def test_a_bare_channels_first_model_is_guessed_from_its_layers(tmp_path):
    path = str(tmp_path / "model.keras")
    original = _channels_first_segmenter(path)
    trained = load_trained_model(path)
    assert trained.data_format == "channels_first"
    assert trained.task == "segmentation" and trained.from_logits
    assert trained.class_names == ("0", "1", "2", "3")  # 4 classes on axis 1, not 20
    assert trained.input_size == trained.image_size == (16, 20)
    # The loaded model takes and gives channels-last tensors, as the loaders.
    images = np.random.default_rng(0).random((2, 16, 20, 3), "float32")
    outputs = keras.ops.convert_to_numpy(trained.model(images))
    expected = keras.ops.convert_to_numpy(original(images.transpose(0, 3, 1, 2)))
    np.testing.assert_allclose(outputs, expected.transpose(0, 2, 3, 1), atol=1e-5)
    # predict writes a mask of each image's own size
    image = str(tmp_path / "image.png")
    Image.fromarray(np.zeros((30, 24, 3), "uint8")).save(image)
    (result,) = predict(path, [image], str(tmp_path / "out"))
    with Image.open(result["mask"]) as mask:
        assert mask.size == (24, 30)


def test_a_bare_classifier_with_a_softmax_outputs_probabilities(tmp_path):
    path = str(tmp_path / "model.keras")
    keras.Sequential(
        [
            keras.Input((3, 8, 8)),
            cvlec_layers.Conv2D(2, 1, data_format="channels_first"),
            keras.layers.GlobalAveragePooling2D(data_format="channels_first"),
            keras.layers.Dense(5, activation="softmax"),
        ]
    ).save(path)
    trained = load_trained_model(path)
    assert (trained.task, trained.from_logits, trained.data_format) == (
        "classification",
        False,
        "channels_first",
    )
    assert len(trained.class_names) == 5 and trained.input_size == (8, 8)
    assert trained.model(np.zeros((1, 8, 8, 3), "float32")).shape == (1, 5)


def test_run_json_is_read_instead_of_guessing(tmp_path):
    """The model outputs logits-like values from a plain convolution, but its
    run says they are probabilities: the run's word counts, as do its class
    names, image size, data format and label smoothing."""
    path = str(tmp_path / "best.keras")
    _channels_first_segmenter(path)
    run = {
        "task": "segmentation",
        "from_logits": False,
        "data_format": "channels_first",
        "class_names": ["background", "a", "b", "c"],
        "image_size": [16, 20],
        "args": {"recipe": {"label_smoothing": 0.1}, "seed": 7, "ignore_class": None},
    }
    with open(tmp_path / "run.json", "w") as file:
        json.dump(run, file)
    trained = load_trained_model(path)
    assert trained.from_logits is False
    assert trained.class_names == ("background", "a", "b", "c")
    assert trained.data_format == "channels_first" and trained.input_size == (16, 20)
    assert trained.label_smoothing == 0.1
    assert trained.data_options == {"seed": 7, "ignore_class": None}
    assert trained.model(np.zeros((1, 16, 20, 3), "float32")).shape == (1, 16, 20, 4)


def test_a_run_json_that_contradicts_the_model_is_refused(tmp_path):
    path = str(tmp_path / "best.keras")
    _channels_first_segmenter(path)
    with open(tmp_path / "run.json", "w") as file:
        json.dump({"task": "classification"}, file)
    with pytest.raises(ValueError, match="not a classification model's output"):
        load_trained_model(path)


@pytest.mark.parametrize(
    "name, task, num_classes",
    [("unet_shapes", "segmentation", 4), ("resnet_shapes", "classification", 3)],
)
def test_shipped_runs_written_before_from_logits_was_recorded(name, task, num_classes):
    """Their run.json has no from_logits or data_format: `train` built them
    with logits, channels-last."""
    trained = load_trained_model(os.path.join(SAVED, name, f"{name}.keras"))
    assert (trained.task, trained.from_logits, trained.data_format) == (task, True, "channels_last")
    assert len(trained.class_names) == num_classes and trained.class_names[0] != "0"
