"""The ``fcz`` command line: parse, call the library, report. No codec logic lives here.

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

import io
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import click
from PIL import Image

import facecodec
from facecodec import batch, damage, zoo
from facecodec.bitstream import FczError, FczHeader
from facecodec.files import check_output, write_atomic
from facecodec.header import fcz_bytes, inspect
from facecodec.image_io import DEFAULT_MAX_PIXELS
from facecodec.metrics import bits_per_pixel, psnr

STDIO = "-"
# decode's output formats: Pillow writes them all; the extension picks one unless --format does.
OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF",
                  ".tiff": "TIFF", ".bmp": "BMP"}
FORMAT_SUFFIXES = batch.FORMAT_SUFFIXES
LOSSY_OUTPUTS = ("JPEG", "WEBP")  # the formats decode's --quality applies to
SCALES = {"1": 0, "1/2": 1, "1/4": 2, "1/8": 3, "1/16": 4}  # decode's --scale -> reduce (halvings)


class FczGroup(click.Group):
    """Click's group with facecodec's error style: one ``error:`` line, exit 2 for usage errors, else 1."""

    def main(self, args: Any = None, prog_name: str | None = None, **extra: Any) -> Any:
        try:
            return super().main(args, prog_name, standalone_mode=False, **extra)
        except click.UsageError as exc:  # Click's own would print four lines of usage and hints
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(2)
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("error: interrupted", err=True)
            sys.exit(130)


@click.group(cls=FczGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(facecodec.__version__, "-V", "--version", prog_name="fcz")
def main() -> None:
    """facecodec: a learned image codec for photos of faces."""


def _several_or_stdio(inputs: tuple[str, ...], out: str | None) -> tuple[bool, bool]:
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


def _output_dir(out: str | None, several: bool) -> Path | None:
    """The directory outputs go into (created if missing), or None when -o names a file or is absent."""
    if out is None or out == STDIO:
        return None
    if several or out.endswith(("/", "\\")) or Path(out).is_dir():
        directory = Path(out)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise click.ClickException(f"cannot create output directory {out}: {exc.strerror}") from None
        return directory
    return None


def _target(source: str, out: str | None, directory: Path | None, suffix: str) -> Path:
    name = Path(source).stem + suffix
    if directory is not None:
        return directory / name
    return Path(out) if out is not None else Path(source).with_name(name)


def _read_input(source: str) -> bytes | str:
    """Standard input's bytes for '-', else the path itself (the library opens and checks it)."""
    return sys.stdin.buffer.read() if source == STDIO else source


def _run_batch(inputs: tuple[str, ...], out: str | None, force: bool, suffix: str,
               convert: Callable[[bytes | str, Path | None], tuple[bytes, str]]) -> None:
    """Convert every input, write each result, report failures and finish the rest.

    ``convert(input, target)`` gets the input (bytes from standard input, or a path) and the
    file it will be written to (None for standard output) and returns (bytes, summary).
    """
    several, to_stdout = _several_or_stdio(inputs, out)
    directory = _output_dir(out, several)
    failures = []
    show_bar = several and sys.stderr.isatty()
    with click.progressbar(inputs, label="fcz", file=sys.stderr, show_pos=True, hidden=not show_bar,
                           item_show_func=lambda p: p and Path(p).name) as bar:
        for source in bar:
            shown = "<stdin>" if source == STDIO else source
            target = None if to_stdout else _target(source, out, directory, suffix)
            try:
                if target is not None:
                    check_output(target, [Path(p) for p in inputs if p != STDIO], force)
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", facecodec.FczWarning)
                    data, summary = convert(_read_input(source), target)
                if target is None:
                    sys.stdout.buffer.write(data)
                else:
                    write_atomic(target, data)
            except (FczError, OSError) as exc:
                failures.append(shown)
                click.echo(f"error: {_message(shown, exc)}", err=True)
                continue
            for warning in caught:
                click.echo(f"warning: {shown}: {warning.message}", err=True)
            if target is not None:
                click.echo(f"{shown} -> {target}: {summary}")
    if several:
        click.echo(f"{len(inputs) - len(failures)} of {len(inputs)} files done"
                   + (f"; failed: {', '.join(failures)}" if failures else ""), err=bool(failures))
    if failures:
        sys.exit(1)


def _message(source: str, exc: Exception) -> str:
    """``source: reason``, without naming the source twice when the library already did."""
    if isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror + (f": {exc.filename}" if exc.filename else "")
    else:
        reason = str(exc)
    return reason if reason.startswith(f"{source}: ") else f"{source}: {reason}"


def _rate_summary(size: int, header: FczHeader) -> str:
    bpp = bits_per_pixel(size, header.width, header.height)
    return f"{size:,} bytes, {bpp:.3f} bpp, ratio {24 / bpp:.1f}:1"


def _check_device(device: str) -> None:
    from facecodec.codec import resolve_device  # torch, only for the commands that run a network

    try:
        resolve_device(device)
    except FczError as exc:
        raise click.UsageError(str(exc)) from None


inputs_argument = click.argument("inputs", nargs=-1, required=True)
force_option = click.option("-f", "--force", is_flag=True,
                            help="Replace existing output files (regular files only; never an input).")
device_option = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
                             show_default=True, help="Where the network runs; auto picks CUDA when PyTorch sees a GPU.")
max_pixels_option = click.option(
    "--max-pixels", type=click.IntRange(min=0), default=DEFAULT_MAX_PIXELS, show_default=True,
    help="Refuse images of more pixels than this (0: no limit). Beyond it, work takes minutes and gigabytes.")


def folder_options(command: Callable) -> Callable:
    """The options of a folder run (``fcz encode DIR -o OUT``), shared by encode and decode."""
    options = [
        click.option("-r", "--recursive", is_flag=True,
                     help="Folder input: walk its subfolders too, mirrored in the output folder."),
        click.option("-j", "--jobs", type=click.IntRange(min=1),
                     help="Folder input: worker processes. Default: the machine's cores (1 on CUDA); torch threads "
                          "are shared out so jobs x threads <= cores."),
        click.option("--batch-size", type=click.IntRange(min=1),
                     help="Folder input: same-size images per network pass (default 1). Files stay byte-identical "
                          "on the CPU; on CUDA that is not verified."),
        click.option("--scheduler", metavar="ADDRESS",
                     help="Folder input: run on this Dask cluster (tcp://HOST:8786) instead of local processes; its "
                          "workers must see the folders at the same paths. Needs facecodec[cluster]."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _folder_input(inputs: tuple[str, ...], out: str | None, recursive: bool, jobs: int | None,
                  batch_size: int | None, scheduler: str | None) -> Path | None:
    """The input folder of a folder run, or None; usage errors for folder options without one."""
    if len(inputs) == 1 and inputs[0] != STDIO and Path(inputs[0]).is_dir():
        if out == STDIO:
            raise click.UsageError("a folder's outputs go into a directory, not standard output")
        if out is not None and Path(out).exists() and not Path(out).is_dir():
            raise click.UsageError(f"-o {out} is a file: a folder's outputs go into a directory")
        if scheduler is not None and jobs is not None:
            raise click.UsageError("--jobs starts local processes; with --scheduler the cluster's workers do the work")
        if scheduler is not None:
            from facecodec.cluster import _distributed

            try:
                _distributed()
            except FczError as exc:
                raise click.UsageError(f"--scheduler: {exc}") from None
        return Path(inputs[0])
    given = [name for name, value in (("--recursive", recursive), ("--jobs", jobs), ("--batch-size", batch_size),
                                      ("--scheduler", scheduler)) if value]
    if given:
        raise click.UsageError(f"{given[0]} applies to a folder input: fcz encode DIR -o OUT/")
    return None


def _run_folder(conversion: batch.Conversion, folder: Path, out: str | None, recursive: bool, jobs: int | None,
                batch_size: int | None, scheduler: str | None) -> None:
    """A folder run: one progress bar (on a terminal), each failure and warning listed, a summary; exit 1 if any
    file failed, 130 when interrupted (the files finished are kept: the same command again does the rest)."""
    from facecodec.codec import resolve_device

    device = resolve_device(conversion.device)
    if device == "cuda":
        jobs = jobs or 1  # one process feeds the GPU
        if (batch_size or 1) > 1:
            click.echo("warning: on CUDA a batch may give files other bytes than encoding each alone (cuDNN picks "
                       "kernels by batch size; not verified): --batch-size 1 for identical files", err=True)

    def shown(result: batch.Result) -> str:
        return str(folder / result.job.name)

    terminal = sys.stderr.isatty()
    bar = None

    def started(to_do: int, already: int) -> None:
        nonlocal bar
        bar = click.progressbar(length=to_do, label=f"fcz {conversion.direction}", file=sys.stderr, show_pos=True,
                                hidden=not terminal, item_show_func=lambda name: name)
        bar.__enter__()

    def progress(result: batch.Result) -> None:
        clear = "\r\x1b[K" if terminal else ""  # the bar's line, before a message takes it
        if result.status == batch.ERROR:
            click.echo(f"{clear}error: {shown(result)}: {result.error}", err=True)
        for message in result.warnings:
            click.echo(f"{clear}warning: {shown(result)}: {message}", err=True)
        bar.update(1, result.job.name)

    try:
        report = batch.run_folder(conversion, folder, out, recursive=recursive, jobs=jobs,
                                  batch_size=batch_size or batch.DEFAULT_BATCH_SIZE[device], client=scheduler,
                                  progress=progress, started=started)
    except FczError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        if bar is not None:
            bar.__exit__(None, None, None)
            bar = None
        click.echo("error: interrupted; the files finished are kept: run the same command again to do the rest",
                   err=True)
        sys.exit(130)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    done = report.converted + report.already
    failed = [str(folder / name) for name, _ in report.failed]
    click.echo(f"{done} of {report.total} files done" + (f" ({report.already} already there)" if report.already else "")
               + (f"; failed: {', '.join(failed)}" if failed else "")
               + (f"; {report.ignored} other file{'s' * (report.ignored != 1)} ignored" if report.ignored else "")
               + f"; manifest {report.manifest}",
               err=bool(failed))
    if failed:
        sys.exit(1)


@main.command()
@inputs_argument
@click.option("-o", "--output", "out",
              help="Output .fcz file, '-' for standard output, or a directory (created; a trailing / marks one). "
                   "Default: beside each input; standard output for '-'.")
@click.option("-q", "--quality", type=click.IntRange(min=1),
              help="Quality, 1 = smallest files, up to "
                   f"{zoo.load_spec(zoo.default_weights_id('quality')).latent.settings[-1]} with the default weights "
                   "(other weights have their own range: fcz info shows a file's). Default: the weights' default "
                   f"({zoo.load_spec(zoo.default_weights_id('quality')).latent.default}).")
@click.option("--bits", type=click.IntRange(min=1),
              help="The seed's fixed-bit-depth path instead: per-image quantizer ranges with this many bits "
                   "per feature, 1..8 (selects the Theis model unless --model is given).")
@click.option("--model", "weights_id", type=click.Choice(zoo.installed_ids()),
              help=f"Weights to encode with. Default: {zoo.default_weights_id()}.")
@click.option("--size", type=click.IntRange(min=1), metavar="BYTES",
              help="Instead of a quality: the best quality whose file fits in BYTES (header included).")
@click.option("--bpp", type=click.FloatRange(min=0, min_open=True),
              help="Instead of a quality: the best quality whose file takes at most this many bits per pixel.")
@click.option("--effort", type=click.IntRange(min=0),
              help="How hard the encoder searches for a smaller file at the same quality: 0 = plain rounding. "
                   "Default: the weights' default (the wavelet family: 1, rate-distortion optimised quantization).")
@force_option
@device_option
@max_pixels_option
@folder_options
def encode(inputs: tuple[str, ...], out: str | None, quality: int | None, bits: int | None,
           weights_id: str | None, size: int | None, bpp: float | None, effort: int | None, force: bool, device: str,
           max_pixels: int, recursive: bool, jobs: int | None, batch_size: int | None, scheduler: str | None) -> None:
    """Compress images (any format Pillow reads; '-' for standard input) to .fcz files.

    Given one folder, encode every image in it (with -r, its tree) into the -o folder (default: beside them),
    skipping those already done (unless --force), and record each file in OUT/fcz-manifest.csv.
    """
    try:  # check the options against the weights once, before any file
        zoo.choose(quality, bits, weights_id)[0].latent.choose_effort(effort)
        target = zoo.size_target(size, bpp, given=quality is not None or bits is not None)
    except FczError as exc:
        raise click.UsageError(str(exc)) from None
    _check_device(device)
    folder = _folder_input(inputs, out, recursive, jobs, batch_size, scheduler)
    if folder is not None:
        conversion = batch.Conversion("encode", ".fcz", quality=quality, bits=bits, weights_id=weights_id,
                                      effort=effort, target=target, device=device, max_pixels=max_pixels or None,
                                      force=force)
        return _run_folder(conversion, folder, out, recursive, jobs, batch_size, scheduler)
    _check_fcz_name(out)

    def convert(source: bytes | str, target: Path | None) -> tuple[bytes, str]:
        data = facecodec.encode(source, quality=quality, bits=bits, weights_id=weights_id, device=device,
                                max_pixels=max_pixels or None, effort=effort, size=size, bpp=bpp)
        return data, _rate_summary(len(data), facecodec.read_header(data))

    _run_batch(inputs, out, force, ".fcz", convert)


def _check_fcz_name(out: str | None) -> None:
    """Refuse writing .fcz bytes under another image format's name (face.png would not open as a PNG)."""
    if out is None or out == STDIO or out.endswith(("/", "\\")) or Path(out).is_dir():
        return
    suffix = Path(out).suffix.lower()
    other = Image.registered_extensions().get(suffix)
    if other is not None and other != "FCZ":
        raise click.UsageError(f"-o {out}: that name says {other}, but encode writes .fcz files; name it *.fcz "
                               f"(to write {other}, decode a .fcz file)")
    if suffix != ".fcz":
        click.echo(f"warning: {out} does not end in .fcz", err=True)


format_option = click.option(
    "--format", "fmt", type=click.Choice(sorted(FORMAT_SUFFIXES), case_sensitive=False),
    callback=lambda ctx, param, value: value and value.upper(),
    help="Output format when no file extension gives it (standard output, directories). Default: PNG.")
save_quality_option = click.option(
    "-q", "--quality", type=click.IntRange(1, 100),
    help="JPEG or WebP output quality, 1..100 (Pillow's default: 75 for JPEG, 80 for WebP).")


def _image_format(inputs: tuple[str, ...], out: str | None, fmt: str | None, quality: int | None,
                  folder: Path | None) -> str:
    """The image format decode and restore write (folder runs: --format or PNG); usage errors for bad mixes."""
    to_stdout = out == STDIO or (out is None and inputs == (STDIO,))
    fmt = (fmt or "PNG") if folder is not None else _output_format(out, fmt, to_stdout)
    if quality is not None and fmt not in LOSSY_OUTPUTS:
        raise click.UsageError(f"--quality applies to JPEG and WebP output, not {fmt}")
    return fmt


def _output_format(out: str | None, fmt: str | None, to_stdout: bool) -> str:
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


@main.command()
@inputs_argument
@click.option("-o", "--output", "out",
              help="Output image (.png, .jpg, .webp, .tif, .bmp), '-' for standard output, or a directory "
                   "(created; a trailing / marks one). Default: a PNG beside each input; standard output for '-'.")
@format_option
@save_quality_option
@click.option("--scale", "reduce", type=click.Choice(list(SCALES)), default="1",
              callback=lambda ctx, param, value: SCALES[value],
              help="Decode a smaller image from the coarse levels alone, faster than a full decode "
                   "(each side rounded up; wavelet weights only). Default: 1, full size.")
@force_option
@device_option
@max_pixels_option
@folder_options
def decode(inputs: tuple[str, ...], out: str | None, fmt: str | None, quality: int | None, reduce: int,
           force: bool, device: str, max_pixels: int, recursive: bool, jobs: int | None, batch_size: int | None,
           scheduler: str | None) -> None:
    """Decompress .fcz files ('-' for standard input) to PNG, JPEG, WebP, TIFF or BMP images.

    Given one folder, decode every .fcz file in it (with -r, its tree) into the -o folder (default: beside them),
    skipping those already done (unless --force), and record each file in OUT/fcz-manifest.csv.
    """
    _check_device(device)
    folder = _folder_input(inputs, out, recursive, jobs, batch_size, scheduler)
    fmt = _image_format(inputs, out, fmt, quality, folder)
    if folder is not None:
        conversion = batch.Conversion("decode", FORMAT_SUFFIXES[fmt], device=device, max_pixels=max_pixels or None,
                                      fmt=fmt, save_quality=quality, force=force, reduce=reduce)
        return _run_folder(conversion, folder, out, recursive, jobs, batch_size, scheduler)

    def convert(source: bytes | str, target: Path | None) -> tuple[bytes, str]:
        image = facecodec.decode(source, device=device, max_pixels=max_pixels or None, reduce=reduce)
        return batch.image_file(image, fmt, quality), f"{image.width}x{image.height} {image.mode} {fmt}"

    _run_batch(inputs, out, force, FORMAT_SUFFIXES[fmt], convert)


@main.command()
@inputs_argument
@click.option("-o", "--output", "out",
              help="Output image (.png, .jpg, .webp, .tif, .bmp), '-' for standard output, or a directory "
                   "(created; a trailing / marks one). Default: NAME-TASK.png beside each input; standard output "
                   "for '-'.")
@click.option("--task", type=click.Choice(damage.TASKS), required=True,
              help="The damage to undo. inpaint fills the pure-black pixels; colorize gives RGB.")
@click.option("--scale", type=click.Choice([str(s) for s in damage.SCALES]),
              callback=lambda ctx, param, value: value and int(value),
              help="superres: the output is this many times the input's width and height.")
@format_option
@save_quality_option
@force_option
@device_option
@max_pixels_option
@folder_options
def restore(inputs: tuple[str, ...], out: str | None, task: str, scale: int | None, fmt: str | None,
            quality: int | None, force: bool, device: str, max_pixels: int, recursive: bool, jobs: int | None,
            batch_size: int | None, scheduler: str | None) -> None:
    """Restore damaged face photos (any format Pillow reads; '-' for standard input) with the restoration network.

    Given one folder, restore every image in it (with -r, its tree) into the -o folder (default: beside them),
    skipping those already done (unless --force), and record each file in OUT/fcz-manifest.csv.
    """
    try:
        damage.condition_of(task, scale)
    except FczError as exc:
        raise click.UsageError(str(exc)) from None
    _check_device(device)
    folder = _folder_input(inputs, out, recursive, jobs, batch_size, scheduler)
    fmt = _image_format(inputs, out, fmt, quality, folder)
    suffix = batch.restored_suffix(task, scale, fmt)
    if folder is not None:
        conversion = batch.Conversion("restore", suffix, device=device, max_pixels=max_pixels or None, fmt=fmt,
                                      save_quality=quality, force=force, task=task, scale=scale)
        return _run_folder(conversion, folder, out, recursive, jobs, batch_size, scheduler)

    def convert(source: bytes | str, target: Path | None) -> tuple[bytes, str]:
        image = facecodec.restore(source, task=task, scale=scale, device=device, max_pixels=max_pixels or None)
        return batch.image_file(image, fmt, quality), f"{image.width}x{image.height} {image.mode} {fmt}"

    _run_batch(inputs, out, force, suffix, convert)


@main.command()
@inputs_argument
@click.option("--json", "as_json", is_flag=True, help="One JSON array with an object per file, for scripts.")
@max_pixels_option
def info(inputs: tuple[str, ...], as_json: bool, max_pixels: int) -> None:
    """Show what .fcz files hold, after every check decode makes short of running the network."""
    records = []
    for source in inputs:
        shown = "<stdin>" if source == STDIO else source
        try:
            data = fcz_bytes(_read_input(source))
            header, spec = inspect(data, max_pixels or None)
        except (FczError, OSError) as exc:
            records.append({"file": shown, "ok": False, "error": _message(shown, exc)})
            if not as_json:
                click.echo(f"error: {records[-1]['error']}", err=True)
            continue
        setting = spec.latent.setting_of(header)
        bpp = bits_per_pixel(len(data), header.width, header.height)
        records.append({
            "file": shown, "ok": True, "width": header.width, "height": header.height, "mode": header.mode,
            "weights_id": header.weights_id, spec.latent.option: setting, "format_version": data[4],
            "latent_shape": list(header.latent_shape), "bytes": len(data), "bpp": round(bpp, 4),
            "compression_ratio": round(24 / bpp, 2)})
        if not as_json:
            c, h, w = header.latent_shape
            click.echo(f"{shown}: {header.width}x{header.height} {header.mode}, weights {header.weights_id}, "
                       f"{spec.latent.describe(setting)}, latent {c}x{h}x{w}, {_rate_summary(len(data), header)}")
    if as_json:
        click.echo(json.dumps(records, indent=2))
    if not all(r["ok"] for r in records):
        sys.exit(1)


@main.command()
@click.option("-o", "--output", "out", type=click.Path(file_okay=False, path_type=Path),
              help="Also save astronaut.png, astronaut.fcz and astronaut-decoded.png in this directory.")
@force_option
@device_option
def demo(out: Path | None, force: bool, device: str) -> None:
    """Encode and decode scikit-image's astronaut portrait; print size, ratio and PSNR."""
    from skimage.data import astronaut

    _check_device(device)
    original = astronaut()
    started = time.perf_counter()
    data = facecodec.encode(original, device=device)
    encoded = time.perf_counter()
    decoded = facecodec.decode(data, device=device)
    finished = time.perf_counter()
    header = facecodec.read_header(data)
    click.echo(f"astronaut {header.width}x{header.height}: {len(original.tobytes()):,} bytes raw RGB -> "
               f"{_rate_summary(len(data), header)}")
    click.echo(f"PSNR {psnr(original, decoded):.2f} dB; encode {encoded - started:.2f} s, "
               f"decode {finished - encoded:.2f} s")
    if out is not None:
        files = {"astronaut.png": _png(Image.fromarray(original)), "astronaut.fcz": data,
                 "astronaut-decoded.png": _png(decoded)}
        try:
            out.mkdir(parents=True, exist_ok=True)
            for name in files:
                check_output(out / name, [], force)
            for name, content in files.items():
                write_atomic(out / name, content)
        except (FczError, OSError) as exc:
            raise click.ClickException(_message(str(out), exc)) from None
        click.echo(f"saved {', '.join(files)} in {out}")


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@main.command()
@click.argument("image")
@click.option("-o", "--output", "out", type=click.Path(file_okay=False, path_type=Path),
              help="Also write compare.png (the side-by-side sheet) and each codec's file (IMAGE's name with "
                   ".fcz, .jpg, .j2k, .webp, .avif) in this directory, created if missing.")
@click.option("-q", "--quality", type=click.IntRange(min=1),
              help="fcz's quality level, 1 = smallest files. Default: the weights' default.")
@click.option("--bits", type=click.IntRange(min=1),
              help="fcz's fixed-bit-depth path instead (selects the Theis model unless --model is given).")
@click.option("--model", "weights_id", type=click.Choice(zoo.installed_ids()),
              help=f"Weights fcz encodes with. Default: {zoo.default_weights_id()}.")
@force_option
@device_option
@max_pixels_option
def compare(image: str, out: Path | None, quality: int | None, bits: int | None, weights_id: str | None,
            force: bool, device: str, max_pixels: int) -> None:
    """Encode IMAGE with fcz, JPEG, JPEG 2000, WebP and AVIF at matched file size; print size, bpp, PSNR, SSIM."""
    from facecodec import classical
    from facecodec.compare import COMPARED, compare as compare_codecs, side_by_side, table

    try:
        zoo.choose(quality, bits, weights_id)
    except FczError as exc:
        raise click.UsageError(str(exc)) from None
    _check_device(device)
    stem = Path(image).stem
    if out is not None:  # refuse existing outputs before the work, write them after it
        names = ["compare.png", stem + ".fcz"] + [stem + classical.CODECS[c].suffix for c in COMPARED
                                                  if classical.CODECS[c].available()]
        try:
            out.mkdir(parents=True, exist_ok=True)
            for name in names:
                check_output(out / name, [Path(image)], force)
        except (FczError, OSError) as exc:  # check_output's messages name the file already
            raise click.ClickException(str(exc) if isinstance(exc, FczError) else _message(str(out), exc)) from None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", facecodec.FczWarning)
            results = compare_codecs(image, quality=quality, bits=bits, weights_id=weights_id, device=device,
                                     max_pixels=max_pixels or None)
        for warning in caught:
            click.echo(f"warning: {image}: {warning.message}", err=True)
        fcz = results[0]
        click.echo(f"{image}: {fcz.decoded.width}x{fcz.decoded.height}, fcz weights "
                   f"{facecodec.read_header(fcz.data).weights_id}; the other codecs at the largest file "
                   f"not above fcz's")
        click.echo(table(results))
        if out is not None:
            files = {out / "compare.png": _png(side_by_side(image, results))}
            files.update({out / (stem + r.suffix): r.data for r in results if not r.skipped})
            for path, data in files.items():
                write_atomic(path, data)
            click.echo(f"wrote {', '.join(path.name for path in files)} in {out}")
    except (FczError, OSError) as exc:
        raise click.ClickException(_message(image, exc)) from None


if __name__ == "__main__":
    main()
