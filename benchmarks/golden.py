"""SHA-256 of what every installed weights makes of a fixed set of images: the check that a refactor kept the bytes.

    python benchmarks/golden.py > before.json     # on the old code
    python benchmarks/golden.py --against before.json

Each case is a .fcz file's bytes (every codec weights, at the ends and middle of its settings, both
encoder efforts where the family has two, greyscale, an odd size, a tiled image for the wavelet family),
the pixels of its decode (full size, and reduced where the family can), and each restoration task's pixels; weights
that keep a JPEG's own coefficients code the same pictures saved as JPEGs (by this machine's Pillow).
Only the public API is called (facecodec.encode, decode, restore, and the weights' family for its option and
settings), so the script runs unchanged across refactors of the code behind it.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys

import numpy as np
from PIL import Image
from skimage.data import astronaut

import facecodec
from facecodec import zoo


def digest(data: bytes | Image.Image) -> str:
    raw = data if isinstance(data, bytes) else data.mode.encode() + bytes(data.size[0].to_bytes(4, "big")) + data.tobytes()
    return hashlib.sha256(raw).hexdigest()[:16]


def images() -> dict[str, np.ndarray]:
    picture = astronaut()
    return {"face": picture[20:180, 150:294], "odd": picture[30:131, 170:267],
            "grey": np.asarray(Image.fromarray(picture[0:96, 160:256]).convert("L")),
            "tiled": np.tile(picture, (3, 3, 1))[:1100, :1040]}


def as_jpeg(picture: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def cases() -> dict[str, str]:
    out: dict[str, str] = {}
    pictures = images()
    for weights_id in zoo.installed_ids():
        family = zoo.load_spec(weights_id).family
        first, last, default, option = family.settings[0], family.settings[-1], family.default, family.option
        tiles = family.choose_tile(None) is not None
        for name, picture in pictures.items():
            if name == "tiled" and not tiles:
                continue
            if family.keeps_jpeg_files:   # weights that code a JPEG file: the picture saved as one
                picture = as_jpeg(picture)
            settings = sorted({first, default, last}) if name in ("face", "tiled") else [default]
            for setting in settings:
                for effort in (tuple(family.efforts) if len(family.efforts) > 1 and name == "face" else (None,)):
                    key = f"{weights_id}/{name}/{option}{setting}/effort{effort}"
                    data = facecodec.encode(picture, weights_id=weights_id, effort=effort, **{option: setting})
                    out[key + "/fcz"] = digest(data)
                    out[key + "/pixels"] = digest(facecodec.decode(data))
                    if family.max_reduce and effort != 0:
                        out[key + "/pixels-1/4"] = digest(facecodec.decode(data, reduce=2))
        if option == "quality" and len(family.settings) > 1:  # the seed's bit depths: too few; lossless: one
            out[f"{weights_id}/face/size3000/fcz"] = digest(facecodec.encode(pictures["face"], weights_id=weights_id,
                                                                              size=3000))
    damaged = pictures["face"].copy()
    damaged[60:80, 50:90] = 0
    for task, scale in (("denoise", None), ("deblur", None), ("dejpeg", None), ("inpaint", None), ("colorize", None),
                        ("depixelate", None), ("superres", 4)):
        source = damaged if task == "inpaint" else pictures["face"][::4, ::4] if task == "superres" else pictures["face"]
        out[f"restore/{task}"] = digest(facecodec.restore(source, task=task, scale=scale))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", help="a JSON file of an earlier run: list what differs, exit 1 if anything does")
    args = parser.parse_args()
    now = cases()
    if args.against is None:
        json.dump(now, sys.stdout, indent=1)
        print()
        return
    before = json.load(open(args.against))
    differ = sorted(k for k in before if before[k] != now.get(k))   # a case gone counts as differing
    new = sorted(now.keys() - before.keys())                        # weights installed since: not a difference
    for key in differ:
        print(f"{key}: {before[key]} -> {now.get(key)}")
    print(f"{len(before)} cases before, {len(differ)} differ" + (f"; {len(new)} new ({new[0].split('/')[0]}, ...)"
                                                                  if new else ""))
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
