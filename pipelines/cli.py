"""The `keras-vae` command: one subcommand per pipeline stage.

    keras-vae train ...       train into a resumable run folder (pipelines.train)
    keras-vae sweep ...       train a grid of runs (pipelines.sweep)
    keras-vae demo            train the default config, export it, say where it is
    keras-vae export RUN      SavedModel, ONNX and LiteRT decoders, web page (export.cli)
    keras-vae evaluate RUN    eval.json and eval.md (pipelines.evaluate)
    keras-vae compare ...     five objectives, one report (pipelines.compare)
    keras-vae serve RUN       the exported web page on 127.0.0.1 (export.web_page)

Subcommand modules are imported only when used: `--help` stays fast.
"""

import importlib
import pathlib
import sys

DEFAULT_CONFIG = pathlib.Path(__file__).parent / "configs" / "default.toml"

#: Subcommand -> (module with a `main(argv) -> int`, one-line help).
COMMANDS = {
    "train": ("pipelines.train", "train a VAE into a resumable run folder"),
    "sweep": ("pipelines.sweep", "train a grid of runs"),
    "demo": ("pipelines.cli", "train the default config (a few minutes), then export it"),
    "export": ("export.cli", "export a run's decoder: SavedModel, ONNX, LiteRT, web page"),
    "evaluate": ("pipelines.evaluate", "evaluate a run: eval.json and eval.md"),
    "compare": ("pipelines.compare", "train one set of networks under five objectives, "
                "then report (the paintings question)"),
    "serve": ("export.web_page", "serve a run's latent-explorer web page on 127.0.0.1"),
}


def run_command(command):
    """Runs `command()`; a user's error becomes `keras-vae: error: <one line>`.

    Returns the exit status: 0; 1 when the command could not finish
    (TrainingError, or an OSError: a full disk, no permission to write); 2
    for a bad config, flag, data set or run folder; 130 when interrupted.
    Other exceptions are bugs and keep their traceback.
    """
    from keras_vae import files
    from pipelines.train import TrainingError

    try:
        command()
    except TrainingError as err:
        return _error(err, 1)
    except (ValueError, FileNotFoundError) as err:
        return _error(err, 2)
    except OSError as err:
        return _error(files.describe(err), 1)
    except KeyboardInterrupt:
        print("keras-vae: interrupted: rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


def _error(err, status):
    message = getattr(err, "message", None) or str(err)
    print("keras-vae: error:", " ".join(message.split()), file=sys.stderr)
    return status


def demo_main(argv=None):
    """`keras-vae demo [train flags]`: the default config, then its export."""
    from pipelines import train

    folders = []
    status = run_command(lambda: folders.append(
        train.train(*train.parse_config(argv, "keras-vae demo", str(DEFAULT_CONFIG)))
    ))
    if status:
        return status
    folder = folders[0]
    from export import ExportError, export_run

    try:
        export_run(folder)
    except ExportError as err:
        return _error(f"the run trained, but its export failed: {err}", 1)
    tensorboard = _script("tensorboard")
    print(f"Run: {folder}\nTensorBoard: {tensorboard} --logdir {folder / 'logs'}")
    print(f"Web page: {_script('keras-vae')} serve {folder}, then open http://127.0.0.1:8000/web/")
    return 0


def _script(name):
    """The console script `name` installed beside this Python (.venv/bin after `make`)."""
    path = pathlib.Path(sys.executable).with_name(name)
    return path if path.exists() else name


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in COMMANDS:
        lines = [f"  {name:<9} {help_}" for name, (_, help_) in COMMANDS.items()]
        print("usage: keras-vae {" + ",".join(COMMANDS) + "} ...\n\n" + "\n".join(lines),
              file=sys.stdout if argv[:1] in (["-h"], ["--help"]) else sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    if argv[0] == "demo":
        return demo_main(argv[1:])
    return importlib.import_module(COMMANDS[argv[0]][0]).main(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
