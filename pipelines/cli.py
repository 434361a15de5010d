"""The `keras-vae` command: one subcommand per pipeline stage.

    keras-vae train ...       train into a resumable run folder (pipelines.train)
    keras-vae sweep ...       train a grid of runs (pipelines.sweep)
    keras-vae demo            train the default config, export it, say where it is
    keras-vae export RUN      SavedModel, ONNX and LiteRT decoders, web page (export.cli)
    keras-vae evaluate RUN    eval.json and eval.md (pipelines.evaluate)
    keras-vae compare ...     five objectives, one report (pipelines.compare)
    keras-vae serve RUN       the exported web page on 127.0.0.1 (export.web_page)

Subcommand modules are imported only when used: `--help` stays fast. This
module imports none of them and no TensorFlow: each subcommand imports it.
"""

import importlib
import os
import pathlib
import sys
import tempfile

from pipelines.runfolder import TrainingError

DEFAULT_CONFIG = pathlib.Path(__file__).parent / "configs" / "default.toml"

#: Subcommand -> (module with a `main(argv) -> int`, one-line help).
COMMANDS = {
    "train": ("pipelines.train", "train a VAE into a resumable run folder"),
    "sweep": ("pipelines.sweep", "train a grid of runs"),
    "demo": ("pipelines.demo", "train the default config (a few minutes), then export it"),
    "export": ("export.cli", "export a run's decoder: SavedModel, ONNX, LiteRT, web page"),
    "evaluate": ("pipelines.evaluate", "evaluate a run: eval.json and eval.md"),
    "compare": ("pipelines.compare", "train one set of networks under five objectives, "
                "then report (the paintings question)"),
    "serve": ("export.web_page", "serve a run's latent-explorer web page on 127.0.0.1"),
}

#: Subcommands that check their arguments before importing TensorFlow (quietly) themselves.
CHECK_BEFORE_TENSORFLOW = ("export", "serve")


def import_tensorflow_quietly():
    """Imports TensorFlow and finds its devices with stderr muted.

    TensorFlow 2.21 prints its start-up lines (oneDNN, CUDA probing) before
    its logging is configured, whatever TF_CPP_MIN_LOG_LEVEL says, so every
    one-line error of the CLI would sit under them. Set TF_CPP_MIN_LOG_LEVEL=0
    to see them.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules or os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0":
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            import tensorflow

            tensorflow.config.list_physical_devices()
        except BaseException:
            os.dup2(saved, 2)
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)



def run_command(command):
    """Runs `command()`; a user's error becomes `keras-vae: error: <one line>`.

    Returns the exit status: 0; 1 when the command could not finish
    (TrainingError, or an OSError: a full disk, no permission to write); 2
    for a bad config, flag, data set or run folder; 130 when interrupted.
    Other exceptions are bugs and keep their traceback.
    """
    from keras_vae import files  # Here: `keras_vae` imports TensorFlow.

    try:
        command()
    except TrainingError as err:
        return error(err, 1)
    except (ValueError, FileNotFoundError) as err:
        return error(err, 2)
    except OSError as err:
        return error(files.describe(err), 1)
    except KeyboardInterrupt:
        print("keras-vae: interrupted: rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


def error(err, status):
    message = getattr(err, "message", None) or str(err)
    print("keras-vae: error:", " ".join(message.split()), file=sys.stderr)
    return status


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in COMMANDS:
        lines = [f"  {name:<9} {help_}" for name, (_, help_) in COMMANDS.items()]
        print("usage: keras-vae {" + ",".join(COMMANDS) + "} ...\n\n" + "\n".join(lines),
              file=sys.stdout if argv[:1] in (["-h"], ["--help"]) else sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    if argv[0] not in CHECK_BEFORE_TENSORFLOW:
        import_tensorflow_quietly()
    return importlib.import_module(COMMANDS[argv[0]][0]).main(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
