"""Per-class reports (`keras_cvlec.training.report`) and their plot, against
hand counts on models whose predictions are known."""

import json

import keras
import numpy as np
import pytest
from PIL import Image

from keras_cvlec import metrics
from keras_cvlec.training.plots import plot_per_class
from keras_cvlec.training.report import class_report, confusion_matrix
from tests.harness import assert_allclose

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Two 2x3 masks (255 is void) and the class maps the model is made to predict.
# Non-void (true, predicted) pairs, counted by hand:
#   true 0: predicted 0, 1, 0      true 1: predicted 1, 1, 1
#   true 2: predicted 2, 2, 0      true 3: none, never predicted
MASKS = np.array([[[0, 0, 1], [1, 2, 255]], [[0, 2, 2], [255, 255, 1]]])
PREDICTED_MASKS = np.array([[[0, 1, 1], [1, 2, 0]], [[0, 2, 0], [2, 1, 1]]])
SEGMENTATION_MATRIX = [[2, 1, 0, 0], [0, 3, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]]
# Classification: class 3 is never predicted.
LABELS = np.array([0, 0, 1, 2, 2, 2, 3])
PREDICTED_LABELS = np.array([0, 1, 1, 2, 2, 0, 2])
CLASSIFICATION_MATRIX = [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0], [0, 0, 1, 0]]
NAMES = ["background", "cat", "dog", "bird"]


def _shift_model(input_shape):
    """Logit `c + 1 (mod 4)` equals input channel `c`: a 1x1 convolution (or
    dense layer) with a cyclic permutation kernel, so inputs
    `one_hot(target - 1)` are predicted as `target`."""
    inputs = keras.Input(input_shape)
    layer = keras.layers.Conv2D(4, 1) if len(input_shape) == 3 else keras.layers.Dense(4)
    model = keras.Model(inputs, layer(inputs))
    kernel = np.roll(np.eye(4, dtype="float32"), 1, axis=1)
    layer.set_weights([kernel.reshape(layer.kernel.shape), np.zeros(4, "float32")])
    return model


def _inputs_for(predicted):
    return 3.0 * np.eye(4, dtype="float32")[(predicted - 1) % 4]


class Batches(keras.utils.PyDataset):
    def __init__(self, x, y, batch_size):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index):
        part = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return self.x[part], self.y[part]


def _dataset(kind, x, y, batch_size):
    if kind == "pydataset":
        return Batches(x, y, batch_size)
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)


def test_confusion_matrix_hand_count():
    matrix = confusion_matrix(MASKS, PREDICTED_MASKS, 4, ignore_class=255)
    assert matrix.tolist() == SEGMENTATION_MATRIX
    assert confusion_matrix([2, 0, 2], [2, 1, 0], 3).tolist() == [[0, 1, 0], [0, 0, 0], [1, 0, 1]]


def test_confusion_matrix_bad_inputs():
    with pytest.raises(ValueError, match=r"same shape.*\(3,\).*\(2,\)"):
        confusion_matrix([0, 1, 1], [0, 1], 2)
    with pytest.raises(ValueError, match=r"\[0, 2\).*\[255\]"):
        confusion_matrix([0, 255], [0, 1], 2)
    with pytest.raises(ValueError, match=r"y_pred.*\[0, 2\).*0 to 2"):
        confusion_matrix([0, 1], [0, 2], 2)
    with pytest.raises(ValueError, match="num_classes"):
        confusion_matrix([0], [0], 1)


@pytest.mark.parametrize("kind", ["pydataset", "tf_data"])
def test_segmentation_report_matches_hand_counts_and_mean_iou(kind):
    model = _shift_model((None, None, 4))
    images = _inputs_for(PREDICTED_MASKS)
    dataset = _dataset(kind, images, MASKS.astype("uint8"), batch_size=1)
    report = class_report(
        model, dataset, num_classes=4, class_names=NAMES, task="segmentation", ignore_class=255
    )

    assert report["confusion_matrix"] == SEGMENTATION_MATRIX
    expected = {  # (iou, precision, recall, support), from the matrix by hand
        "background": (2 / 4, 2 / 3, 2 / 3, 3),
        "cat": (3 / 4, 3 / 4, 1.0, 3),
        "dog": (2 / 3, 2 / 2, 2 / 3, 3),
        "bird": (None, None, None, 0),
    }
    for name, (iou, precision, recall, support) in expected.items():
        entry = report["per_class"][name]
        assert entry["support"] == support
        for key, value in (("iou", iou), ("precision", precision), ("recall", recall)):
            assert entry[key] == pytest.approx(value), (name, key)
    assert report["mean_iou"] == pytest.approx((2 / 4 + 3 / 4 + 2 / 3) / 3)
    assert report["accuracy"] == pytest.approx(7 / 9)
    assert json.loads(json.dumps(report)) == report
    assert '"iou": null' in json.dumps(report)

    mean_iou = metrics.MeanIoU(4, from_logits=True, ignore_class=255)
    accuracy = metrics.SparseCategoricalAccuracy(ignore_class=255)
    for mask, image in zip(MASKS, images):
        logits = model(image[None], training=False)
        mean_iou.update_state(mask[None], logits)
        accuracy.update_state(mask[None], logits)
    assert_allclose(mean_iou.result(), report["mean_iou"], atol=1e-6)
    assert_allclose(accuracy.result(), report["accuracy"], atol=1e-6)


@pytest.mark.parametrize("one_hot", [False, True])
def test_classification_report(one_hot):
    model = _shift_model((4,))
    targets = np.eye(4, dtype="float32")[LABELS] if one_hot else LABELS
    dataset = _dataset("pydataset", _inputs_for(PREDICTED_LABELS), targets, batch_size=4)
    report = class_report(model, dataset, num_classes=4, class_names=NAMES, task="classification")

    assert report["confusion_matrix"] == CLASSIFICATION_MATRIX
    per_class = report["per_class"]
    assert [per_class[name]["support"] for name in NAMES] == [2, 1, 3, 1]
    assert [per_class[name]["recall"] for name in NAMES] == pytest.approx([1 / 2, 1, 2 / 3, 0])
    assert [per_class[name]["precision"] for name in NAMES[:3]] == pytest.approx(
        [1 / 2, 1 / 2, 2 / 3]
    )
    assert per_class["bird"]["precision"] is None  # never predicted
    assert per_class["bird"]["iou"] == 0.0
    assert report["accuracy"] == pytest.approx(4 / 7)
    assert report["mean_iou"] == pytest.approx((1 / 3 + 1 / 2 + 1 / 2 + 0) / 4)


def test_report_bad_arguments():
    model = _shift_model((4,))
    dataset = Batches(_inputs_for(LABELS), LABELS, 4)
    for names in (NAMES[:3], ["a", "b", "a", "c"]):
        with pytest.raises(ValueError, match="class_names.*4 distinct"):
            class_report(model, dataset, num_classes=4, class_names=names, task="classification")
    with pytest.raises(ValueError, match="task.*'detection'"):
        class_report(model, dataset, num_classes=4, class_names=NAMES, task="detection")


def _check_png(path):
    with open(path, "rb") as file:
        assert file.read(8) == PNG_SIGNATURE
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _report(task, values, key):
    per_class = {
        name: {"iou": None, "precision": None, "recall": None, "support": 1} for name in NAMES
    }
    for name, value in zip(NAMES, values):
        per_class[name][key] = value
    return {"task": task, "class_names": NAMES, "per_class": per_class}


@pytest.mark.parametrize(
    "task, key, values",
    [
        ("segmentation", "iou", [0.9, 0.5, 0.0, None]),
        ("classification", "recall", [1.0, 0.25, None, 0.75]),
        ("segmentation", "iou", [None, None, None, None]),
    ],
)
def test_plot_per_class(tmp_path, task, key, values):
    path = str(tmp_path / "per_class.png")
    plot_per_class(_report(task, values, key), path, title="validation")
    pixels = _check_png(path)
    assert pixels.shape == (240, 600, 3)  # figsize (6, 1.2 + 0.3 * 4) at 100 dpi
    colored = (pixels.max(-1).astype(int) - pixels.min(-1)) > 60
    assert colored.any() == any(values)  # bars drawn only for scores > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["per_class.png"]
