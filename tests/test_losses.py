import re

import keras
import numpy as np
import pytest

from keras_cvlec import losses
from tests.harness import (
    assert_allclose,
    backend_name,
    fit_one_step,
    to_numpy,
    value_and_gradient,
)

RNG = np.random.default_rng(0)


def _one_hot(labels, num_classes):
    return np.eye(num_classes, dtype="float32")[labels]


def _softmax(logits):
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 0.4])
@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize("label_shape", [(6,), (2, 5, 7), (2, 5, 7, 1)])
def test_crossentropy_equals_keras_on_one_hot(label_smoothing, from_logits, label_shape):
    num_classes = 4
    labels = RNG.integers(0, num_classes, label_shape)
    class_labels = labels[..., 0] if label_shape[-1] == 1 else labels
    logits = RNG.normal(size=class_labels.shape + (num_classes,)).astype("float32") * 3
    y_pred = logits if from_logits else _softmax(logits)
    ours = losses.SparseCategoricalCrossentropy(
        label_smoothing=label_smoothing, from_logits=from_logits
    )(labels, y_pred)
    reference = keras.losses.CategoricalCrossentropy(
        label_smoothing=label_smoothing, from_logits=from_logits
    )(_one_hot(class_labels, num_classes), y_pred)
    assert_allclose(ours, reference, atol=1e-5, rtol=1e-5)


def test_crossentropy_matches_numpy_formula():
    labels = RNG.integers(0, 3, (2, 4, 4))
    logits = RNG.normal(size=(2, 4, 4, 3)).astype("float32")
    log_probs = np.log(_softmax(logits))
    smoothing = 0.2
    target = (1 - smoothing) * _one_hot(labels, 3) + smoothing / 3
    expected = -(target * log_probs).sum(-1)
    per_pixel = losses.sparse_categorical_crossentropy(
        labels, logits, from_logits=True, label_smoothing=smoothing
    )
    assert_allclose(per_pixel, expected, atol=1e-5, rtol=1e-5)


def test_channels_first_axis():
    labels = RNG.integers(0, 3, (2, 4, 5))
    logits = RNG.normal(size=(2, 4, 5, 3)).astype("float32")
    last = losses.SparseCategoricalCrossentropy(label_smoothing=0.1, from_logits=True)
    first = losses.SparseCategoricalCrossentropy(label_smoothing=0.1, from_logits=True, axis=1)
    assert_allclose(
        first(labels, np.transpose(logits, (0, 3, 1, 2))), last(labels, logits), atol=1e-6
    )


def test_ignored_pixels_contribute_nothing():
    labels = RNG.integers(0, 3, (2, 6, 6))
    labels[0, :3] = 255
    logits = RNG.normal(size=(2, 6, 6, 3)).astype("float32")
    loss = losses.SparseCategoricalCrossentropy(
        ignore_class=255, label_smoothing=0.1, from_logits=True
    )
    valid = labels != 255
    per_pixel = to_numpy(
        losses.sparse_categorical_crossentropy(
            np.where(valid, labels, 0), logits, from_logits=True, label_smoothing=0.1
        )
    )
    # The mean runs over the valid pixels only.
    assert_allclose(loss(labels, logits), per_pixel[valid].mean(), atol=1e-5)
    # Changing predictions at ignored pixels changes nothing...
    changed = logits.copy()
    changed[0, :3] = RNG.normal(size=changed[0, :3].shape) * 10
    assert_allclose(loss(labels, changed), loss(labels, logits), atol=1e-6)
    # ... and their gradient is zero.
    _, grad = value_and_gradient(lambda x: loss(labels, x), logits)
    assert np.all(grad[0, :3] == 0)
    assert np.all(np.abs(grad[~valid[..., None].repeat(3, -1)]) == 0)
    assert np.abs(grad[valid]).sum() > 0


def test_ignore_class_with_sample_weight_and_sum_reduction():
    labels = RNG.integers(0, 3, (3, 4, 4))
    labels[1, 0] = -1
    logits = RNG.normal(size=(3, 4, 4, 3)).astype("float32")
    weights = np.array([1.0, 2.0, 0.5], "float32")
    valid = labels != -1
    per_pixel = to_numpy(
        losses.sparse_categorical_crossentropy(np.where(valid, labels, 0), logits, True)
    )
    weighted = per_pixel * valid * weights[:, None, None]
    mean_loss = losses.SparseCategoricalCrossentropy(ignore_class=-1, from_logits=True)
    assert_allclose(mean_loss(labels, logits, weights), weighted.sum() / valid.sum(), atol=1e-5)
    sum_loss = losses.SparseCategoricalCrossentropy(
        ignore_class=-1, from_logits=True, reduction="sum"
    )
    assert_allclose(sum_loss(labels, logits, weights), weighted.sum(), rtol=1e-5)


def _numpy_dice_loss(labels, probs, smooth=1.0, valid=None):
    one_hot = _one_hot(labels, probs.shape[-1])
    if valid is not None:
        probs, one_hot = probs * valid[..., None], one_hot * valid[..., None]
    axes = tuple(range(1, probs.ndim - 1))
    intersection = (probs * one_hot).sum(axes)
    total = probs.sum(axes) + one_hot.sum(axes)
    return 1 - ((2 * intersection + smooth) / (total + smooth)).mean(-1)


def test_dice_loss_matches_numpy():
    labels = RNG.integers(0, 3, (2, 5, 5))
    logits = RNG.normal(size=(2, 5, 5, 3)).astype("float32")
    expected = _numpy_dice_loss(labels, _softmax(logits))
    assert_allclose(losses.dice_loss(labels, logits, from_logits=True), expected, atol=1e-5)
    assert_allclose(losses.DiceLoss(from_logits=True)(labels, logits), expected.mean(), atol=1e-5)
    labels[0, 0] = 9
    valid = labels != 9
    assert_allclose(
        losses.dice_loss(labels, logits, from_logits=True, ignore_class=9),
        _numpy_dice_loss(np.where(valid, labels, 0), _softmax(logits), valid=valid),
        atol=1e-5,
    )


def test_dice_loss_binary_single_channel():
    labels = RNG.integers(0, 2, (2, 6, 6))
    logits = RNG.normal(size=(2, 6, 6, 1)).astype("float32")
    foreground = 1 / (1 + np.exp(-logits))
    probs = np.concatenate([1 - foreground, foreground], -1)
    assert_allclose(
        losses.dice_loss(labels, logits, from_logits=True),
        _numpy_dice_loss(labels, probs),
        atol=1e-5,
    )


def test_dice_loss_is_zero_for_perfect_prediction():
    labels = RNG.integers(0, 3, (2, 4, 4))
    assert_allclose(losses.DiceLoss(smooth=1e-6)(labels, _one_hot(labels, 3)), 0.0, atol=1e-5)


def test_crossentropy_dice_combination():
    labels = RNG.integers(0, 3, (2, 5, 5))
    labels[1, 2] = 255
    logits = RNG.normal(size=(2, 5, 5, 3)).astype("float32")
    valid = labels != 255
    per_pixel = to_numpy(
        losses.sparse_categorical_crossentropy(
            labels, logits, True, label_smoothing=0.1, ignore_class=255
        )
    )
    crossentropy = per_pixel.sum((1, 2)) / valid.sum((1, 2))
    dice = _numpy_dice_loss(np.where(valid, labels, 0), _softmax(logits), valid=valid)
    loss = losses.CrossentropyDiceLoss(
        crossentropy_weight=0.5,
        dice_weight=2.0,
        label_smoothing=0.1,
        ignore_class=255,
        from_logits=True,
    )
    assert_allclose(loss(labels, logits), (0.5 * crossentropy + 2.0 * dice).mean(), atol=1e-5)


@pytest.mark.parametrize(
    "loss",
    [
        losses.SparseCategoricalCrossentropy(label_smoothing=0.1, from_logits=True),
        losses.DiceLoss(from_logits=True),
        losses.CrossentropyDiceLoss(label_smoothing=0.1, from_logits=True),
    ],
    ids=lambda loss: type(loss).__name__,
)
def test_losses_serialize_and_train(loss):
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(restored) is type(loss)
    assert restored.get_config() == loss.get_config()
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(3, 3, padding="same")(inputs))
    labels = RNG.integers(0, 3, (4, 8, 8))
    fit_one_step(model, RNG.normal(size=(4, 8, 8, 3)).astype("float32"), labels, loss=loss)


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5])
def test_bad_label_smoothing(value):
    with pytest.raises(ValueError, match=f"label_smoothing.*{value}"):
        losses.SparseCategoricalCrossentropy(label_smoothing=value)
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.CrossentropyDiceLoss(label_smoothing=value)


def test_bad_arguments():
    with pytest.raises(TypeError, match="ignore_class.*'void'"):
        losses.SparseCategoricalCrossentropy(ignore_class="void")
    with pytest.raises(ValueError, match="smooth.*0"):
        losses.DiceLoss(smooth=0)
    with pytest.raises(ValueError, match="dice_weight.*-1"):
        losses.CrossentropyDiceLoss(dice_weight=-1)


def test_check_labels():
    losses.check_labels(np.array([[0, 2], [1, 255]]), num_classes=3, ignore_class=255)
    with pytest.raises(ValueError, match=r"\[0, 3\).*\[3, 7\]"):
        losses.check_labels(np.array([[0, 3], [7, 1]]), num_classes=3)


def _losses(ignore_class=None):
    return [
        losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=ignore_class),
        losses.DiceLoss(from_logits=True, ignore_class=ignore_class),
        losses.CrossentropyDiceLoss(from_logits=True, ignore_class=ignore_class),
    ]


@pytest.mark.parametrize(
    "labels, ignore_class, message",
    [
        ([[0, -1]], None, r"labels in \[0, 3\)\. Received label values \[-1\]"),
        ([[0, 3]], None, r"labels in \[0, 3\)\. Received label values \[3\]"),
        ([[256, 255]], 255, r"\[0, 3\) or ignore_class=255\. Received label values \[256\]"),
        ([[0.0, 1.7]], None, r"Received float32 labels with non-integer values \[1\.7"),
        ([[np.nan, 1.0]], None, r"float32 labels with non-integer values \[nan\]"),
    ],
)
def test_bad_label_values_raise_eagerly(labels, ignore_class, message):
    logits = np.zeros((1, 2, 3), "float32")
    for loss in _losses(ignore_class):
        with pytest.raises(ValueError, match=message):
            loss(np.array(labels), logits)
    with pytest.raises(ValueError, match=message):
        losses.sparse_categorical_crossentropy(
            np.array(labels, "float32"), logits, ignore_class=ignore_class
        )


def test_integer_valued_float_labels_are_accepted():
    labels = np.array([[0, 2, 1, 255, 1, 0], [2, 2, 1, 0, 255, 0]])
    logits = RNG.normal(size=(2, 6, 3)).astype("float32")
    for loss in _losses(ignore_class=255):
        assert_allclose(loss(labels.astype("float64"), logits), loss(labels, logits))


@pytest.mark.parametrize(
    "labels_shape, logits_shape",
    [((2, 8, 8), (2, 8, 9, 3)), ((4,), (3, 10)), ((2, 4, 4, 2), (2, 4, 4, 3))],
)
def test_label_shape_must_match_predictions(labels_shape, logits_shape):
    shapes = re.escape(f"y_true.shape={labels_shape}, y_pred.shape={logits_shape}")
    for loss in _losses() + _losses(ignore_class=255):
        with pytest.raises(ValueError, match=f"without its class axis.*{shapes}"):
            loss(np.zeros(labels_shape, "int32"), np.zeros(logits_shape, "float32"))


def _traced(fn):
    """`fn` compiled as `model.fit` compiles it: `tf.function` or `jax.jit`."""
    if backend_name() == "tensorflow":
        import tensorflow as tf

        return tf.function(fn)
    import jax

    return jax.jit(fn)


needs_tracing = pytest.mark.skipif(
    backend_name() == "torch",
    reason="torch has no traced graph here: its fit runs eagerly and raises "
    "(test_bad_labels_in_fit_stop_training_with_finite_weights)",
)


@needs_tracing
def test_bad_labels_in_a_traced_graph_give_nan_where_they_are():
    # One sample of clean labels, one with 3, -1, 1.5 and NaN among void
    # (255) and clean ones.
    labels = np.array([[0, 1, 2, 255, 1, 0], [0, 3, -1, 255, 1.5, np.nan]], "float32")
    logits = RNG.normal(size=(2, 6, 3)).astype("float32")
    pixel_loss = to_numpy(
        _traced(
            lambda y, p: losses.sparse_categorical_crossentropy(
                y, p, from_logits=True, label_smoothing=0.1, ignore_class=255
            )
        )(labels, logits)
    )
    bad = np.array([[0, 0, 0, 0, 0, 0], [0, 1, 1, 0, 1, 1]], bool)
    assert np.isnan(pixel_loss[bad]).all()
    clean = np.where(bad, 0, labels)
    expected = to_numpy(
        losses.sparse_categorical_crossentropy(
            clean, logits, from_logits=True, label_smoothing=0.1, ignore_class=255
        )
    )
    assert_allclose(pixel_loss[~bad], expected[~bad], atol=1e-6)
    for loss in (losses.DiceLoss, losses.CrossentropyDiceLoss):
        loss = loss(from_logits=True, ignore_class=255, reduction=None)
        per_sample = to_numpy(_traced(loss)(labels, logits))
        assert np.isnan(per_sample[1]) and np.isfinite(per_sample[0])
        assert_allclose(per_sample[0], loss(clean, logits)[0], atol=1e-6)


@pytest.mark.skipif(backend_name() != "tensorflow", reason="static shapes elsewhere")
def test_shape_mismatch_found_at_run_time_gives_nan():
    import tensorflow as tf

    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    traced = tf.function(
        loss,
        input_signature=[
            tf.TensorSpec((None, None), "int32"),
            tf.TensorSpec((None, None, 3), "float32"),
        ],
    )
    # (2, 1) labels broadcast silently against (2, 4) pixels without the check.
    assert np.isnan(float(traced(np.zeros((2, 1), "int32"), np.zeros((2, 4, 3), "float32"))))
    assert np.isfinite(float(traced(np.zeros((2, 4), "int32"), np.zeros((2, 4, 3), "float32"))))


def test_bad_labels_in_fit_stop_training_with_finite_weights():
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(3, 1)(inputs))
    # jit_compile=False on TF still runs fit in a tf.function; JAX needs jit.
    model.compile(
        optimizer="sgd",
        loss=losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255),
        jit_compile=backend_name() == "jax",
    )
    x = RNG.normal(size=(2, 3, 3, 3)).astype("float32")
    labels = RNG.integers(0, 3, (2, 3, 3))
    labels[0, 0, 0], labels[1, 1, 1] = 255, 3
    fit = lambda: model.fit(  # noqa: E731
        x, labels, epochs=3, callbacks=[keras.callbacks.TerminateOnNaN()], verbose=0
    )
    if backend_name() == "torch":  # fit runs eagerly: the labels are checked
        with pytest.raises(ValueError, match=r"\[0, 3\) or ignore_class=255.*\[3\]"):
            fit()
        return
    history = fit()
    assert len(history.history["loss"]) == 1 and np.isnan(history.history["loss"][0])
    assert all(np.isfinite(weight).all() for weight in model.get_weights())
