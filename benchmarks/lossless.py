"""Lossless coding against the classical lossless codecs: total bytes, bits per pixel and time, on held-out faces.

    python benchmarks/lossless.py [FOLDER ...] [--limit N] [--out benchmarks/results]

Default folders: ``../shared/data/lfw-test`` (the benchmark's test set) and ``../shared/data/faces/val``. Every
codec codes the same 8-bit RGB images in one run: fcz ``--lossless`` (in-process, the API), PNG (Pillow,
``optimize=True``), WebP lossless (method 6), JPEG 2000 reversible (a raw ``.j2k`` codestream, 5/3 wavelet with
the reversible colour transform) and, where ``pillow-jxl-plugin`` is installed (the ``bench`` extra), JPEG XL
lossless at effort 7. Every file is decoded and compared with its image: a codec that does not give the pixels
back exactly is reported, never counted. Sizes are those of the real files, headers included.

Writes ``lossless.json`` (per folder and codec: images, bytes, bpp, ratio to fcz, median encode and decode ms)
and ``lossless.md`` (the tables for the README and docs/results.md).
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import facecodec  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def pillow_codec(fmt: str, **options) -> tuple[Callable[[np.ndarray], bytes], Callable[[bytes], np.ndarray]]:
    def encode(pixels: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, fmt, **options)
        return buffer.getvalue()
    return encode, lambda data: np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def codecs() -> dict[str, tuple[Callable, Callable]]:
    found = {
        "fcz lossless": (lambda pixels: facecodec.encode(pixels, lossless=True),
                         lambda data: np.asarray(facecodec.decode(data))),
        "PNG (optimize)": pillow_codec("PNG", optimize=True),
        "WebP lossless (method 6)": pillow_codec("WEBP", lossless=True, method=6),
        "JPEG 2000 reversible": pillow_codec("JPEG2000", irreversible=False, mct=1, codec="j2k"),
    }
    try:
        import pillow_jxl  # noqa: F401  (importing it registers JXL with Pillow)

        found["JPEG XL lossless (effort 7)"] = pillow_codec("JXL", lossless=True, effort=7)
    except ImportError:
        print("pillow-jxl-plugin is not installed (pip install -e '.[bench]'): no JPEG XL", file=sys.stderr)
    return found


def measure(folder: Path, limit: int | None) -> dict:
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:limit]
    images = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    pixels = sum(image.shape[0] * image.shape[1] for image in images)
    results = {}
    for name, (encode, decode) in codecs().items():
        total, encode_ms, decode_ms, inexact = 0, [], [], 0
        for image in images:
            started = time.perf_counter()
            data = encode(image)
            encoded = time.perf_counter()
            back = decode(data)
            decode_ms.append(1000 * (time.perf_counter() - encoded))
            encode_ms.append(1000 * (encoded - started))
            inexact += not np.array_equal(back, image)
            total += len(data)
        results[name] = {"images": len(images), "bytes": total, "bpp": round(8 * total / pixels, 4),
                         "encode_ms": round(float(np.median(encode_ms)), 2),
                         "decode_ms": round(float(np.median(decode_ms)), 2), "inexact_images": inexact}
        print(f"{folder.name}: {name}: {results[name]}", file=sys.stderr, flush=True)
    fcz = results["fcz lossless"]["bytes"]
    for result in results.values():
        result["bytes_vs_fcz"] = round(result["bytes"] / fcz, 4)
    return {"folder": str(folder), "pixels": pixels, "codecs": results}


def table(run: dict) -> str:
    lines = [f"**{Path(run['folder']).name}** ({next(iter(run['codecs'].values()))['images']} images)", "",
             "| codec | total bytes | bpp | bytes vs fcz | encode ms (median) | decode ms (median) | exact |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for name, r in sorted(run["codecs"].items(), key=lambda item: item[1]["bytes"]):
        lines.append(f"| {name} | {r['bytes']:,} | {r['bpp']:.3f} | {r['bytes_vs_fcz']:.3f} | {r['encode_ms']:.1f} | "
                     f"{r['decode_ms']:.1f} | {'yes' if not r['inexact_images'] else 'NO: ' + str(r['inexact_images'])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path, default=[DATA / "lfw-test", DATA / "faces" / "val"])
    parser.add_argument("--limit", type=int, help="the first N images of each folder")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    runs = [measure(folder, args.limit) for folder in args.folders]
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "limit": args.limit,
            "weights": facecodec.zoo.lossless_weights_id()}
    (args.out / "lossless.json").write_text(json.dumps({"meta": meta, "runs": runs}, indent=1) + "\n")
    text = [f"# Lossless: fcz against PNG, WebP, JPEG 2000 and JPEG XL ({meta['date']}, weights {meta['weights']})",
            "", "Written by `python benchmarks/lossless.py`; every codec on the same images in one run, real file "
            "bytes, each decode checked against its image. Times are from a shared 2-core machine: compare the "
            "ratios.", ""]
    for run in runs:
        text += [table(run), ""]
    (args.out / "lossless.md").write_text("\n".join(text))
    print("\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
