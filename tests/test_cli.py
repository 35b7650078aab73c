import pytest

import keras_cvlec
from keras_cvlec import cli
from keras_cvlec.utils import count_macs, structure_only


def _rows(output, skip):
    return [line.split() for line in output.splitlines()[skip:]]


def test_info_lists_parameters_and_gmacs(capsys):
    assert cli.main(["info", "resnet18", "resnet34", "--image-size", "64"]) == 0
    rows = {row[0]: row[1:] for row in _rows(capsys.readouterr().out, 2)}
    for name in ("resnet18", "resnet34"):
        with structure_only():
            model = keras_cvlec.build_model(name)
        assert rows[name][0] == f"{model.count_params():,}"
        assert rows[name][1] == f"{count_macs(model, input_shape=(64, 64, 3)) / 1e9:.2f}"
    # torchvision's 11,689,512 trainable, plus v1's conv biases and the BN
    # moving statistics: each adds one value per BN channel (4,800 channels).
    assert rows["resnet18"][0] == f"{11_689_512 + 4_800 + 2 * 4_800:,}"


def test_info_compare_side_by_side(capsys):
    assert cli.main(["info", "--compare", "resnet18", "convnext_atto", "--image-size", "32"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split() == ["resnet18", "convnext_atto"]
    with structure_only():
        models = [keras_cvlec.build_model(n) for n in ("resnet18", "convnext_atto")]
    assert out[2].split()[1:] == [f"{model.count_params():,}" for model in models]
    assert out[3].startswith("GMACs at 32x32")


@pytest.mark.backend_independent
def test_info_rejects_unknown_model():
    with pytest.raises(SystemExit, match="unknown model.*resnet7.*resnet18"):
        cli.main(["info", "resnet7"])
    with pytest.raises(SystemExit, match="unknown model.*vgg"):
        cli.main(["info", "--compare", "resnet18", "vgg"])


@pytest.mark.backend_independent
def test_parser_requires_a_command():
    with pytest.raises(SystemExit):
        cli.make_parser().parse_args([])


@pytest.mark.backend_independent
@pytest.mark.parametrize(
    "option, value, message",
    [
        (
            "--image-size",
            "10x",
            "--image-size: expected SIZE or HEIGHTxWIDTH, e.g. 64 or 64x96, got '10x'",
        ),
        (
            "--ignore-class",
            "void",
            "--ignore-class: expected a mask value 0-255 or 'none', got 'void'",
        ),
    ],
)
def test_parser_names_the_form_of_a_bad_value(option, value, message, capsys):
    command = ["train", "--model", "unet", "--dataset", "shapes", "--output", "x"]
    with pytest.raises(SystemExit) as exit_info:
        cli.make_parser().parse_args([*command, option, value])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
