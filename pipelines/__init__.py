"""Pipelines around `keras_vae`: the `keras-vae` command, its config files and runs."""
