"""How much a command says, and on how many threads it works: ``--quiet``, ``-v/--verbose``, ``--threads N``.

As cwebp's ``-quiet`` and ``-v``: by default each file gets a summary line and each warning a ``warning:`` line;
``--quiet`` leaves errors alone (the exit status says the rest); ``-v`` adds each file's time and what the command
runs with. The options take effect when parsed (Click callbacks), so the commands keep their signatures, and every
invocation sets them again, so one command's setting never leaks into the next (tests run many in one process).
"""
from __future__ import annotations

from typing import Callable

import click

from facecodec.models.threads import set_threads

QUIET, NORMAL, VERBOSE = -1, 0, 1
_level = NORMAL


def level() -> int:
    return _level


def say(message: str, err: bool = False) -> None:
    """A summary line: not with --quiet."""
    if _level >= NORMAL:
        click.echo(message, err=err)


def warn(message: str, before: str = "") -> None:
    """A ``warning:`` line on standard error (``before``: what clears a progress bar's line): not with --quiet."""
    if _level >= NORMAL:
        click.echo(f"{before}warning: {message}", err=True)


def detail(message: str) -> None:
    """A line only -v shows, on standard error (standard output may carry the file)."""
    if _level >= VERBOSE:
        click.echo(message, err=True)


def _set_quiet(ctx: click.Context, param: click.Parameter, value: bool) -> None:   # eager: runs before -v's
    global _level
    _level = QUIET if value else NORMAL


def _set_verbose(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    global _level
    if value and _level == QUIET:
        raise click.UsageError("--quiet and --verbose ask for opposite things: give one")
    if value:
        _level = VERBOSE


def _set_threads(ctx: click.Context, param: click.Parameter, value: int | None) -> None:
    set_threads(value)


def reporting_options(command: Callable) -> Callable:
    """--quiet, -v/--verbose and --threads, for the commands that convert files."""
    options = [
        click.option("--quiet", is_flag=True, expose_value=False, is_eager=True, callback=_set_quiet,
                     help="Print errors only (no per-file lines, no warnings, no progress bar)."),
        click.option("-v", "--verbose", is_flag=True, expose_value=False, callback=_set_verbose,
                     help="Also print each file's time, on standard error."),
        click.option("--threads", type=click.IntRange(min=1), expose_value=False, callback=_set_threads,
                     help="Threads for the transform and post-filter (default: the libraries' own, all cores; a "
                          "folder run shares the cores out among its workers)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command
