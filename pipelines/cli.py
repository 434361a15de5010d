"""The `keras-vae` command: one subcommand per pipeline stage.

    keras-vae train ...       train into a resumable run folder (pipelines.train)
    keras-vae sweep ...       train a grid of runs (pipelines.sweep)
    keras-vae demo            train the default config, export it, say where it is
    keras-vae export RUN      decoders as SavedModel, ONNX, LiteRT, web page (pipelines.exportcmd)
    keras-vae evaluate RUN    eval.json and eval.md (pipelines.evaluate)
    keras-vae compare ...     five objectives, one report (pipelines.compare)
    keras-vae serve RUN       the exported web page on 127.0.0.1 (pipelines.exportcmd)

Subcommand modules are imported only when used: `--help` stays fast. This
module imports none of them and no TensorFlow: each subcommand imports it.
"""

import importlib
import logging
import os
import pathlib
import signal
import sys
import tempfile

from keras_vae import files  # No TensorFlow: the package imports it lazily.

DEFAULT_CONFIG = pathlib.Path(__file__).parent / "configs" / "default.toml"

#: Subcommand -> ("module:function", the function taking argv and returning the exit
#: status; one-line help). tests/test_layers.py reads these strings as imports.
COMMANDS = {
    "train": ("pipelines.train:main", "train a VAE into a resumable run folder"),
    "sweep": ("pipelines.sweep:main", "train a grid of runs"),
    "demo": ("pipelines.demo:main", "train the default config (a few minutes), then export it"),
    "export": ("pipelines.exportcmd:main",
               "export a run's decoder: SavedModel, ONNX, LiteRT, web page"),
    "evaluate": ("pipelines.evaluate:main", "evaluate a run: eval.json and eval.md"),
    "compare": ("pipelines.compare:main", "train one set of networks under five objectives, "
                "then report (the paintings question)"),
    "serve": ("pipelines.exportcmd:serve", "serve a run's latent-explorer web page on 127.0.0.1"),
}

#: Subcommands that check their arguments before importing TensorFlow (quietly) themselves.
CHECK_BEFORE_TENSORFLOW = ("export", "serve")


class TrainingError(RuntimeError):
    """Training could not go on; the one-line message says what to do."""


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
        except KeyboardInterrupt:
            raise  # Ctrl-C: TensorFlow's lines so far are no one's concern.
        except BaseException:
            os.dup2(saved, 2)
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C raises KeyboardInterrupt, so that both
    stop a command the same way: every write is atomic, every `finally` runs."""


def handle_signals():
    """Makes SIGTERM raise `Terminated` in the main thread (entry points only)."""

    def terminate(signum, frame):
        raise Terminated

    signal.signal(signal.SIGTERM, terminate)


def interrupted(err, what="rerun the same command to resume", prog="keras-vae"):
    """Says in one line that `err` (KeyboardInterrupt or `Terminated`)
    stopped the command and `what` to do; returns 130 (Ctrl-C) or 143 (SIGTERM)."""
    how = "terminated (SIGTERM)" if isinstance(err, Terminated) else "interrupted"
    print(f"{prog}: {how}: {what}", file=sys.stderr)
    return 143 if isinstance(err, Terminated) else 130


def run_command(command):
    """Runs `command()`; a user's error becomes `keras-vae: error: <one line>`.

    Returns the exit status: 0; 1 when the command could not finish
    (TrainingError, or an OSError: a full disk, no permission to write); 2
    for a bad config, flag, data set or run folder (a damaged file of the
    run, a run another command writes into); 130 when interrupted, 143 when
    terminated. Other exceptions are bugs and keep their traceback.
    """
    try:
        command()
    except TrainingError as err:
        return error(err, 1)
    except (ValueError, FileNotFoundError) as err:
        return error(err, 2)
    except OSError as err:
        return error(files.describe(err), 1)
    except KeyboardInterrupt as err:
        return interrupted(err)
    return 0


def error(err, status):
    message = getattr(err, "message", None) or str(err)
    print("keras-vae: error:", in_flags(" ".join(message.split())), file=sys.stderr)
    return status


#: The library's arguments, as its messages name them, and this command's
#: flags for them: `keras_vae` speaks Python, the command translates.
IN_FLAGS = {"`source`": "--data", "`cache_dir`": "--cache-dir DIR",
            "`cache=False`": "--cache false"}


def in_flags(message):
    """`message` of the library with its arguments named as flags."""
    for argument, flag in IN_FLAGS.items():
        message = message.replace(argument, flag)
    return message


class _InFlags(logging.Filter):
    """Translates the warnings of the library's data modules (`in_flags`)."""

    def filter(self, record):
        record.msg, record.args = in_flags(record.getMessage()), ()
        return True


_IN_FLAGS = _InFlags()


def main(argv=None):
    """`keras-vae <command> ...`: returns the exit status. Ctrl-C or SIGTERM
    at any instant, TensorFlow's import included, ends in one line."""
    handle_signals()
    try:
        return _dispatch(sys.argv[1:] if argv is None else list(argv))
    except SystemExit as exit_:  # argparse: --help, or its one-line error.
        return exit_.code
    except KeyboardInterrupt as err:
        return interrupted(err, "nothing was left half-written; rerun the same command")


def _dispatch(argv):
    if argv[:1] in (["-h"], ["--help"]):
        lines = [f"  {name:<9} {help_}" for name, (_, help_) in COMMANDS.items()]
        print("usage: keras-vae {" + ",".join(COMMANDS) + "} ...\n\n" + "\n".join(lines))
        return 0
    if not argv or argv[0] not in COMMANDS:
        given = f"unknown command {argv[0]!r}" if argv else "no command given"
        return error(f"{given}: use one of {', '.join(COMMANDS)} (see keras-vae --help)", 2)
    logging.getLogger("keras_vae.data").addFilter(_IN_FLAGS)  # Once: the same filter.
    if argv[0] not in CHECK_BEFORE_TENSORFLOW:
        import_tensorflow_quietly()
    module, _, function = COMMANDS[argv[0]][0].partition(":")
    return getattr(importlib.import_module(module), function)(argv[1:])


if __name__ == "__main__":
    # `python -m pipelines.cli`: run the importable module's `main`, whose
    # `Terminated` is the class the subcommands (importing pipelines.cli) catch.
    from pipelines.cli import main as importable_main

    raise SystemExit(importable_main())
