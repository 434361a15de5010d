"""Pipelines around `keras_vae`: the `keras-vae` command, its config files and runs.

See docs/architecture.md for the modules and what each may import.
"""
