"""The ``fcz`` command line: parse, call the library, report. No codec logic lives here."""
from __future__ import annotations

import io
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

import click

import facecodec
from facecodec import zoo
from facecodec.bitstream import FczError
from facecodec.codec import select_weights
from facecodec.files import check_output, write_atomic
from facecodec.metrics import bits_per_pixel, psnr
from facecodec.quantizer import MAX_BITS, MIN_BITS

DEVICES = click.Choice(["auto", "cpu", "cuda"])
_DEFAULT_QUALITY = zoo.manifest_entry(zoo.default_weights_id()).get("default_quality")


@click.group()
@click.version_option(facecodec.__version__, prog_name="fcz")
def main() -> None:
    """facecodec: a learned image codec for photos of faces."""


def _output_path(source: Path, out: Path | None, several: bool, suffix: str) -> Path:
    if out is None:
        return source.with_suffix(suffix)
    if several or out.is_dir():
        return out / (source.stem + suffix)
    return out


def _run_batch(inputs: tuple[Path, ...], out: Path | None, force: bool, suffix: str,
               convert: Callable[[Path], tuple[bytes, str]]) -> None:
    """Convert every input, write each result atomically, report failures and finish the rest."""
    several = len(inputs) > 1
    if several and out is not None and not out.is_dir():
        raise click.UsageError(f"with several inputs, -o must be an existing directory: {out}")
    failures = []
    with click.progressbar(inputs, label="fcz", file=sys.stderr, show_pos=True,
                           hidden=not several, item_show_func=lambda p: p and p.name) as bar:
        for source in bar:
            target = _output_path(source, out, several, suffix)
            try:
                check_output(target, list(inputs), force)
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", facecodec.FczWarning)
                    data, summary = convert(source)
                write_atomic(target, data)
            except (FczError, OSError) as exc:
                failures.append(source)
                click.echo(f"\nerror: {source}: {_message(exc)}" if several else f"error: {source}: {_message(exc)}",
                           err=True)
                continue
            for warning in caught:
                click.echo(f"warning: {source}: {warning.message}", err=True)
            if not several:
                click.echo(f"{source} -> {target}: {summary}")
    if several:
        click.echo(f"{len(inputs) - len(failures)} of {len(inputs)} files done"
                   + (f"; failed: {', '.join(map(str, failures))}" if failures else ""), err=bool(failures))
    if failures:
        sys.exit(1)


def _message(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror + (f": {exc.filename}" if exc.filename else "")
    return str(exc)


def _rate_summary(data: bytes, header: facecodec.bitstream.FczHeader) -> str:
    bpp = bits_per_pixel(len(data), header.width, header.height)
    return f"{len(data):,} bytes, {bpp:.3f} bpp, ratio {24 / bpp:.1f}:1"


inputs_argument = click.argument("inputs", nargs=-1, required=True,
                                 type=click.Path(exists=True, dir_okay=False, path_type=Path))
out_option = click.option("-o", "--output", "out", type=click.Path(path_type=Path),
                          help="Output file, or directory for several inputs. Default: beside each input.")
force_option = click.option("--force", is_flag=True, help="Overwrite existing output files.")
device_option = click.option("--device", type=DEVICES, default="auto", show_default=True,
                             help="Where the network runs; auto picks CUDA when PyTorch sees a GPU.")


@main.command()
@inputs_argument
@out_option
@click.option("-q", "--quality", type=click.IntRange(min=1),
              help=f"Quality level, 1 = smallest files. Default: {_DEFAULT_QUALITY}.")
@click.option("--bits", type=click.IntRange(MIN_BITS, MAX_BITS),
              help="The seed's fixed-bit-depth path instead: per-image quantizer ranges with this many bits "
                   "per feature (selects the Theis model unless --model is given).")
@click.option("--model", "weights_id", type=click.Choice(zoo.installed_ids()),
              help=f"Weights to encode with. Default: {zoo.default_weights_id()}.")
@force_option
@device_option
def encode(inputs: tuple[Path, ...], out: Path | None, quality: int | None, bits: int | None,
           weights_id: str | None, force: bool, device: str) -> None:
    """Compress images (any format Pillow reads) to .fcz files."""
    try:  # check the options against the weights once, before any file
        select_weights(quality, bits, weights_id, device)
    except FczError as exc:
        raise click.UsageError(str(exc)) from None

    def convert(source: Path) -> tuple[bytes, str]:
        data = facecodec.encode(source, quality=quality, bits=bits, weights_id=weights_id, device=device)
        return data, _rate_summary(data, facecodec.read_header(data))

    _run_batch(inputs, out, force, ".fcz", convert)


@main.command()
@inputs_argument
@out_option
@force_option
@device_option
def decode(inputs: tuple[Path, ...], out: Path | None, force: bool, device: str) -> None:
    """Decompress .fcz files to PNG."""
    def convert(source: Path) -> tuple[bytes, str]:
        image = facecodec.decode(source.read_bytes(), device=device)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue(), f"{image.width}x{image.height} {image.mode}"

    _run_batch(inputs, out, force, ".png", convert)


@main.command()
@inputs_argument
def info(inputs: tuple[Path, ...]) -> None:
    """Show what a .fcz file holds, without decoding its pixels."""
    failed = False
    for source in inputs:
        try:
            data = source.read_bytes()
            header = facecodec.read_header(data)
        except (FczError, OSError) as exc:
            click.echo(f"error: {source}: {_message(exc)}", err=True)
            failed = True
            continue
        c, h, w = header.latent_shape
        setting = f"quality {header.quality}" if header.quality else f"{header.bits} bits"
        click.echo(f"{source}: {header.width}x{header.height} {header.mode}, weights {header.weights_id}, "
                   f"{setting}, latent {c}x{h}x{w}, {_rate_summary(data, header)}")
    if failed:
        sys.exit(1)


@main.command()
@click.option("-o", "--output", "out", type=click.Path(file_okay=False, path_type=Path),
              help="Also save astronaut.png, astronaut.fcz and astronaut-decoded.png in this directory.")
@device_option
def demo(out: Path | None, device: str) -> None:
    """Encode and decode scikit-image's astronaut portrait; print size, ratio and PSNR."""
    from skimage.data import astronaut

    original = astronaut()
    try:
        started = time.perf_counter()
        data = facecodec.encode(original, device=device)
        encoded = time.perf_counter()
        decoded = facecodec.decode(data, device=device)
        finished = time.perf_counter()
    except FczError as exc:
        raise click.ClickException(str(exc)) from None
    header = facecodec.read_header(data)
    click.echo(f"astronaut {header.width}x{header.height}: {len(original.tobytes()):,} bytes raw RGB -> "
               f"{_rate_summary(data, header)}")
    click.echo(f"PSNR {psnr(original, decoded):.2f} dB; encode {encoded - started:.2f} s, "
               f"decode {finished - encoded:.2f} s")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        from PIL import Image
        Image.fromarray(original).save(out / "astronaut.png")
        (out / "astronaut.fcz").write_bytes(data)
        decoded.save(out / "astronaut-decoded.png")
        click.echo(f"saved astronaut.png, astronaut.fcz, astronaut-decoded.png in {out}")


if __name__ == "__main__":
    main()
