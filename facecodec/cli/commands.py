"""The ``fcz`` commands: encode, decode, restore, info, models, demo, compare."""
from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import click
from PIL import Image

import facecodec
from facecodec import damage, runner, zoo
from facecodec.bitstream import FczError
from facecodec.cli.app import (STDIO, bits_option, check_device, device_option, force_option, format_option,
                               inputs_argument, main, max_pixels_option, model_option, quality_option, rate_summary,
                               save_quality_option, strip_option)
from facecodec.cli.reporting import reporting_options
from facecodec.cli.folders import folder_input, folder_options, run_folder_command
from facecodec.cli.outputs import check_fcz_name, convert_each, image_format, read_input
from facecodec.families import family_class
from facecodec.files import check_output, write_atomic
from facecodec.image_io import FORMAT_SUFFIXES, image_file
from facecodec.messages import about
from facecodec.metadata import LABELS
from facecodec.metrics import bits_per_pixel, psnr
from facecodec.reading import fcz_bytes, inspect

SCALES = {"1": 0, "1/2": 1, "1/4": 2, "1/8": 3, "1/16": 4}  # decode's --scale -> reduce (halvings)


@main.command()
@inputs_argument
@click.option("-o", "--output", "out",
              help="Output .fcz file, '-' for standard output, or a directory (created; a trailing / marks one). "
                   "Default: beside each input; standard output for '-'.")
@quality_option
@bits_option
@model_option
@click.option("--size", type=int, metavar="BYTES",
              help="Instead of a quality: the best quality whose file fits in BYTES (header included).")
@click.option("--bpp", type=float,
              help="Instead of a quality: the best quality whose file takes at most this many bits per pixel.")
@click.option("--effort", type=int,
              help="How hard the encoder searches for a smaller file at the same quality: 0 = plain rounding. "
                   "Default: the weights' default (the wavelet family: 1, rate-distortion optimised quantization).")
@click.option("--lossless", is_flag=True,
              help="Keep every pixel: the decoded image is exactly the input (no quality). A JPEG keeps its own "
                   "coefficients, in fewer bytes than the JPEG; other images are coded from their pixels.")
@click.option("--tile", type=int, metavar="PIXELS",
              help="Code images larger than this many pixels a side as a grid of independent tiles of this side "
                   "(wavelet weights; a multiple of 16, 64..16384). Default: 1024.")
@click.option("--no-jpeg-source", "jpeg_source", flag_value=False, default=True,
              help="For a JPEG input, do not store its quantization tables (by default the file keeps them, in a few "
                   "bytes, where moving the decode back onto the JPEG's own lattice brings it closer to the input, "
                   "and keeps the JPEG's own coefficients, exactly, where that file is no larger than the lossy "
                   "one); with --lossless, code its pixels instead of keeping its coefficients.")
@strip_option
@force_option
@device_option
@max_pixels_option
@reporting_options
@folder_options
def encode(inputs: tuple[str, ...], out: str | None, quality: int | None, bits: int | None,
           weights_id: str | None, size: int | None, bpp: float | None, effort: int | None, lossless: bool,
           tile: int | None, jpeg_source: bool, strip: bool, force: bool, device: str, max_pixels: int, recursive: bool,
           jobs: int | None, batch_size: int | None, scheduler: str | None) -> None:
    """Compress images (any format Pillow reads; '-' for standard input) to .fcz files.

    Given one folder, encode every image in it (with -r, its tree) into the -o folder (default: beside them),
    skipping those already done (unless --force), and record each file in OUT/fcz-manifest.csv.
    """
    from facecodec.codec import encode_settings, encode_with

    try:  # the library checks the options against the weights, once, before any file
        settings = encode_settings(quality, bits, weights_id, effort, size, bpp, tile, strip, lossless, jpeg_source)
    except FczError as exc:
        raise click.UsageError(str(exc)) from None
    check_device(device)
    folder = folder_input(inputs, out, recursive, jobs, batch_size, scheduler)
    if folder is not None:
        conversion = runner.Conversion("encode", ".fcz", settings, device=device, max_pixels=max_pixels or None,
                                       force=force)
        return run_folder_command(conversion, folder, out, recursive, jobs, batch_size, scheduler)
    check_fcz_name(out)

    def convert(source: bytes | str, target: Path | None) -> tuple[bytes, str]:
        data = encode_with(settings, source, device, max_pixels or None)
        # The file says what it holds: the setting --size / --bpp chose, or a JPEG input kept as it was.
        header = facecodec.read_header(data)
        family = zoo.load_spec(header.weights_id).family
        return data, f"{family.describe(family.setting_of(header))}, {rate_summary(len(data), header)}"

    convert_each(inputs, out, force, ".fcz", convert)


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
@strip_option
@force_option
@device_option
@max_pixels_option
@reporting_options
@folder_options
def decode(inputs: tuple[str, ...], out: str | None, fmt: str | None, quality: int | None, reduce: int,
           strip: bool, force: bool, device: str, max_pixels: int, recursive: bool, jobs: int | None,
           batch_size: int | None, scheduler: str | None) -> None:
    """Decompress .fcz files ('-' for standard input) to PNG, JPEG, WebP, TIFF or BMP images.

    Given one folder, decode every .fcz file in it (with -r, its tree) into the -o folder (default: beside them),
    skipping those already done (unless --force), and record each file in OUT/fcz-manifest.csv.
    """
    check_device(device)
    folder = folder_input(inputs, out, recursive, jobs, batch_size, scheduler)
    fmt = image_format(inputs, out, fmt, quality, folder)
    if folder is not None:
        conversion = runner.Conversion("decode", FORMAT_SUFFIXES[fmt], device=device, max_pixels=max_pixels or None,
                                      fmt=fmt, save_quality=quality, strip=strip, force=force, reduce=reduce)
        return run_folder_command(conversion, folder, out, recursive, jobs, batch_size, scheduler)

    def convert(source: bytes | str, target: Path | None) -> tuple[bytes, str]:
        image = facecodec.decode(source, device=device, max_pixels=max_pixels or None, reduce=reduce)
        return image_file(image, fmt, quality, strip), f"{image.width}x{image.height} {image.mode} {fmt}"

    convert_each(inputs, out, force, FORMAT_SUFFIXES[fmt], convert)


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
@reporting_options
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
    check_device(device)
    folder = folder_input(inputs, out, recursive, jobs, batch_size, scheduler)
    fmt = image_format(inputs, out, fmt, quality, folder)
    suffix = runner.restored_suffix(task, scale, fmt)
    if folder is not None:
        conversion = runner.Conversion("restore", suffix, device=device, max_pixels=max_pixels or None, fmt=fmt,
                                      save_quality=quality, force=force, task=task, scale=scale)
        return run_folder_command(conversion, folder, out, recursive, jobs, batch_size, scheduler)

    def convert(source: bytes | str, target: Path | None) -> tuple[bytes, str]:
        image = facecodec.restore(source, task=task, scale=scale, device=device, max_pixels=max_pixels or None)
        return image_file(image, fmt, quality), f"{image.width}x{image.height} {image.mode} {fmt}"

    convert_each(inputs, out, force, suffix, convert)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON array with an object per weights, for scripts.")
def models(as_json: bool) -> None:
    """List the installed weights: what each codes, its settings and default, what each restoration network serves."""
    listing = zoo.manifest()
    records = []
    for entry in listing["weights"]:
        record = {"id": entry["id"], "kind": entry.get("kind", zoo.CODEC), "default": entry["id"] == listing["default"]}
        if record["kind"] == zoo.CODEC:
            family = family_class(entry["family"]).from_entry(entry)
            record.update(family=family.name, option=family.option, settings=[family.settings[0], family.settings[-1]],
                          default_setting=family.default, efforts=[family.efforts[0], family.efforts[-1]],
                          lossless=family.lossless, jpeg_input_only=family.keeps_jpeg_files,
                          rebuilds_jpeg=family.rebuilds_jpeg)
        else:
            record.update(serves=zoo.served(entry))
        records.append(record)
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    for r in records:
        if r["kind"] == zoo.CODEC and r["lossless"]:
            of = ("a JPEG input, as its own coefficients" if r["jpeg_input_only"] else
                  "any input, as a JPEG rebuilt from its pixels and the residual, where smaller" if r["rebuilds_jpeg"]
                  else "any input")
            click.echo(f"{r['id']:<22} {r['family']} family: every pixel back exactly, {of} (fcz encode --lossless)")
        elif r["kind"] == zoo.CODEC:
            first, last = r["settings"]
            efforts = "" if r["efforts"][0] == r["efforts"][1] else f", effort {r['efforts'][0]}..{r['efforts'][1]}"
            click.echo(f"{r['id']:<22} {r['family']} family, {r['option']} {first}..{last} (default "
                       f"{r['default_setting']}{efforts})" + ("  [default weights]" if r["default"] else ""))
        else:
            click.echo(f"{r['id']:<22} fcz restore: {', '.join(r['serves'])}")


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
            data = fcz_bytes(read_input(source))
            header, spec = inspect(data, max_pixels or None)
        except (FczError, OSError) as exc:
            records.append({"file": shown, "ok": False, "error": about(shown, exc)})
            if not as_json:
                click.echo(f"error: {records[-1]['error']}", err=True)
            continue
        setting = spec.family.setting_of(header)
        bpp = bits_per_pixel(len(data), header.width, header.height)
        records.append({
            "file": shown, "ok": True, "width": header.width, "height": header.height, "mode": header.mode,
            "weights_id": header.weights_id, spec.family.option: setting, "format_version": data[4],
            "latent_shape": list(header.latent_shape), "bytes": len(data), "bpp": round(bpp, 4),
            "compression_ratio": round(24 / bpp, 2),
            "metadata": {name: len(value) for name, value in header.metadata.entries().items() if value},
            "jpeg_source": header.lattice.describe() if header.lattice else None})
        if not as_json:
            c, h, w = header.latent_shape
            carried = ", ".join(f"{LABELS[name]} {size:,} bytes" for name, size in records[-1]["metadata"].items())
            click.echo(f"{shown}: {header.width}x{header.height} {header.mode}, weights {header.weights_id}, "
                       f"{spec.family.describe(setting)}, latent {c}x{h}x{w}, {rate_summary(len(data), header)}"
                       + (f"; metadata: {carried}" if carried else "")
                       + (f"; JPEG source: {header.lattice.describe()}" if header.lattice else ""))
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

    check_device(device)
    original = astronaut()
    started = time.perf_counter()
    data = facecodec.encode(original, device=device)
    encoded = time.perf_counter()
    decoded = facecodec.decode(data, device=device)
    finished = time.perf_counter()
    header = facecodec.read_header(data)
    click.echo(f"astronaut {header.width}x{header.height}: {len(original.tobytes()):,} bytes raw RGB -> "
               f"{rate_summary(len(data), header)}")
    click.echo(f"PSNR {psnr(original, decoded):.2f} dB; encode {encoded - started:.2f} s, "
               f"decode {finished - encoded:.2f} s")
    if out is not None:
        files = {"astronaut.png": image_file(Image.fromarray(original), "PNG"), "astronaut.fcz": data,
                 "astronaut-decoded.png": image_file(decoded, "PNG")}
        try:
            out.mkdir(parents=True, exist_ok=True)
            for name in files:
                check_output(out / name, [], force)
            for name, content in files.items():
                write_atomic(out / name, content)
        except (FczError, OSError) as exc:
            raise click.ClickException(about(str(out), exc)) from None
        click.echo(f"saved {', '.join(files)} in {out}")


@main.command()
@click.argument("image")
@click.option("-o", "--output", "out", type=click.Path(file_okay=False, path_type=Path),
              help="Also write compare.png (the side-by-side sheet) and each codec's file (IMAGE's name with "
                   ".fcz, .jpg, .j2k, .webp, .avif) in this directory, created if missing.")
@quality_option
@bits_option
@model_option
@force_option
@device_option
@max_pixels_option
def compare(image: str, out: Path | None, quality: int | None, bits: int | None, weights_id: str | None,
            force: bool, device: str, max_pixels: int) -> None:
    """Encode IMAGE with fcz, JPEG, JPEG 2000, WebP and AVIF at matched file size; print size, bpp, PSNR, SSIM."""
    from facecodec import classical
    from facecodec.compare import COMPARED, compare as compare_codecs, side_by_side, table

    from facecodec.codec import encode_settings

    try:
        encode_settings(quality, bits, weights_id)
    except FczError as exc:
        raise click.UsageError(str(exc)) from None
    check_device(device)
    stem = Path(image).stem
    if out is not None:  # refuse existing outputs before the work, write them after it
        names = ["compare.png", stem + ".fcz"] + [stem + classical.CODECS[c].suffix for c in COMPARED
                                                  if classical.CODECS[c].available()]
        try:
            out.mkdir(parents=True, exist_ok=True)
            for name in names:
                check_output(out / name, [Path(image)], force)
        except (FczError, OSError) as exc:  # check_output's messages name the file already
            raise click.ClickException(str(exc) if isinstance(exc, FczError) else about(str(out), exc)) from None
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
            files = {out / "compare.png": image_file(side_by_side(image, results), "PNG")}
            files.update({out / (stem + r.suffix): r.data for r in results if not r.skipped})
            for path, data in files.items():
                write_atomic(path, data)
            click.echo(f"wrote {', '.join(path.name for path in files)} in {out}")
    except (FczError, OSError) as exc:
        raise click.ClickException(about(image, exc)) from None
