"""`keras-vae export RUN_DIR` (also `python -m export RUN_DIR`).

Exit codes: 0 exported and verified; 1 export failed (one-line `error:` on
stderr, nothing left at RUN_DIR/export but the previous export: a converter
or runtime failure, a full disk, no permission); 2 usage (a bad flag, a
folder that is not a run, a damaged model.keras, a run another command
writes into, `--formats web` without onnxruntime-web), as for `keras-vae
train`; 130 interrupted, 143 terminated.
"""

import argparse
import sys

from export import common
from pipelines import cli
from pipelines import flags


def _formats(text):
    try:
        return common.check_formats(f.strip() for f in text.split(",") if f.strip())
    except common.ExportError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser(prog="keras-vae export"):
    parser = flags.ArgumentParser(
        prog=prog, prefix=prog,
        description="Export a trained run's decoder as TensorFlow SavedModel, ONNX and "
        "LiteRT, verified against Keras, and a web page that decodes in the browser, "
        "to RUN_DIR/export/.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder holding model.keras")
    parser.add_argument(
        "--formats", type=_formats, default=None,
        help="comma-separated: savedmodel,onnx,litert,web (default: all; web adds onnx; "
        "without onnxruntime-web installed the default leaves web out, saying so)",
    )
    parser.add_argument(
        "--opset", type=flags.number(int, "an integer", low=1), default=None,
        help="ONNX opset (default: the newest both tf2onnx and ONNX Runtime support)",
    )
    parser.add_argument(
        "--encoder", action="store_true",
        help="also export the encoder: image -> posterior_mean, posterior_log_variance",
    )
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    return parser


def main(argv=None, prog="keras-vae export"):
    """Runs the export command; returns the exit code."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        # Refuse a wrong folder before the seconds-long TensorFlow import.
        common.model_path(args.run_dir)
        cli.import_tensorflow_quietly()
        from export.exporter import export_run

        export_run(
            args.run_dir, formats=args.formats, opset=args.opset,
            encoder=args.encoder, verbose=not args.quiet,
        )
    except common.ExportError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2 if isinstance(error, common.UsageError) else 1
    except KeyboardInterrupt as error:
        return cli.interrupted(error, f"{args.run_dir}/export is unchanged", prog)
    return 0
