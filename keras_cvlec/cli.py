"""The `keras-cvlec` console script."""

import argparse
import importlib
import sys

__all__ = ["main", "make_parser"]

# Modules that add subcommands besides `info`: each defines
# `add_commands(subparsers)`, which adds its parsers with a `handler` default.
COMMAND_MODULES = ("keras_cvlec.training.cli", "keras_cvlec.export.cli")


def _model_costs(name, image_size):
    """(parameters, GMACs at image_size x image_size) of a registered model."""
    import keras

    from keras_cvlec.models.registry import build_model
    from keras_cvlec.utils import count_macs, structure_only

    channels_last = keras.config.image_data_format() == "channels_last"
    shape = (image_size, image_size, 3) if channels_last else (3, image_size, image_size)
    with structure_only():
        model = build_model(name)
        return model.count_params(), count_macs(model, input_shape=shape) / 1e9


def _check_names(names):
    from keras_cvlec.models.registry import list_models

    unknown = [name for name in names if name not in list_models()]
    if unknown:
        raise SystemExit(
            f"keras-cvlec info: unknown model(s) {', '.join(unknown)}. "
            f"Registered models: {', '.join(list_models())}."
        )


def _info(args):
    import keras

    from keras_cvlec.models.registry import list_models

    print(f"keras {keras.__version__}, backend {keras.backend.backend()}")
    size = args.image_size
    if args.compare:
        _check_names(args.compare)
        costs = [_model_costs(name, size) for name in args.compare]
        print(f"{'':<22}" + "".join(f"{name:>18}" for name in args.compare))
        print(f"{'parameters':<22}" + "".join(f"{p:>18,}" for p, _ in costs))
        print(f"{f'GMACs at {size}x{size}':<22}" + "".join(f"{g:>18.2f}" for _, g in costs))
        return 0
    names = args.models or list_models()
    _check_names(names)
    print(f"{'model':<20} {'parameters':>14} {f'GMACs@{size}':>12}")
    for name in names:
        params, gmacs = _model_costs(name, size)
        print(f"{name:<20} {params:>14,} {gmacs:>12.2f}")
    return 0


def make_parser():
    """The argument parser of `keras-cvlec`."""
    parser = argparse.ArgumentParser(
        prog="keras-cvlec",
        description="Computer-vision models for Keras 3 (TensorFlow, JAX, PyTorch). "
        "Pick the backend with the KERAS_BACKEND environment variable.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    info = commands.add_parser(
        "info",
        help="list the registered models with their parameters and "
        "multiply-accumulates (GMACs) of one forward pass",
    )
    info.add_argument(
        "models", nargs="*", help="model names to show (default: every registered one)"
    )
    info.add_argument(
        "--compare", nargs="+", metavar="MODEL", help="show these models side by side"
    )
    info.add_argument(
        "--image-size", type=int, default=224, help="input height and width for GMACs"
    )
    info.set_defaults(handler=_info)
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_commands(commands)
    return parser


def main(argv=None):
    """Entry point of the `keras-cvlec` console script."""
    args = make_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
