"""Encode and decode speed of fcz and the classical codecs at three image sizes, plus fcz's peak memory.

    python benchmarks/speed.py [--quick] [--quality N | --bits N] [--model ID] [--device cpu|cuda|auto]
                               [--out benchmarks/results]

fcz runs as `fcz encode` would with the same --quality / --bits / --model (default: the
default weights at their default setting). speed.md states fcz's decode time of a 512x512
image against the target of under 0.5 s on a 2-core CPU, and per size fcz's encode time against
AVIF's at speed 4 for a file of the same size (the wavelet issue's encode target: no slower).

For fcz the time is also split into network (g_a / g_s), quantizer (with the encoder's search at
the weights' default effort; the dequantizer when decoding), entropy coding (range coder) and the
rest (tensor conversion, container), by running codec.py's steps one by one.
Times drift on a shared machine, so speed.md also gives fcz's time as a multiple of each codec's.
Peak memory (max RSS) of a 1024x1024 fcz encode and decode is read in a fresh subprocess per case.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import json
import statistics
import subprocess
import tempfile
import time
from typing import Any, Callable

import click
import numpy as np
from PIL import Image
from skimage.data import astronaut

from facecodec import classical, zoo
from facecodec.bitstream import FczHeader, pack, unpack
from facecodec.codec import analyse, synthesise
from facecodec.devices import resolve_device
from facecodec.codec import decode as fcz_decode
from facecodec.codec import encode as fcz_encode
from facecodec.image_io import open_image
from facecodec.arrays import padded_array, to_image
from facecodec.metrics import bits_per_pixel

from benchmarks.common import (DEFAULT_OUT, WARM_UPS, OperatingPoint, check_device, device_option,
                               fcz_setting_options, pillow_point, progress, run_metadata, set_threads,
                               threads_option, timed, write_json)
from benchmarks.operating_points import avif, fcz, fcz_choice, jpeg, jpeg2000, label, setting_words, webp

SIDES = (150, 512, 1024)
REPEATS = {150: 20, 512: 5, 1024: 3}
QUICK_REPEATS = {150: 5, 512: 2, 1024: 1}
MEMORY_SIDE = 1024
TARGET_SIDE, TARGET_DECODE_MS = 512, 500.0  # the goal: decode a 512x512 image in under 0.5 s on a 2-core CPU
ANCHOR_AVIF_SPEED = 4  # the encode goal: no slower than AVIF 4:4:4 at this speed for a file of fcz's size


def test_image(side: int) -> np.ndarray:
    """A side x side RGB photo: the astronaut's face (150), the whole portrait (512), or 2x2 of it (1024).

    Tiling rather than upscaling keeps the detail per pixel of a real photo, which is
    what the entropy coders' speed depends on.
    """
    portrait = astronaut()
    if side == 512:
        return portrait
    if side == 1024:
        return np.tile(portrait, (2, 2, 1))
    face = Image.fromarray(portrait[10:250, 130:370]).resize((side, side), Image.Resampling.LANCZOS)
    return np.asarray(face)


def classical_points() -> list[OperatingPoint]:
    """Each Pillow codec at a middle setting (about 1 bpp on faces)."""
    return [jpeg(75, 2), jpeg(75, 0), jpeg2000(1.0), webp(75), avif(60)]


def _sync(device: str) -> None:
    if device == "cuda":  # GPU work is asynchronous: wait for it before reading the clock
        import torch

        torch.cuda.synchronize()


def time_point(point: OperatingPoint, pixels: np.ndarray, repeats: int) -> dict[str, Any]:
    """Median encode and decode milliseconds over ``repeats`` runs, after untimed warm-ups."""
    for _ in range(WARM_UPS):
        data = point.encode(pixels)
        point.decode(data)
    encode_ms = statistics.median(timed(point.encode, pixels)[1] for _ in range(repeats))
    decode_ms = statistics.median(timed(point.decode, data)[1] for _ in range(repeats))
    megapixels = pixels.shape[0] * pixels.shape[1] / 1e6
    return {"codec": point.codec, "setting": point.setting, "side": pixels.shape[0], "repeats": repeats,
            "encode_ms": encode_ms, "decode_ms": decode_ms,
            "encode_mpix_s": megapixels / (encode_ms / 1000), "decode_mpix_s": megapixels / (decode_ms / 1000),
            "bytes": len(data), "bpp": bits_per_pixel(len(data), pixels.shape[1], pixels.shape[0])}


class _Stopwatch:
    """Accumulates milliseconds per named stage."""

    def __init__(self, device: str) -> None:
        self.device, self.ms = device, {}

    def __call__(self, stage: str, function: Callable[..., Any], *args: Any) -> Any:
        _sync(self.device)
        result, ms = timed(function, *args)
        _sync(self.device)
        self.ms[stage] = self.ms.get(stage, 0.0) + ms
        return result


def fcz_stage_times(pixels: np.ndarray, weights_id: str, quality: int | None, bits: int | None,
                    device: str) -> tuple[dict, dict, bytes, Image.Image]:
    """codec.py's encode and decode, step by step: ({stage: ms} for encode, for decode, .fcz bytes, decoded image).

    The steps mirror facecodec.codec and call its analyse / synthesise and the weights' family; the caller checks
    bytes and image equal the library's, so the split cannot silently drift from what facecodec.encode / decode do.
    """
    weights = zoo.load_weights(weights_id, device)
    enc = _Stopwatch(device)
    rgb, mode = enc("other", open_image, pixels)
    x, pad_right, pad_bottom = enc("other", padded_array, rgb, weights.stride)
    y = enc("network", analyse, weights, x)
    setting = weights.family.choose(quality if quality is not None else bits)
    effort = weights.family.choose_effort(None)
    symbols, fields = enc("quantizer", weights.family.quantize, weights.model, y, setting, effort,
                          weights.entropy_tables)
    header = FczHeader(weights_id=weights.weights_id, width=rgb.width, height=rgb.height, mode=mode,
                       pad_right=pad_right, pad_bottom=pad_bottom, latent_shape=symbols.shape[1:], **fields[0])
    payload = enc("entropy", weights.family.entropy_encode, symbols[0], weights.table(header), header)
    data = enc("other", pack, header, payload)

    dec = _Stopwatch(device)
    header, payload = dec("other", unpack, data)
    symbols = dec("entropy", weights.family.entropy_decode, payload, weights.table(header), header)
    y = dec("quantizer", weights.family.dequantize, weights.model, symbols, header)
    x_hat = dec("network", synthesise, weights, y)
    image = dec("other", to_image, x_hat, header.width, header.height, header.mode)
    return enc.ms, dec.ms, data, image


def fcz_split(pixels: np.ndarray, weights_id: str, quality: int | None, bits: int | None, device: str,
              repeats: int) -> dict[str, Any]:
    """Median network / entropy / other milliseconds of fcz encode and decode."""
    for _ in range(WARM_UPS):
        _, _, data, image = fcz_stage_times(pixels, weights_id, quality, bits, device)
    if (data != fcz_encode(pixels, quality=quality, bits=bits, weights_id=weights_id, device=device)
            or np.asarray(image).tobytes() != np.asarray(fcz_decode(data, device=device)).tobytes()):
        raise RuntimeError("benchmarks/speed.py's step-by-step fcz no longer matches facecodec.encode / decode: "
                           "update fcz_stage_times to follow facecodec/codec.py")
    runs = [fcz_stage_times(pixels, weights_id, quality, bits, device)[:2] for _ in range(repeats)]
    return {direction: {stage: statistics.median(run[i][stage] for run in runs)
                        for stage in ("network", "quantizer", "entropy", "other")}
            for i, direction in enumerate(("encode", "decode"))}


# --- peak memory, one fresh process per case ------------------------------------------------------------

# Runs in a fresh interpreter that imports only numpy and facecodec, so the baseline is what any
# fcz user pays (facecodec and the weights; torch only for the weights that need it) and not this script's
# extras (scikit-image, scipy, ...).
_PROBE = """
import json, resource, sys
import numpy as np
import facecodec
from facecodec import classical, zoo
operation, pixels_file, fcz_file, setting, weights_id, device = sys.argv[1:]
max_rss_mib = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
zoo.load_weights(weights_id, device)  # loaded before the baseline, as in any real use
pixels = np.load(pixels_file)
data = open(fcz_file, "rb").read()
before = max_rss_mib()
if operation == "encode":
    facecodec.encode(pixels, weights_id=weights_id, device=device, **json.loads(setting))
else:
    facecodec.decode(data, device=device)
result = {"operation": operation, "baseline_max_rss_mib": before, "peak_max_rss_mib": max_rss_mib()}
if device == "cuda":
    import torch
    result["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
print(json.dumps(result))
"""


def peak_memory(side: int, weights_id: str, quality: int | None, bits: int | None,
                device: str) -> list[dict[str, Any]]:
    """Max RSS of one fcz encode and one decode at ``side`` x ``side``, each in its own fresh process."""
    pixels = test_image(side)
    setting = {"quality": quality, "bits": bits}
    with tempfile.TemporaryDirectory() as tmp:
        pixels_file, fcz_file = Path(tmp) / "pixels.npy", Path(tmp) / "probe.fcz"
        np.save(pixels_file, pixels)
        fcz_file.write_bytes(fcz_encode(pixels, weights_id=weights_id, device=device, **setting))
        results = []
        for operation in ("encode", "decode"):
            # Through sh, so the probe is forked from a small process: Linux carries the forking process's
            # peak RSS into the child's ru_maxrss across exec, which would report this script's size instead.
            probe = [sys.executable, "-c", _PROBE, operation, str(pixels_file), str(fcz_file), json.dumps(setting),
                     weights_id, device]
            done = subprocess.run(["sh", "-c", '"$@"; exit $?', "sh", *probe], capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"memory probe ({operation}) failed:\n{done.stderr}")
            results.append({**json.loads(done.stdout.strip().splitlines()[-1]), "side": side})
        return results


# --- report ---------------------------------------------------------------------------------------------

def avif_of_size(pixels: np.ndarray, size: int, speed: int = ANCHOR_AVIF_SPEED) -> OperatingPoint:
    """AVIF 4:4:4 at ``speed`` and the quality whose file is nearest ``size`` bytes (bisection: sizes grow with it)."""
    def point(quality: int) -> OperatingPoint:
        return pillow_point(f"avif-444-speed{speed}", "AVIF", f"quality={quality}, speed={speed}", quality,
                            **classical.avif_options(quality), speed=speed)

    low, high = 0, 100
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if len(point(middle).encode(pixels)) <= size else (low, middle)
    sizes = {q: len(point(q).encode(pixels)) for q in (low, high)}
    return point(min(sizes, key=lambda q: abs(sizes[q] - size)))


def encode_target(ours: dict[str, Any], anchor: dict[str, Any]) -> dict[str, Any]:
    """fcz's encode time against AVIF's at the anchor speed and about the same file size."""
    return {"side": ours["side"], "fcz_encode_ms": ours["encode_ms"], "fcz_bytes": ours["bytes"],
            "avif_setting": anchor["setting"], "avif_bytes": anchor["bytes"], "avif_encode_ms": anchor["encode_ms"],
            "met": ours["encode_ms"] <= anchor["encode_ms"]}


def _case(cases: list[dict[str, Any]], side: int, codec: str) -> dict[str, Any]:
    return next(c for c in cases if c["side"] == side and c["codec"] == codec)


def ratios(cases: list[dict[str, Any]], fcz_codec: str) -> list[dict[str, Any]]:
    """fcz's time as a multiple of each codec's, per size: robust to a machine that is uniformly slower."""
    rows = []
    for side in sorted({c["side"] for c in cases}):
        ours = _case(cases, side, fcz_codec)
        for other in (c for c in cases if c["side"] == side and c["codec"] != fcz_codec):
            rows.append({"side": side, "codec": other["codec"], "setting": other["setting"],
                         "encode_times": ours["encode_ms"] / other["encode_ms"],
                         "decode_times": ours["decode_ms"] / other["decode_ms"]})
    return rows


def decode_target(cases: list[dict[str, Any]], fcz_codec: str) -> dict[str, Any]:
    """fcz's measured decode time at the target size, against the target time."""
    decode_ms = _case(cases, TARGET_SIDE, fcz_codec)["decode_ms"]
    return {"side": TARGET_SIDE, "decode_ms": decode_ms, "target_ms": TARGET_DECODE_MS,
            "met": decode_ms < TARGET_DECODE_MS}


def _target_line(results: dict[str, Any]) -> str:
    meta, target = results["metadata"], results["decode_target"]
    side = target["side"]
    return (f"fcz decode of a {side}x{side} image: **{target['decode_ms']:.0f} ms**; target under "
            f"{target['target_ms']:.0f} ms on a 2-core CPU: **{'met' if target['met'] else 'not met'}** here "
            f"(device {meta['device']}, {meta['torch_threads']} torch threads, {meta['host']['cpus']} CPUs).")


def speed_markdown(results: dict[str, Any]) -> str:
    meta = results["metadata"]
    lines = [f"Speed, {meta['date'][:10]}: device {meta['device']}, torch {meta['versions']['torch']} with "
             f"{meta['torch_threads']} threads, {meta['host']['cpus']} CPUs, Pillow {meta['versions']['Pillow']}. "
             f"fcz: weights `{meta['weights_id']}`, {setting_words(meta['setting'])}. "
             f"Median of repeated runs after untimed warm-ups; test images from skimage's astronaut portrait."
             + (" **Quick run: few repeats.**" if meta.get("quick") else ""), "", _target_line(results), ""]
    for target in results["encode_targets"]:
        lines.append(f"fcz encode of a {target['side']}x{target['side']} image: {target['fcz_encode_ms']:.1f} ms "
                     f"({target['fcz_bytes']:,} bytes) against AVIF 4:4:4 at {target['avif_setting']} "
                     f"({target['avif_bytes']:,} bytes): {target['avif_encode_ms']:.1f} ms; target no slower: "
                     f"**{'met' if target['met'] else 'not met'}**.")
    lines.append("")
    for side in SIDES:
        cases = [c for c in results["cases"] if c["side"] == side]
        split = results["fcz_split"][str(side)]
        lines += [f"**{side}x{side}**", "",
                  "| codec | setting | bpp | encode ms | decode ms | encode MP/s | decode MP/s "
                  "| fcz encode time / this | fcz decode time / this |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for c in cases:
            r = next((r for r in results["ratios"] if r["side"] == side and r["codec"] == c["codec"]), None)
            times = f"{r['encode_times']:.1f}x | {r['decode_times']:.1f}x" if r else "1x | 1x"
            lines.append(f"| {label(c['codec'])} | {c['setting']} | {c['bpp']:.3f} | {c['encode_ms']:.1f} "
                         f"| {c['decode_ms']:.1f} | {c['encode_mpix_s']:.2f} | {c['decode_mpix_s']:.2f} | {times} |")
        lines += ["", "fcz split (ms): " + "; ".join(
            f"{direction}: network {s['network']:.1f}, quantizer {s['quantizer']:.1f}, "
            f"entropy coding {s['entropy']:.1f}, other {s['other']:.1f}"
            for direction, s in split.items()), ""]
    for m in results["memory"]:
        peak, base = m["peak_max_rss_mib"], m["baseline_max_rss_mib"]
        cuda = f" CUDA peak {m['cuda_max_allocated_mib']:.0f} MiB." if "cuda_max_allocated_mib" in m else ""
        lines.append(f"Peak memory, fcz {m['operation']} {m['side']}x{m['side']} (fresh process, max RSS): "
                     f"{peak:.0f} MiB, {peak - base:.0f} MiB above a process with facecodec and the "
                     f"weights loaded ({base:.0f} MiB).{cuda}")
    return "\n".join(lines) + "\n"


def run(out: Path, quick: bool, device: str, quality: int | None = None, bits: int | None = None,
        weights_id: str | None = None) -> dict:
    """Time every case, write speed.json and speed.md; fcz as `fcz encode --quality/--bits/--model` would run."""
    weights_id, quality, bits = fcz_choice(quality, bits, weights_id)
    repeats = QUICK_REPEATS if quick else REPEATS
    ours = fcz(weights_id, quality, bits, device)
    points = [ours, *classical_points()]
    cases, split, encode_targets = [], {}, []
    with progress(length=len(SIDES) * (len(points) + 2) + 1, label="speed") as bar:
        for side in SIDES:
            pixels = test_image(side)
            for point in points:
                cases.append(time_point(point, pixels, repeats[side]))
                bar.update(1)
            fcz_case = _case(cases, side, ours.codec)
            anchor = time_point(avif_of_size(pixels, fcz_case["bytes"]), pixels, repeats[side])
            encode_targets.append(encode_target(fcz_case, anchor))
            bar.update(1)
            split[str(side)] = fcz_split(pixels, weights_id, quality, bits, device, repeats[side])
            bar.update(1)
        memory = peak_memory(MEMORY_SIDE, weights_id, quality, bits, device)
        bar.update(1)
    results = {"metadata": {**run_metadata(resolve_device(device)), "quick": quick, "weights_id": weights_id,
                            "setting": ours.setting, "quality": quality, "bits": bits},
               "cases": cases, "fcz_split": split, "ratios": ratios(cases, ours.codec),
               "decode_target": decode_target(cases, ours.codec), "encode_targets": encode_targets,
               "memory": memory}
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "speed.json", results)
    (out / "speed.md").write_text(speed_markdown(results))
    return results


@click.command()
@click.option("--quick", is_flag=True, help="Fewer repeats, for development.")
@device_option
@threads_option
@fcz_setting_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_OUT, show_default=True)
def main(quick: bool, device: str, threads: int | None, quality: int | None, bits: int | None,
         weights_id: str | None, out: Path) -> None:
    """Time fcz and Pillow's codecs at 150x150, 512x512 and 1024x1024; write speed.json and speed.md."""
    check_device(device)
    set_threads(threads)
    started = time.perf_counter()
    run(out, quick, device, quality, bits, weights_id)
    click.echo((out / "speed.md").read_text())
    click.echo(f"wrote {out / 'speed.json'} and {out / 'speed.md'} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
