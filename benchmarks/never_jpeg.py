"""A development set of face pixels that were never a JPEG's at their size: faces/val halved, saved as PNG.

    python benchmarks/never_jpeg.py OUT_DIR [--limit N]

Each faces/val face (200x200, a JPEG) resized to 100x100 with Lanczos, which leaves no trace of the JPEG's 8x8
lattice, saved as PNG. Lossless coding of such pixels cannot rebuild their JPEG (facecodec.jpeg_rebuild), so on this
set ``benchmarks/lossless.py`` measures the pixel coder alone; tune on it, never on lfw-test.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import click
from PIL import Image

from benchmarks.web_thumbnails import FACES_VAL

SIDE = 100


@click.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N faces of faces/val.")
def main(out: Path, limit: int | None) -> None:
    """Write the halved faces into OUT (created)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = sorted(FACES_VAL.glob("*.jpg"))[:limit]
    if not paths:
        raise click.UsageError(f"no faces in {FACES_VAL}")
    for path in paths:
        Image.open(path).convert("RGB").resize((SIDE, SIDE), Image.LANCZOS).save(out / f"{path.stem}.png")
    click.echo(f"{len(paths)} faces in {out}")


if __name__ == "__main__":
    main()
