"""The shipped models load on every backend and give their model card's metric."""

import json
import os

import keras
import numpy as np
import pytest

from keras_cvlec.data import shapes_dataset

SAVED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "saved_models")


def _mean_iou(predicted, masks, num_classes):
    """Mean IoU over the classes present in prediction or truth, in NumPy."""
    ious = []
    for k in range(num_classes):
        union = np.sum((predicted == k) | (masks == k))
        if union:
            ious.append(np.sum((predicted == k) & (masks == k)) / union)
    return float(np.mean(ious))


def _read_json(folder, name):
    with open(os.path.join(folder, name)) as file:
        return json.load(file)


# name: (task, shape of the test split's targets, the card's headline metric
#        as written in its README, its key in metrics.json)
SAVED_MODELS = {
    "unet_shapes": ("segmentation", (256, 64, 64), "mean IoU", "mean_iou"),
    "resnet_shapes": ("classification", (256,), "accuracy", "accuracy"),
}


@pytest.mark.parametrize("name", sorted(SAVED_MODELS))
def test_saved_model_gives_its_cards_metric(name):
    task, shape, headline, key = SAVED_MODELS[name]
    folder = os.path.join(SAVED, name)
    card = _read_json(folder, "metrics.json")["test"]
    run = _read_json(folder, "run.json")
    assert run["task"] == task
    with open(os.path.join(folder, "README.md")) as file:
        assert f"{headline} **{card[key]:.4f}**" in file.read()

    # The card's figures from the loaded model and NumPy, independent of
    # the Keras metrics that wrote them.
    model = keras.saving.load_model(os.path.join(folder, f"{name}.keras"), compile=False)
    images, targets = shapes_dataset(
        "test",
        image_size=run["image_size"][0],
        task=task,
        num_images=run["args"]["num_images"],
    )
    predicted = model.predict(images, batch_size=128, verbose=0).argmax(-1)
    assert predicted.shape == targets.shape == shape
    assert abs(np.mean(predicted == targets) - card["accuracy"]) < 1e-4
    if task == "segmentation":
        assert abs(_mean_iou(predicted, targets, 4) - card["mean_iou"]) < 1e-3
