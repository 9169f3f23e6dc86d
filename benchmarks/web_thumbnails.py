"""A development set that looks like the web's face photos: faces/val made small and saved as JPEG.

    python benchmarks/web_thumbnails.py OUT_DIR [--limit N] [--seed 0]

Most face photos users hold are small JPEGs. Each faces/val face (200x200, itself a JPEG) is cropped, centred, to a
random portrait aspect and resized (Lanczos) to 88..100 x 100..112 pixels, then saved as JPEG at a random quality
70..80 with 4:2:0 chroma, as Pillow (libjpeg) writes them: the same file for the same seed on any machine with the
same Pillow. Tune on this set and on faces/val, never on lfw-test. The benchmarks make the set in memory
(``thumbnails``); this command writes it out for other tools.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import io

import click
import numpy as np
from PIL import Image

from benchmarks.common import REPO_ROOT

FACES_VAL = REPO_ROOT.parent / "shared" / "data" / "faces" / "val"
WIDTHS, HEIGHTS, QUALITIES = (88, 100), (100, 112), (70, 80)   # inclusive ranges


def thumbnails(limit: int | None = None, seed: int = 0, folder: Path = FACES_VAL) -> list[tuple[str, bytes]]:
    """(name, JPEG bytes) of the first ``limit`` faces of ``folder`` (sorted by name), made as the docstring says."""
    paths = sorted(folder.glob("*.jpg"))[:limit]
    if not paths:
        raise click.UsageError(f"no faces in {folder}")
    rng = np.random.default_rng(seed)
    made = []
    for path in paths:
        width, height = (int(rng.integers(lo, hi + 1)) for lo, hi in (WIDTHS, HEIGHTS))
        quality = int(rng.integers(QUALITIES[0], QUALITIES[1] + 1))
        with Image.open(path) as face:
            face = face.convert("RGB")
            crop = round(face.height * width / height)   # the portrait aspect, centred
            left = (face.width - crop) // 2
            small = face.crop((left, 0, left + crop, face.height)).resize((width, height), Image.LANCZOS)
        buffer = io.BytesIO()
        small.save(buffer, "JPEG", quality=quality, subsampling=2)
        made.append((f"{path.stem}_{width}x{height}_q{quality}.jpg", buffer.getvalue()))
    return made


@click.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N faces of faces/val.")
@click.option("--seed", type=int, default=0, show_default=True)
def main(out: Path, limit: int | None, seed: int) -> None:
    """Write the web-thumbnail development set into OUT (created)."""
    out.mkdir(parents=True, exist_ok=True)
    made = thumbnails(limit, seed)
    for name, data in made:
        (out / name).write_bytes(data)
    click.echo(f"{len(made)} thumbnails in {out}")


if __name__ == "__main__":
    main()
