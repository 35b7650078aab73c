"""Test configuration: every test starts from the same global Keras state."""

import keras
import pytest


@pytest.fixture(autouse=True)
def reset_keras_state():
    """float32 policy, channels_last and seed 0 before (and after) every test."""

    def reset():
        keras.config.set_dtype_policy("float32")
        keras.config.set_image_data_format("channels_last")
        keras.utils.set_random_seed(0)

    reset()
    yield
    reset()
