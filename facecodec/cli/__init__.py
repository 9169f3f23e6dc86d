"""The ``fcz`` command (``facecodec.cli:main``): the group and its options in facecodec.cli.app, the commands in
facecodec.cli.commands (imported here, so that they register on the group)."""
from facecodec.cli import commands  # noqa: F401  (registers the commands)
from facecodec.cli.app import main

__all__ = ["main"]
