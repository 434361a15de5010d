"""`keras-vae export RUN_DIR` and `keras-vae serve RUN_DIR`: the command-line
front ends of the export stage (`export.export_run`, `export.serve.serving`),
which know how a run's data is loaded (the validation images the latent
KL is measured on) where the export stage does not.

`export` exit codes:
0 exported and verified; 1 export failed (one-line `error:` on
stderr, nothing left at RUN_DIR/export but the previous export: a converter
or runtime failure, a full disk, no permission); 2 usage (a bad flag, a
folder that is not a run, a damaged model.keras, a run another command
writes into, `--formats web` without onnxruntime-web), as for `keras-vae
train`; 130 interrupted, 143 terminated.
"""

import argparse
import pathlib
import sys
import threading

from export import common
from export import runfolder
from export import serve as serve_lib
from export import web_page
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


def latent_images(run_dir):
    """(the run's first `memory.SUMMARY_IMAGES` validation images, or its
    training images without a validation split; a phrase saying which): what
    the run's traversals were measured on, rebuilt from its config.toml.
    Raises ValueError or OSError (no config.toml, no data), which the export
    reports in one phrase."""
    from pipelines import config as config_lib
    from pipelines import datasets
    from pipelines import memory

    path = pathlib.Path(run_dir) / runfolder.CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"the run has no {runfolder.CONFIG}")
    config = config_lib.load_config(path)
    train_ds, val_ds, _ = datasets.from_config(config)
    images = datasets.first_images(val_ds if val_ds is not None else train_ds,
                                   memory.SUMMARY_IMAGES)
    split = "validation" if val_ds is not None else "training"
    return images, f"{len(images)} {split} images of {config['data']['source']!r}"


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
            encoder=args.encoder, verbose=not args.quiet, latent_images=latent_images,
        )
    except common.ExportError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2 if isinstance(error, common.UsageError) else 1
    except KeyboardInterrupt as error:
        return cli.interrupted(error, f"{args.run_dir}/export is unchanged", prog)
    return 0


def serve(argv=None, prog="keras-vae serve"):
    """`keras-vae serve RUN_DIR [--port 8000]`: serves the run's export on
    127.0.0.1 until Ctrl-C (then open http://127.0.0.1:8000/web/).

    Exit codes as for the other commands: 2 a bad port or a run folder without
    an exported page, 1 a port that cannot be bound, 130 Ctrl-C, 143 SIGTERM.
    It says when the export is stale (model.keras changed since it was
    exported)."""
    parser = flags.ArgumentParser(
        prog=prog, prefix=prog, description="Serve a run's latent-explorer page on 127.0.0.1."
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder exported with web")
    parser.add_argument("--port", type=flags.number(int, "a port from 0 to 65535", 0, 65535),
                        default=8000, help="port (default 8000; 0: any free)")
    args = parser.parse_args(argv)
    export_dir = pathlib.Path(args.run_dir) / common.EXPORT_DIR
    try:
        runfolder.check(args.run_dir, needs=())  # The export alone is enough.
        if not (export_dir / web_page.FOLDER / "index.html").is_file():
            raise common.UsageError(
                f"{str(export_dir)!r} holds no {web_page.FOLDER}/index.html: run keras-vae "
                f"export {args.run_dir} --formats web first")
        stale = common.stale(args.run_dir)
        if stale:
            print(f"{prog}: warning: {stale}", file=sys.stderr)
        with serve_lib.serving(export_dir, args.port) as url:
            print(f"Serving {export_dir} at {url} (Ctrl-C to stop)", flush=True)
            threading.Event().wait()
    except (common.ExportError, runfolder.RunFolderError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"{prog}: error: cannot serve on port {args.port}: {error.strerror or error}; "
              "pass another --port", file=sys.stderr)
        return 1
    except KeyboardInterrupt as error:
        return cli.interrupted(error, "stopped serving", prog)
    return 0

