"""Lossless coding against the classical lossless codecs: total bytes, bits per pixel and time, on held-out faces.

    python benchmarks/lossless.py [FOLDER ...] [--limit N] [--out benchmarks/results]

Default folders: ``../shared/data/lfw-test`` (the benchmark's test set) and ``../shared/data/faces/val``. Every
codec codes the same images in one run, each given what a user would give it: fcz ``--lossless`` the image file
(in-process, the API: a JPEG keeps its own coefficients, facecodec.jpeg_file), and fcz again from the pixels alone
(an array: the reversible wavelet's file or the JPEG rebuilt from the pixels with its residual, facecodec.jpeg_rebuild,
whichever is smaller; the tables count which); PNG (Pillow, ``optimize=True``), WebP lossless (method 6) and JPEG
2000 reversible (a raw ``.j2k`` codestream, 5/3 wavelet with the reversible colour transform) the 8-bit RGB pixels;
where ``pillow-jxl-plugin`` is installed (the ``bench`` extra), JPEG XL lossless at effort 7 the pixels and, for a
JPEG, the JPEG file itself (as ``cjxl`` does by default: lossless JPEG transcoding); and the JPEG file as it is.
Every file is decoded and compared with the image file's pixels: a codec that does not give them back exactly is
reported, never counted. Sizes are those of the real files, headers included; the metadata segments of a JPEG
(EXIF, ICC) count where a codec keeps them (fcz, the JPEG, JPEG XL's transcoding).

Writes ``lossless.json`` (per folder and codec: images, bytes, bpp, ratio to fcz, median encode and decode ms)
and ``lossless.md`` (the tables for the README and docs/results.md).
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import facecodec  # noqa: E402
from facecodec import jpeg_file  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


FCZ = "fcz lossless (from the file)"


@dataclass(frozen=True)
class Source:
    """One test image: its file's bytes and its 8-bit RGB pixels."""

    file: bytes
    pixels: np.ndarray

    @property
    def is_jpeg(self) -> bool:
        return self.file.startswith(jpeg_file.SOI)


def pixels_of(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def pillow_codec(fmt: str, **options) -> tuple[Callable[[Source], bytes], Callable[[bytes], np.ndarray]]:
    def encode(source: Source) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(source.pixels).save(buffer, fmt, **options)
        return buffer.getvalue()
    return encode, pixels_of


def jxl_transcoding(source: Source) -> bytes:
    """JPEG XL's lossless transcoding of a JPEG file (its DCT coefficients and the data to rebuild the file)."""
    from pillow_jxl import Encoder

    height, width = source.pixels.shape[:2]
    return Encoder(mode="RGB", lossless=True, quality=100, effort=7)(source.file, width, height, jpeg_encode=True)


def codecs(jpegs: bool) -> dict[str, tuple[Callable, Callable]]:
    """Each codec's (encode a Source, decode to RGB pixels); ``jpegs``: those that take a JPEG file too."""
    found = {
        FCZ: (lambda source: facecodec.encode(source.file, lossless=True),
              lambda data: np.asarray(facecodec.decode(data).convert("RGB"))),
        "fcz lossless (from the pixels)": (lambda source: facecodec.encode(source.pixels, lossless=True),
                                           lambda data: np.asarray(facecodec.decode(data))),
        "PNG (optimize)": pillow_codec("PNG", optimize=True),
        "WebP lossless (method 6)": pillow_codec("WEBP", lossless=True, method=6),
        "JPEG 2000 reversible": pillow_codec("JPEG2000", irreversible=False, mct=1, codec="j2k"),
    }
    try:
        import pillow_jxl  # noqa: F401  (importing it registers JXL with Pillow)

        found["JPEG XL lossless (effort 7)"] = pillow_codec("JXL", lossless=True, effort=7)
        if jpegs:   # Pillow's JXL plugin rebuilds the JPEG and decodes it with libjpeg: the JPEG's own pixels
            found["JPEG XL JPEG transcoding (effort 7)"] = (jxl_transcoding, pixels_of)
    except ImportError:
        print("pillow-jxl-plugin is not installed (pip install -e '.[bench]'): no JPEG XL", file=sys.stderr)
    if jpegs:
        found["the JPEG file itself"] = (lambda source: source.file, pixels_of)
    return found


def measure(folder: Path, limit: int | None) -> dict:
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:limit]
    sources = [Source(p.read_bytes(), np.asarray(Image.open(p).convert("RGB"))) for p in paths]
    pixels = sum(source.pixels.shape[0] * source.pixels.shape[1] for source in sources)
    jpegs = all(source.is_jpeg for source in sources)
    results = {}
    for name, (encode, decode) in codecs(jpegs).items():
        total, encode_ms, decode_ms, inexact, weights = 0, [], [], 0, {}
        for source in sources:
            image = source.pixels
            started = time.perf_counter()
            data = encode(source)
            encoded = time.perf_counter()
            back = decode(data)
            decode_ms.append(1000 * (time.perf_counter() - encoded))
            encode_ms.append(1000 * (encoded - started))
            inexact += not np.array_equal(back, image)
            total += len(data)
            if name.startswith("fcz"):
                used = facecodec.read_header(data).weights_id
                weights[used] = weights.get(used, 0) + 1
        results[name] = {"images": len(sources), "bytes": total, "bpp": round(8 * total / pixels, 4),
                         "encode_ms": round(float(np.median(encode_ms)), 2),
                         "decode_ms": round(float(np.median(decode_ms)), 2), "inexact_images": inexact,
                         **({"weights": weights} if weights else {})}
        print(f"{folder.name}: {name}: {results[name]}", file=sys.stderr, flush=True)
    fcz = results[FCZ]["bytes"]
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
    lines.append("")
    for name, r in run["codecs"].items():
        if "weights" in r:
            lines.append(f"- {name}: " + ", ".join(f"{n} files {w}" for w, n in sorted(r["weights"].items())))
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
            "weights": [facecodec.zoo.lossless_weights_id(jpeg_files=True), facecodec.zoo.lossless_weights_id(),
                        facecodec.zoo.lossless_weights_id(rebuilt_jpeg=True)]}
    (args.out / "lossless.json").write_text(json.dumps({"meta": meta, "runs": runs}, indent=1) + "\n")
    text = [f"# Lossless: fcz against PNG, WebP, JPEG 2000 and JPEG XL ({meta['date']}, weights "
            f"{', '.join(meta['weights'])})",
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
