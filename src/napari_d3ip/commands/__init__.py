"""Sub-commands of `d3ip`: each module defines `register(subparsers)`."""

COMMANDS = ("demo", "reconstruct", "inspect", "simulate", "sample", "presets", "train_prior")
