"""Where single-file commands write: a file beside the input, a named file, a directory or standard output."""
from __future__ import annotations

import sys
import time
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import click
from PIL import Image

import facecodec
from facecodec.bitstream import FczError
from facecodec.cli import reporting
from facecodec.cli.app import STDIO
from facecodec.files import check_output, write_atomic
from facecodec.image_io import LOSSY_FORMATS, OUTPUT_FORMATS
from facecodec.messages import about


def several_or_stdio(inputs: tuple[str, ...], out: str | None) -> tuple[bool, bool]:
    """-> (several outputs into a directory, output to standard output); usage errors for impossible mixes."""
    if STDIO in inputs and len(inputs) > 1:
        raise click.UsageError("'-' (standard input) must be the only input")
    to_stdout = out == STDIO or (out is None and inputs == (STDIO,))
    several = len(inputs) > 1
    if to_stdout and several:
        raise click.UsageError("-o - (standard output) takes one input")
    if to_stdout and sys.stdout.buffer.isatty():
        raise click.UsageError("refusing to write binary data to a terminal: redirect standard output or use -o FILE")
    if inputs == (STDIO,) and sys.stdin.buffer.isatty():
        raise click.UsageError("'-' reads standard input, but it is a terminal: pipe or redirect a file into fcz")
    return several, to_stdout


def output_dir(out: str | None, several: bool) -> Path | None:
    """The directory outputs go into (created if missing), or None when -o names a file or is absent."""
    if out is None or out == STDIO:
        return None
    if several or out.endswith(("/", "\\")) or Path(out).is_dir():
        check_names_a_directory(out, "several inputs")
        directory = Path(out)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise click.ClickException(f"cannot create output directory {out}: {exc.strerror}") from None
        return directory
    return None


def check_names_a_directory(out: str, what: str) -> None:
    """A usage error where -o, which must be a directory for ``what``, looks like a file name (``x.fcz``) and is
    not an existing directory: made silently, it would be a directory named like a file."""
    if not out.endswith(("/", "\\")) and not Path(out).is_dir() and Path(out).suffix:
        raise click.UsageError(f"-o {out} names a file, but {what} need an output directory: "
                               f"-o {Path(out).with_suffix('')}/ for one")


def target_path(source: str, out: str | None, directory: Path | None, suffix: str) -> Path:
    """Where ``source``'s output goes: in ``directory``, at ``out``, or beside the input. Standard input's output is
    named ``stdin``, never after the '-' that stands for it."""
    name = ("stdin" if source == STDIO else Path(source).stem) + suffix
    if directory is not None:
        return directory / name
    return Path(out) if out is not None else Path(source).with_name(name)


def read_input(source: str) -> bytes | str:
    """Standard input's bytes for '-', else the path itself (the library opens and checks it)."""
    return sys.stdin.buffer.read() if source == STDIO else source


def convert_each(inputs: tuple[str, ...], out: str | None, force: bool, suffix: str,
               convert: Callable[[bytes | str, Path | None], tuple[bytes, str]]) -> None:
    """Convert every input, write each result, report failures and finish the rest.

    ``convert(input, target)`` gets the input (bytes from standard input, or a path) and the
    file it will be written to (None for standard output) and returns (bytes, summary).
    """
    several, to_stdout = several_or_stdio(inputs, out)
    directory = output_dir(out, several)
    targets = {source: None if to_stdout else target_path(source, out, directory, suffix) for source in inputs}
    owners: dict[Path, str] = {}
    failures = []
    show_bar = several and sys.stderr.isatty() and reporting.level() >= reporting.NORMAL
    # Click's bar, even hidden, imports its terminal code (1.4 ms of a 0.26 s decode): only made when shown.
    bar_or_inputs = click.progressbar(inputs, label="fcz", file=sys.stderr, show_pos=True,
                                      item_show_func=lambda p: p and Path(p).name) if show_bar else nullcontext(inputs)
    with bar_or_inputs as bar:
        for source in bar:
            shown = "<stdin>" if source == STDIO else source
            target = targets[source]
            try:
                if target is not None and owners.setdefault(target, shown) != shown:  # face.png and face.jpg
                    raise FczError(f"same output {target} as {owners[target]}: rename one of them")
                if target is not None:
                    check_output(target, [Path(p) for p in inputs if p != STDIO], force)
                started = time.perf_counter()
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", facecodec.FczWarning)
                    data, summary = convert(read_input(source), target)
                elapsed = time.perf_counter() - started
                if target is None:
                    sys.stdout.buffer.write(data)
                else:
                    write_atomic(target, data)
            except (FczError, OSError) as exc:
                failures.append(shown)
                click.echo(f"error: {about(shown, exc)}", err=True)
                continue
            for warning in caught:
                reporting.warn(f"{shown}: {warning.message}")
            if target is not None:
                reporting.say(f"{shown} -> {target}: {summary}")
            reporting.detail(f"{shown}: {elapsed:.3f} s")
    if several:
        reporting.say(f"{len(inputs) - len(failures)} of {len(inputs)} files done"
                      + (f"; failed: {', '.join(failures)}" if failures else ""), err=bool(failures))
    if failures:
        sys.exit(1)


def check_fcz_name(out: str | None) -> None:
    """Refuse writing .fcz bytes under another image format's name (face.png would not open as a PNG)."""
    if out is None or out == STDIO or out.endswith(("/", "\\")) or Path(out).is_dir():
        return
    suffix = Path(out).suffix.lower()
    other = Image.registered_extensions().get(suffix)
    if other is not None and other != "FCZ":
        raise click.UsageError(f"-o {out}: that name says {other}, but encode writes .fcz files; name it *.fcz "
                               f"(to write {other}, decode a .fcz file)")
    if suffix != ".fcz":
        reporting.warn(f"{out} does not end in .fcz")


def image_format(inputs: tuple[str, ...], out: str | None, fmt: str | None, quality: int | None,
                  folder: Path | None) -> str:
    """The image format decode and restore write (folder runs: --format or PNG); usage errors for bad mixes."""
    to_stdout = out == STDIO or (out is None and inputs == (STDIO,))
    fmt = (fmt or "PNG") if folder is not None else output_format_of(out, fmt, to_stdout)
    if quality is not None and fmt not in LOSSY_FORMATS:
        raise click.UsageError(f"--quality applies to JPEG and WebP output, not {fmt}")
    return fmt


def output_format_of(out: str | None, fmt: str | None, to_stdout: bool) -> str:
    """decode's output format: --format, else the -o file's extension, else PNG."""
    named = None
    if out is not None and not to_stdout and not out.endswith(("/", "\\")) and not Path(out).is_dir():
        suffix = Path(out).suffix.lower()
        named = OUTPUT_FORMATS.get(suffix)
        if named is None and fmt is None:
            raise click.UsageError(f"-o {out}: cannot tell an image format from {suffix or 'no extension'!r}; "
                                   f"use one of {', '.join(OUTPUT_FORMATS)} or --format")
    if fmt is not None and named is not None and fmt != named:
        raise click.UsageError(f"--format {fmt.lower()} does not match -o {out}")
    return fmt or named or "PNG"

