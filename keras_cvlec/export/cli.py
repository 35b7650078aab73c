"""The `keras-cvlec export` command."""

from keras_cvlec.export.exporter import FORMATS

__all__ = ["add_commands"]


def add_commands(subparsers):
    """Adds the `export` parser to the `keras-cvlec` subcommands."""
    parser = subparsers.add_parser(
        "export",
        help="export a .keras model to SavedModel, TFLite and/or ONNX, and check "
        "that each artifact gives the model's outputs",
    )
    parser.add_argument("model", help="the model's .keras file")
    parser.add_argument(
        "--format",
        nargs="+",
        choices=FORMATS,
        default=["saved_model", "tflite"],
        dest="formats",
        help="artifacts to write (default: saved_model tflite)",
    )
    parser.add_argument("--quantize", choices=("float16", "int8"), help="quantize the TFLite model")
    parser.add_argument(
        "--input-size",
        nargs=2,
        type=int,
        metavar=("H", "W"),
        help="input height and width to export with (needed for TFLite when the "
        "model takes any size)",
    )
    parser.add_argument(
        "--out", help="output folder (default: the model's path without .keras + '_export')"
    )
    parser.add_argument(
        "--no-verify",
        action="store_false",
        dest="verify",
        help="skip running the artifacts and comparing their outputs",
    )
    parser.set_defaults(handler=_export)


def _export(args):
    from keras_cvlec.export.exporter import (
        ExportProcessError,
        export_loaded,
        load_model_arg,
        model_data_format,
    )
    from keras_cvlec.export.verify import VerificationError

    try:
        model, path = load_model_arg(args.model)
        input_shape = None
        if args.input_size:
            height, width = args.input_size
            channels_first = model_data_format(model) == "channels_first"
            input_shape = (None, height, width) if channels_first else (height, width, None)
        result = export_loaded(
            model,
            path,
            args.out or path.removesuffix(".keras") + "_export",
            args.formats,
            input_shape=input_shape,
            quantize=args.quantize,
            verify=args.verify,
            sample_inputs=None,
        )
    except ExportProcessError as error:
        message = str(error).replace("in this error's `stderr` attribute", "above")
        raise SystemExit(f"{error.stderr}\nkeras-cvlec export: {message}") from error
    except (ValueError, TypeError, ImportError, VerificationError) as error:
        raise SystemExit(f"keras-cvlec export: {error}") from error
    print(result)
    return 0
