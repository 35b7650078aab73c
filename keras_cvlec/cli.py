"""The `keras-cvlec` console script."""

import argparse
import sys


def _info(args):
    import keras

    from keras_cvlec.models.registry import build_model, list_models

    names = args.models or list_models()
    unknown = [name for name in names if name not in list_models()]
    if unknown:
        raise SystemExit(
            f"keras-cvlec info: unknown model(s) {', '.join(unknown)}. "
            f"Registered models: {', '.join(list_models())}."
        )
    print(f"keras {keras.__version__}, backend {keras.backend.backend()}")
    print(f"{'model':<20} {'parameters':>14}")
    for name in names:
        model = build_model(name)
        print(f"{name:<20} {model.count_params():>14,}")
        del model
        keras.backend.clear_session()
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
        "info", help="list the registered models with their parameter counts"
    )
    info.add_argument(
        "models", nargs="*", help="model names to show (default: every registered one)"
    )
    info.set_defaults(handler=_info)
    return parser


def main(argv=None):
    """Entry point of the `keras-cvlec` console script."""
    args = make_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
