import pytest

import keras_cvlec
from keras_cvlec import cli


def test_info_lists_parameter_counts(capsys):
    assert cli.main(["info", "resnet18", "resnet34"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split()[1] for line in lines[2:]}
    for name in ("resnet18", "resnet34"):
        expected = keras_cvlec.build_model(name).count_params()
        assert rows[name] == f"{expected:,}"
    # torchvision's 11,689,512 trainable, plus v1's conv biases and the BN
    # moving statistics: each adds one value per BN channel (4,800 channels).
    assert rows["resnet18"] == f"{11_689_512 + 4_800 + 2 * 4_800:,}"


def test_info_rejects_unknown_model():
    with pytest.raises(SystemExit, match="unknown model.*resnet7.*resnet18"):
        cli.main(["info", "resnet7"])


def test_parser_requires_a_command():
    with pytest.raises(SystemExit):
        cli.make_parser().parse_args([])
