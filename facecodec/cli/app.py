"""The ``fcz`` command line: parse, call the library, report. No codec logic lives here.

This module holds the command group and the options the commands share; facecodec.cli.commands the
commands, facecodec.cli.outputs where single files go, facecodec.cli.folders folder runs.

Conventions, as image tools (cjpeg, cwebp, avifenc, ImageMagick) have them:

* ``-`` as the input reads standard input; ``-o -`` writes standard output (and so does
  ``-`` as the input without ``-o``). Binary data is never written to a terminal.
* Every failure is one line ``error: ...`` on standard error. Exit status 2 for a usage
  error (bad options, nothing done), 1 when an input could not be converted; with several
  inputs every one is attempted and each failure listed.
* Outputs are written atomically and never over an input; an existing file is only
  replaced with ``--force``, and never anything that is not a regular file.
"""
from __future__ import annotations

import sys
from typing import Any

import click
from click.exceptions import NoArgsIsHelpError

import facecodec
from facecodec.bitstream import FczError, FczHeader
from facecodec.devices import DEVICES, resolve_device
from facecodec.image_io import DEFAULT_MAX_PIXELS, FORMAT_SUFFIXES
from facecodec.metrics import bits_per_pixel

STDIO = "-"


def one_line(message: str) -> str:
    """A message on one line (Click lists a missing option's choices one per line)."""
    return " ".join(message.split())


class FczGroup(click.Group):
    """Click's group with facecodec's error style: one ``error:`` line, exit 2 for usage errors, else 1."""

    def main(self, args: Any = None, prog_name: str | None = None, **extra: Any) -> Any:
        try:
            return super().main(args, prog_name, standalone_mode=False, **extra)
        except NoArgsIsHelpError as exc:  # plain ``fcz``: the help itself, not as an error message
            click.echo(exc.ctx.get_help())
            sys.exit(2)
        except click.UsageError as exc:  # Click's own would print four lines of usage and hints
            click.echo(f"error: {one_line(exc.format_message())}", err=True)
            sys.exit(2)
        except click.ClickException as exc:
            click.echo(f"error: {one_line(exc.format_message())}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("error: interrupted", err=True)
            sys.exit(130)


@click.group(cls=FczGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(facecodec.__version__, "-V", "--version", prog_name="fcz")
def main() -> None:
    """facecodec: a learned image codec for photos of faces."""


def rate_summary(size: int, header: FczHeader) -> str:
    bpp = bits_per_pixel(size, header.width, header.height)
    return f"{size:,} bytes, {bpp:.3f} bpp, ratio {24 / bpp:.1f}:1"


def check_device(device: str) -> None:
    """A usage error when ``--device cuda`` cannot run here; auto and cpu always can (the default weights need no
    torch; a torch network says so when it loads, where torch is missing)."""
    if device == "cuda":
        try:
            resolve_device(device)
        except FczError as exc:
            raise click.UsageError(str(exc)) from None


inputs_argument = click.argument("inputs", nargs=-1, required=True)
strip_option = click.option("--strip", is_flag=True,
                            help="Leave out the image's ICC profile, EXIF and XMP (kept by default, as cjxl and avifenc "
                                 "keep them).")
force_option = click.option("-f", "--force", is_flag=True,
                            help="Replace existing output files (regular files only; never an input).")
device_option = click.option("--device", type=click.Choice(DEVICES), default="auto",
                             show_default=True, help="Where the network runs; auto picks CUDA when PyTorch sees a GPU.")
max_pixels_option = click.option(
    "--max-pixels", type=click.IntRange(min=0), default=DEFAULT_MAX_PIXELS, show_default=True,
    help="Refuse images of more pixels than this (0: no limit). Beyond it, work takes minutes and gigabytes.")


format_option = click.option(
    "--format", "fmt", type=click.Choice(sorted(FORMAT_SUFFIXES), case_sensitive=False),
    callback=lambda ctx, param, value: value and value.upper(),
    help="Output format when no file extension gives it (standard output, directories). Default: PNG.")
save_quality_option = click.option(
    "-q", "--quality", type=click.IntRange(1, 100),
    help="JPEG or WebP output quality, 1..100 (Pillow's default: 75 for JPEG, 80 for WebP).")



class ManifestHelp(click.Option):
    """An option whose help names the installed weights' values (``{default_weights}``, ``{first}``, ``{last}``,
    ``{default}``: the default quality weights' range and default): read from the manifest only when help is
    shown, so no command starts by reading weights."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        from facecodec import zoo

        entry = zoo.manifest_entry(zoo.default_weights_id("quality"))
        first, last = entry["settings"]
        template = self.help
        self.help = template.format(default_weights=zoo.default_weights_id(), first=first, last=last,
                                    default=entry["default_setting"])
        try:
            return super().get_help_record(ctx)
        finally:
            self.help = template


# The library checks these against the weights (facecodec.codec.encode_settings), so messages are worded once.
quality_option = click.option(
    "-q", "--quality", type=int, cls=ManifestHelp,
    help="Quality, 1 = smallest files, up to {last} with the default weights (other weights have their own range: "
         "fcz info shows a file's). Default: the weights' default ({default}).")
bits_option = click.option(
    "--bits", type=int,
    help="The seed's fixed-bit-depth path instead: per-image quantizer ranges with this many bits per feature, "
         "1..8 (selects the Theis model unless --model is given).")
model_option = click.option("--model", "weights_id", cls=ManifestHelp,
                            help="Weights to encode with. Default: {default_weights}.")
