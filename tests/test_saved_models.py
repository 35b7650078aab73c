"""The shipped models load on every backend and give their model card's metric."""

import json
import os

import numpy as np

import keras

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


def test_unet_shapes_gives_its_cards_mean_iou():
    folder = os.path.join(SAVED, "unet_shapes")
    path = os.path.join(folder, "unet_shapes.keras")
    with open(os.path.join(folder, "metrics.json")) as file:
        card = json.load(file)["test"]
    with open(os.path.join(folder, "README.md")) as file:
        assert f"mean IoU **{card['mean_iou']:.4f}**" in file.read()

    # The card's figures from the loaded model and NumPy, independent of
    # the Keras metrics that wrote them.
    model = keras.saving.load_model(path, compile=False)
    images, masks = shapes_dataset("test", image_size=64)
    predicted = model.predict(images, batch_size=128, verbose=0).argmax(-1)
    assert predicted.shape == masks.shape == (256, 64, 64)
    assert abs(_mean_iou(predicted, masks, 4) - card["mean_iou"]) < 1e-3
    assert abs(np.mean(predicted == masks) - card["accuracy"]) < 1e-4
