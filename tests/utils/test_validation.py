"""The shared argument checks of keras_cvlec.utils.validation."""

import numpy as np
import pytest

from keras_cvlec.utils import validation

pytestmark = pytest.mark.backend_independent


@pytest.mark.parametrize(
    "value, expected",
    [(3, True), (np.int64(3), True), (True, False), (3.0, False), ("3", False), (None, False)],
)
def test_is_int(value, expected):
    assert validation.is_int(value) is expected


def test_int_pair_and_image_size():
    assert validation.check_int_pair("pool_size", 2) == (2, 2)
    assert validation.check_int_pair("pool_size", [3, np.int32(4)]) == (3, 4)
    assert validation.check_image_size(None) is None
    assert validation.check_image_size(None, default=32) == (32, 32)
    assert validation.check_image_size((48, 64), default=32) == (48, 64)
    for bad, error in [
        ((2, 2, 2), ValueError),
        ((2, True), TypeError),
        (2.0, TypeError),
        (0, ValueError),
        ((3, 0), ValueError),
    ]:
        with pytest.raises(
            error,
            match=r"`pool_size` must be an int >= 1 or a pair of ints >= 1\. Received: pool_size=",
        ):
            validation.check_int_pair("pool_size", bad)
    with pytest.raises(
        ValueError, match=r"`image_size` must be None, an int >= 1 or a \(height, width\) pair"
    ):
        validation.check_image_size(-1)


def test_axes():
    assert validation.spatial_axes("channels_last") == (1, 2)
    assert validation.spatial_axes("channels_first") == (2, 3)
    assert (
        validation.channel_axis("channels_last") == -1
        and validation.channel_axis("channels_first") == 1
    )


def test_renamed_arguments():
    @validation.renamed_arguments(encoder="backbone")
    def build(*, backbone=None):
        return backbone

    with pytest.warns(DeprecationWarning, match="`encoder` is deprecated, use `backbone`"):
        assert build(encoder="resnet18") == "resnet18"
    with pytest.raises(TypeError, match="got both `encoder` and `backbone`"):
        build(encoder="a", backbone="b")
