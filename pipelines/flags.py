"""Command-line flags: one per config field (from `pipelines.config`), and
the argparse parsers of numbers that every subcommand shares.

Example:

    >>> parser = argparse.ArgumentParser()
    >>> add_config_flags(parser, skip=("beta.",))
    >>> overrides(parser.parse_args(["--latent-dim", "8"]))["model.latent_dim"]
    8
"""

import argparse
import math
import sys

from pipelines import config as config_lib
from pipelines.schema import RUN_TABLES


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser whose errors are one line, `<prefix>: error: <what>;
    see <prog> --help`, exit 2, like every other error of the command
    (argparse prints the whole usage, 15 to 27 lines, under the prog's name)."""

    def __init__(self, *args, prefix="keras-vae", **kwargs):
        super().__init__(*args, **kwargs)
        self.prefix = prefix

    def error(self, message):
        print(f"{self.prefix}: error: {' '.join(message.split())}; see {self.prog} --help",
              file=sys.stderr)
        sys.exit(2)


def numbers(cast, what, low=None, unique=False, high=None):
    """argparse type: comma-separated `cast` values, e.g. "0,0.1,1", each
    finite, >= `low` and <= `high`; `unique`: no value twice (they name run
    folders)."""

    def parse(text):
        try:
            # + 0 makes -0.0 0.0: "-0,0" repeats a value, and names one run.
            values = [cast(v) + 0 for v in text.split(",") if v.strip()]
        except ValueError:
            values = None
        if not values and low is not None or values is None or any(
                not math.isfinite(v) or (low is not None and v < low)
                or (high is not None and v > high) for v in values):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        if unique and len({f"{v:g}" for v in values}) != len(values):
            raise argparse.ArgumentTypeError(f"{text!r} repeats a value")
        return values

    return parse


def number(cast, what, low=None, high=None):
    """argparse type: one `cast` value in [`low`, `high`]."""
    parse = numbers(cast, what, low, high=high)

    def one(text):
        values = parse(text) if "," not in text else None
        if not values or len(values) != 1:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return values[0]

    return one


positive_int = number(int, "a positive integer", low=1)
#: A seed: NumPy's and TensorFlow's seeding take 0 to 2**32 - 1.
seed = number(int, f"an integer from 0 to {config_lib.MAX_SEED}", low=0, high=config_lib.MAX_SEED)


def boolean(text):
    """argparse type: true/false (yes/no, 1/0)."""
    if text.lower() in ("true", "yes", "1"):
        return True
    if text.lower() in ("false", "no", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


_TYPES = {bool: boolean, list: numbers(int, "integers like 32,64,128")}

#: {dotted config key: flag}, for the config's error messages.
FLAG_NAMES = {key: field.metadata["flag"] or "--" + field.name.replace("_", "-")
              for key, field in config_lib.FIELDS.items()}


def add_config_flags(parser, skip=(), tables=RUN_TABLES):
    """Adds a flag for every field of `tables`, but those starting with a `skip` prefix."""
    for key, field in config_lib.FIELDS.items():
        if key.startswith(tuple(skip)) or key.partition(".")[0] not in tables:
            continue
        kind = config_lib.value_type(field)
        parser.add_argument(
            FLAG_NAMES[key], dest=key, metavar=field.name.upper(), type=_TYPES.get(kind, kind),
            help=f"{field.metadata['help']} [{key}]",
        )


def overrides(args):
    """{dotted key: value} of the config flags in parsed `args` (unset: None)."""
    return {key: getattr(args, key, None) for key in config_lib.FIELDS}


def load(args):
    """The resolved config of parsed `args` (their --config file and flags)."""
    return config_lib.load_config(args.config, overrides(args), FLAG_NAMES)
