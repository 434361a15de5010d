"""`keras-vae demo [train flags]`: train the default config, export it, say where it is."""

import pathlib
import sys

from export import ExportError, export_run
from pipelines import cli
from pipelines import exportcmd
from pipelines import train


def main(argv=None):
    """`keras-vae demo [train flags]`: the default config, then its export."""
    folders = []
    status = cli.run_command(lambda: folders.append(
        train.train(*train.parse_config(argv, "keras-vae demo", str(cli.DEFAULT_CONFIG)))
    ))
    if status:
        return status
    folder = folders[0]
    try:
        # All formats it can: without npm's runtime, no page.
        exported = export_run(folder, latent_images=exportcmd.latent_images)
    except ExportError as err:
        return cli.error(f"the run trained, but its export failed: {err}", 1)
    tensorboard = _script("tensorboard")
    print(f"Run: {folder}\nTensorBoard: {tensorboard} --logdir {folder / 'logs'}")
    if "web" in exported["artifacts"]:
        print(f"Web page: {_script('keras-vae')} serve {folder}, then open "
              "http://127.0.0.1:8000/web/")
    return 0


def _script(name):
    """The console script `name` installed beside this Python (.venv/bin after `make`)."""
    path = pathlib.Path(sys.executable).with_name(name)
    return path if path.exists() else name
