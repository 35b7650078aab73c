import re

import keras
import numpy as np
import pytest

from keras_cvlec import losses, metrics
from keras_cvlec.training.objectives import compile_arguments
from tests.harness import assert_allclose, backend_name, jit_compile_setting

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


def _void_labels(shape, num_classes, void=255, fraction=0.3):
    labels = RNG.integers(0, num_classes, shape)
    labels[RNG.random(shape) < fraction] = void
    return labels


@pytest.mark.parametrize("weights", [None, "per_image", "per_pixel"])
def test_accuracy_leaves_out_void_like_numpy(weights):
    metric = metrics.SparseCategoricalAccuracy(ignore_class=255)
    hits = total = 0.0
    for _ in range(3):
        labels = _void_labels((2, 5, 6), 3)
        logits = RNG.normal(size=(2, 5, 6, 3)).astype("float32")
        weight = {None: None, "per_image": RNG.random(2), "per_pixel": RNG.random((2, 5, 6))}[
            weights
        ]
        metric.update_state(labels, logits, sample_weight=weight)
        # Weighted count of correct non-void pixels over their total weight.
        pixel_weight = np.broadcast_to(
            1.0 if weight is None else weight.reshape(weight.shape + (1,) * (3 - weight.ndim)),
            labels.shape,
        )
        pixel_weight = np.where(labels == 255, 0.0, pixel_weight)
        hits += (pixel_weight * (logits.argmax(-1) == labels)).sum()
        total += pixel_weight.sum()
    assert_allclose(metric.result(), hits / total, atol=1e-6)


def test_accuracy_all_void_batch_is_not_nan():
    metric = metrics.SparseCategoricalAccuracy(ignore_class=255)
    logits = RNG.normal(size=(1, 2, 3, 3)).astype("float32")
    metric.update_state(np.full((1, 2, 3), 255), logits)
    assert float(metric.result()) == 0.0
    labels = np.array([[[0, 1, 2], [255, 255, 255]]])
    predicted = logits.argmax(-1)[0, 0]
    metric.update_state(labels[..., None], logits)  # a trailing axis of 1 too
    assert_allclose(metric.result(), np.mean(predicted == [0, 1, 2]), atol=1e-6)


def test_accuracy_without_ignore_class_is_keras_accuracy():
    labels = RNG.integers(0, 3, (4, 5))
    logits = RNG.normal(size=(4, 5, 3)).astype("float32")
    weight = RNG.random(4)
    ours = metrics.SparseCategoricalAccuracy()
    reference = keras.metrics.SparseCategoricalAccuracy()
    ours.update_state(labels, logits, weight)
    reference.update_state(labels, logits, weight)
    assert_allclose(ours.result(), reference.result(), atol=1e-6)
    restored = keras.metrics.deserialize(
        keras.metrics.serialize(metrics.SparseCategoricalAccuracy(255, name="acc"))
    )
    assert type(restored) is metrics.SparseCategoricalAccuracy
    assert restored.get_config() == {"ignore_class": 255, "name": "acc", "dtype": "float32"}
    with pytest.raises(TypeError, match="ignore_class.*'void'"):
        metrics.SparseCategoricalAccuracy(ignore_class="void")


def test_compile_arguments_leave_out_void_in_evaluate():
    num_classes = 4
    kernel = RNG.normal(size=(1, 1, 3, num_classes)).astype("float32")
    inputs = keras.Input((None, None, 3))
    conv = keras.layers.Conv2D(num_classes, 1, use_bias=False)
    model = keras.Model(inputs, conv(inputs))
    conv.set_weights([kernel])
    model.compile(
        jit_compile=jit_compile_setting(),
        **compile_arguments("segmentation", num_classes, ignore_class=255),
    )
    x = RNG.normal(size=(3, 4, 5, 3)).astype("float32")
    labels = _void_labels((3, 4, 5), num_classes)
    labels[1] = 255  # one image is all void
    results = model.evaluate(x, labels, batch_size=3, return_dict=True, verbose=0)

    logits = np.einsum("bhwc,ck->bhwk", x, kernel[0, 0])
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    valid = labels != 255
    true_log_probs = np.take_along_axis(log_probs[valid], labels[valid][:, None], -1)
    predictions = logits.argmax(-1)
    matrix = _confusion(labels, predictions, num_classes, ignore_class=255)
    assert_allclose(results["loss"], -true_log_probs.mean(), atol=1e-5)
    assert_allclose(results["accuracy"], np.trace(matrix) / valid.sum(), atol=1e-6)
    assert_allclose(results["mean_iou"], _numpy_scores(matrix, "iou"), atol=1e-6)


def test_compile_arguments_ignore_class_choices():
    arguments = compile_arguments("classification", 3, ignore_class=-1)
    assert arguments["loss"].ignore_class == -1
    assert [(type(m), m.ignore_class) for m in arguments["metrics"]] == [
        (metrics.SparseCategoricalAccuracy, -1)
    ]
    arguments = compile_arguments("segmentation", 3, ignore_class=255)
    assert isinstance(arguments["loss"], losses.SparseCategoricalCrossentropy)
    assert [m.ignore_class for m in arguments["metrics"]] == [255, 255]
    with pytest.raises(ValueError, match="ignore_class=255 with one_hot=True"):
        compile_arguments("classification", 3, one_hot=True, ignore_class=255)


def _metrics(ignore_class=None):
    return [
        metrics.MeanIoU(3, from_logits=True, ignore_class=ignore_class),
        metrics.Dice(3, from_logits=True, ignore_class=ignore_class),
        metrics.SparseCategoricalAccuracy(ignore_class=ignore_class),
    ]


@pytest.mark.parametrize(
    "labels, ignore_class, message",
    [
        ([[0, -1]], None, r"labels in \[0, 3\)\. Received label values \[-1\]"),
        ([[3, 1]], None, r"labels in \[0, 3\)\. Received label values \[3\]"),
        ([[0, 254]], 255, r"\[0, 3\) or ignore_class=255\. Received label values \[254\]"),
        ([[0.0, 1.7]], None, r"Received float(32|64) labels with non-integer values \[1\.7"),
    ],
)
def test_metrics_refuse_bad_labels_eagerly(labels, ignore_class, message):
    for metric in _metrics(ignore_class):
        with pytest.raises(ValueError, match=message):
            metric.update_state(np.array(labels), np.zeros((1, 2, 3), "float32"))


@pytest.mark.parametrize(
    "labels_shape, logits_shape",
    [((2, 8, 8), (2, 8, 9, 3)), ((4,), (3, 3)), ((2, 4, 4, 2), (2, 4, 4, 3))],
)
def test_metrics_label_shape_must_match_predictions(labels_shape, logits_shape):
    shapes = re.escape(f"y_true.shape={labels_shape}, y_pred.shape={logits_shape}")
    for metric in _metrics() + _metrics(ignore_class=255):
        with pytest.raises(ValueError, match=f"without its class axis.*{shapes}"):
            metric.update_state(np.zeros(labels_shape, "int32"), np.zeros(logits_shape, "float32"))


def test_iou_needs_num_classes_channels():
    for metric_class in (metrics.MeanIoU, metrics.Dice):
        with pytest.raises(ValueError, match=r"num_classes=3 channels.*y_pred.shape=\(1, 2, 5\)"):
            metric_class(3).update_state(np.zeros((1, 2)), np.zeros((1, 2, 5), "float32"))
        with pytest.raises(ValueError, match=r"num_classes=4 channels.*\(1, 2, 1\)"):
            metric_class(4).update_state(np.zeros((1, 2)), np.zeros((1, 2, 1), "float32"))


@pytest.mark.parametrize("bad_value", [np.nan, np.inf])
def test_non_finite_predictions_make_the_result_nan_until_reset(bad_value):
    labels = np.array([[0, 1, 2, 255], [2, 1, 0, 0]])
    logits = RNG.normal(size=(2, 4, 3)).astype("float32")
    broken = logits.copy()
    broken[1, 2, 1] = bad_value
    void_broken = logits.copy()
    void_broken[0, 3] = bad_value  # a void pixel is not scored
    for metric in _metrics(ignore_class=255):
        metric.update_state(labels, logits)
        clean = float(metric.result())
        metric.update_state(labels, void_broken)
        assert np.isfinite(float(metric.result()))
        metric.update_state(labels, broken)
        metric.update_state(labels, logits)
        assert np.isnan(float(metric.result())), type(metric).__name__
        metric.reset_state()
        metric.update_state(labels, logits)
        assert_allclose(metric.result(), clean, atol=1e-6)


def test_unscorable_elements_in_compiled_evaluate():
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(3, 1)(inputs))
    model.compile(
        loss=losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255),
        metrics=_metrics(ignore_class=255)
        + [
            losses.DiceLoss(from_logits=True, ignore_class=255),
            losses.CrossentropyDiceLoss(from_logits=True, ignore_class=255),
        ],
        # jit_compile=False on TF still evaluates in a tf.function.
        jit_compile=backend_name() == "jax",
    )
    x = RNG.normal(size=(2, 3, 3, 3)).astype("float32")
    labels = RNG.integers(0, 3, (2, 3, 3))
    labels[0, 0, 0] = 255

    def evaluate(x, labels):
        return model.evaluate(x, labels, batch_size=2, return_dict=True, verbose=0)

    assert np.isfinite(list(evaluate(x, labels).values())).all()
    nan_pixel = x.copy()
    nan_pixel[1, 2, 0, 1] = np.nan
    assert np.isnan(list(evaluate(nan_pixel, labels).values())).all()
    bad_labels = labels.copy()
    bad_labels[1, 1, 1] = 3
    if backend_name() == "torch":  # evaluate runs eagerly: the labels are checked
        with pytest.raises(ValueError, match=r"\[0, 3\) or ignore_class=255.*\[3\]"):
            evaluate(x, bad_labels)
    else:
        assert np.isnan(list(evaluate(x, bad_labels).values())).all()
