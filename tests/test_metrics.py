import keras
import numpy as np
import pytest

from keras_cvlec import metrics
from tests.harness import assert_allclose

RNG = np.random.default_rng(1)


def _confusion(labels, predictions, num_classes, ignore_class=None):
    keep = np.ones(labels.shape, bool) if ignore_class is None else labels != ignore_class
    matrix = np.zeros((num_classes, num_classes))
    np.add.at(matrix, (labels[keep], predictions[keep]), 1)
    return matrix


def _numpy_scores(matrix, kind):
    tp = np.diag(matrix)
    true_count, predicted_count = matrix.sum(1), matrix.sum(0)
    present = true_count + predicted_count > 0
    if kind == "iou":
        scores = tp / np.maximum(true_count + predicted_count - tp, 1e-12)
    else:
        scores = 2 * tp / np.maximum(true_count + predicted_count, 1e-12)
    return scores[present].mean()


@pytest.mark.parametrize("kind, metric_class", [("iou", metrics.MeanIoU), ("dice", metrics.Dice)])
@pytest.mark.parametrize("ignore_class", [None, 255])
def test_metrics_match_numpy_over_batches(kind, metric_class, ignore_class):
    num_classes = 4
    metric = metric_class(num_classes, from_logits=True, ignore_class=ignore_class)
    matrix = np.zeros((num_classes, num_classes))
    for _ in range(3):
        labels = RNG.integers(0, num_classes, (2, 6, 7))
        if ignore_class is not None:
            labels[RNG.random(labels.shape) < 0.2] = ignore_class
        logits = RNG.normal(size=(2, 6, 7, num_classes)).astype("float32")
        metric.update_state(labels, logits)
        matrix += _confusion(labels, logits.argmax(-1), num_classes, ignore_class)
    assert_allclose(metric.result(), _numpy_scores(matrix, kind), atol=1e-6)
    if kind == "iou":
        reference = keras.metrics.MeanIoU(
            num_classes, ignore_class=ignore_class, sparse_y_pred=False
        )
        # keras averages over classes present in labels or predictions too.
        assert matrix.sum(0).min() > 0 and matrix.sum(1).min() > 0
        metric.reset_state()
        metric.update_state(labels, logits)
        reference.update_state(labels, logits)
        assert_allclose(metric.result(), reference.result(), atol=1e-6)


def test_absent_classes_are_left_out():
    metric = metrics.MeanIoU(num_classes=5)
    labels = np.array([[0, 0, 1, 1]])
    probs = np.eye(5, dtype="float32")[[[0, 1, 1, 1]]]
    metric.update_state(labels, probs)
    assert_allclose(metric.result(), (1 / 2 + 2 / 3) / 2, atol=1e-6)


@pytest.mark.parametrize("from_logits, threshold", [(True, 0.0), (False, 0.5)])
def test_binary_single_channel(from_logits, threshold):
    labels = RNG.integers(0, 2, (3, 8, 8))
    scores = RNG.normal(size=(3, 8, 8, 1)).astype("float32")
    if not from_logits:
        scores = 1 / (1 + np.exp(-scores))
    predictions = (scores[..., 0] > threshold).astype(int)
    for kind, metric_class in (("iou", metrics.MeanIoU), ("dice", metrics.Dice)):
        metric = metric_class(num_classes=2, from_logits=from_logits)
        metric.update_state(labels, scores)
        expected = _numpy_scores(_confusion(labels, predictions, 2), kind)
        assert_allclose(metric.result(), expected, atol=1e-6)


def test_metrics_serialize_and_compile():
    for metric in (metrics.MeanIoU(3, from_logits=True, ignore_class=0), metrics.Dice(3)):
        restored = keras.metrics.deserialize(keras.metrics.serialize(metric))
        assert type(restored) is type(metric)
        assert restored.get_config() == metric.get_config()
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(3, 1)(inputs))
    model.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[metrics.MeanIoU(3, from_logits=True), metrics.Dice(3, from_logits=True)],
    )
    x = RNG.normal(size=(4, 8, 8, 3)).astype("float32")
    labels = RNG.integers(0, 3, (4, 8, 8))
    results = model.evaluate(x, labels, return_dict=True, verbose=0)
    predictions = np.asarray(model.predict(x, verbose=0)).argmax(-1)
    matrix = _confusion(labels, predictions, 3)
    assert_allclose(results["mean_iou"], _numpy_scores(matrix, "iou"), atol=1e-5)
    assert_allclose(results["dice"], _numpy_scores(matrix, "dice"), atol=1e-5)


def test_bad_num_classes():
    with pytest.raises(ValueError, match="num_classes.*1"):
        metrics.MeanIoU(num_classes=1)
    with pytest.raises(TypeError, match="num_classes"):
        metrics.Dice(num_classes=2.5)
