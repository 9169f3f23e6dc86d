"""fcz as a user runs it: whole processes, against Python processes doing the same with Pillow's codecs.

    python benchmarks/whole_process.py [--runs 15] [--out benchmarks/results]

On scikit-image's astronaut face (150x150, speed.py's), each pair in turn (fcz, then the anchor), ``--runs`` times
after a warm-up (which writes the bytecode caches a user's first run writes): wall time from start to exit and
peak memory (the process's max RSS, through GNU time where it is installed). Reported: each command's median, and the median of the per-pair ratios fcz / anchor (pairs, because a shared machine's speed
drifts). The anchors decode or encode the same face as JPEG 2000, WebP and AVIF 4:4:4 at fcz's file size, in a
Python process that imports Pillow alone: what a user's script would do. Also ``fcz --help``. The speed issue's
targets: decode <= 4x JPEG 2000 and <= 120 MB, encode <= 5x, ``--help`` <= 0.3 s.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from typing import Any

import click
import numpy as np
from PIL import Image

from facecodec import classical

from benchmarks.common import DEFAULT_OUT, run_metadata, write_json
from benchmarks.speed import avif_of_size, test_image

DECODE = "from PIL import Image; import sys; Image.open(sys.argv[1]).save(sys.argv[2])"
ENCODE = ("from PIL import Image; import sys, json; Image.open(sys.argv[1]).save(sys.argv[2], sys.argv[3], "
          "**json.loads(sys.argv[4]))")
TARGETS = {"decode": 4.0, "encode": 5.0}   # fcz's whole-process time at most this many times JPEG 2000's
TARGET_DECODE_MB, TARGET_HELP_S = 120.0, 0.3


GNU_TIME = "/usr/bin/time"
# The runs may write Python's bytecode caches, as every user's first run does: with PYTHONDONTWRITEBYTECODE set (this
# project's machines set it), facecodec's own modules, installed editable, would be compiled anew on every run, which
# no user pays past the first (and Pillow's, compiled at install, never).
RUN_ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def run_once(command: list[str]) -> tuple[float, float | None]:
    """(wall seconds, peak resident MB or None) of one run of ``command``; its output is thrown away.

    The peak comes from GNU time (``%M``), which starts the command from its own small process: a child forked
    from this Python process would carry this process's resident size into its own maximum."""
    with tempfile.NamedTemporaryFile("r") as peak:
        timed = [GNU_TIME, "-f", "%M", "-o", peak.name, *command] if os.path.exists(GNU_TIME) else command
        started = time.perf_counter()
        done = subprocess.run(timed, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=RUN_ENV)
        wall = time.perf_counter() - started
        if done.returncode:
            raise click.ClickException(f"{' '.join(command)} exited with {done.returncode}")
        kilobytes = peak.read().strip()
    return wall, int(kilobytes) / 1024 if kilobytes.isdigit() else None


def paired(ours: list[str], anchor: list[str], runs: int) -> dict[str, Any]:
    """Each command ``runs`` times in turn after one warm-up each: medians and the median per-pair ratio."""
    run_once(ours), run_once(anchor)
    pairs = [(run_once(ours), run_once(anchor)) for _ in range(runs)]
    peak = lambda runs: statistics.median(runs) if None not in runs else None   # noqa: E731 (no GNU time)
    return {"fcz_s": statistics.median(a[0] for a, _ in pairs), "anchor_s": statistics.median(b[0] for _, b in pairs),
            "ratio": statistics.median(a[0] / b[0] for a, b in pairs),
            "fcz_peak_mb": peak([a[1] for a, _ in pairs]), "anchor_peak_mb": peak([b[1] for _, b in pairs])}


def anchor_files(face: Path, fcz_bytes: int, folder: Path) -> dict[str, tuple[Path, dict[str, Any]]]:
    """JPEG 2000, WebP and AVIF files of ``face`` at about ``fcz_bytes`` -> (file, Image.save options)."""
    pixels = Image.open(face)
    rate = classical.jpeg2000_rate(8 * fcz_bytes / (pixels.width * pixels.height))
    for _ in range(30):   # OpenJPEG's rate is a target it misses a little: close in on the size
        size = len(classical.encode(pixels, "JPEG2000", classical.jpeg2000_options(rate)))
        if abs(size - fcz_bytes) <= 0.02 * fcz_bytes:
            break
        rate *= size / fcz_bytes
    webp = min(range(101), key=lambda q: abs(len(classical.encode(pixels, "WEBP", classical.webp_options(q)))
                                            - fcz_bytes))
    avif = avif_of_size(np.asarray(pixels), fcz_bytes)
    found = {"JPEG 2000": (".j2k", "JPEG2000", classical.jpeg2000_options(rate)),
             "WebP": (".webp", "WEBP", classical.webp_options(webp)), "AVIF 4:4:4": (".avif", "AVIF", avif.options)}
    out = {}
    for name, (suffix, fmt, options) in found.items():
        options = {k: v for k, v in options.items() if k != "format"}
        path = folder / f"face{suffix}"
        pixels.save(path, fmt, **options)
        out[name] = (path, {"format": fmt, **options})
    return out


def measure(runs: int) -> dict[str, Any]:
    fcz = shutil.which("fcz")
    if fcz is None:
        raise click.ClickException("the fcz command is not on PATH: pip install -e . first")
    python = sys.executable
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        face = folder / "face.png"
        Image.fromarray(test_image(150)).save(face)
        subprocess.run([fcz, "encode", str(face), "-o", str(folder / "face.fcz")], check=True, capture_output=True)
        fcz_bytes = (folder / "face.fcz").stat().st_size
        anchors = anchor_files(face, fcz_bytes, folder)
        results: dict[str, Any] = {"fcz_bytes": fcz_bytes, "decode": {}, "encode": {}}
        for name, (path, options) in anchors.items():
            results["decode"][name] = {"anchor_bytes": path.stat().st_size, **paired(
                [fcz, "decode", str(folder / "face.fcz"), "-o", str(folder / "out.png"), "-f"],
                [python, "-c", DECODE, str(path), str(folder / "anchor.png")], runs)}
            fmt = options.pop("format")
            results["encode"][name] = paired(
                [fcz, "encode", str(face), "-o", str(folder / "again.fcz"), "-f"],
                [python, "-c", ENCODE, str(face), str(folder / f"again{path.suffix}"), fmt,
                 json.dumps(options)], runs)
        helps = [run_once([fcz, "--help"]) for _ in range(runs + 1)][1:]
        results["help_s"] = statistics.median(w for w, _ in helps)
    return results


def mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def markdown(results: dict[str, Any]) -> str:
    meta, jp2 = results["metadata"], results["decode"]["JPEG 2000"]
    lines = [f"# fcz as a whole process ({meta['date']}, commit {meta['git_commit']})", "",
             f"150x150 face, fcz's default settings: {results['fcz_bytes']:,} bytes; each anchor at about that size. "
             f"Median of {meta['runs']} paired runs after a warm-up; made by `python benchmarks/whole_process.py`.",
             "", f"- `fcz decode`: **{jp2['ratio']:.2f}x** a Python process decoding the JPEG 2000 file with Pillow "
                 f"(target <= {TARGETS['decode']:g}x), peak {mb(jp2['fcz_peak_mb'])} MB (target <= "
                 f"{TARGET_DECODE_MB:g} MB)",
             f"- `fcz encode`: **{results['encode']['JPEG 2000']['ratio']:.2f}x** Pillow's JPEG 2000 encode (target <= "
             f"{TARGETS['encode']:g}x)", f"- `fcz --help`: **{results['help_s']:.3f} s** (target <= {TARGET_HELP_S:g} s)",
             "", "| command | anchor | fcz s | anchor s | fcz / anchor | fcz peak MB | anchor peak MB |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for command in ("decode", "encode"):
        for name, r in results[command].items():
            lines.append(f"| fcz {command} | {name} | {r['fcz_s']:.3f} | {r['anchor_s']:.3f} | {r['ratio']:.2f}x | "
                         f"{mb(r['fcz_peak_mb'])} | {mb(r['anchor_peak_mb'])} |")
    return "\n".join(lines) + "\n"


@click.command()
@click.option("--runs", type=click.IntRange(min=1), default=15, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_OUT, show_default=True)
def main(runs: int, out: Path) -> None:
    """Whole-process times and peak memory of fcz decode, encode and --help against Pillow's codecs."""
    results = measure(runs)
    results["metadata"] = {**run_metadata("cpu"), "runs": runs}
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "whole_process.json", results)
    (out / "whole_process.md").write_text(markdown(results))
    click.echo(markdown(results))


if __name__ == "__main__":
    main()
