"""Test configuration: every test starts from the same global Keras state."""

import keras
import pytest

if keras.backend.backend() == "jax":
    import jax

    # Every new weight shape compiles an initializer on JAX; the classic (not
    # partitionable) threefry compiles about 4x faster on CPU. Only the random
    # streams differ, and no test depends on a particular stream.
    jax.config.update("jax_threefry_partitionable", False)


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
