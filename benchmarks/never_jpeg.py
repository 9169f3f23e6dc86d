"""Development sets of face pixels given as PNG: never a JPEG's at their size, or a JPEG's cropped off its grid.

    python benchmarks/never_jpeg.py OUT_DIR [--limit N] [--off-grid]

Each faces/val face (200x200, a JPEG) resized to 100x100 with Lanczos, which leaves no trace of the JPEG's 8x8
lattice, saved as PNG: lossless coding of such pixels cannot rebuild their JPEG (facecodec.jpeg_rebuild), so on this
set ``benchmarks/lossless.py`` measures the pixel coder alone. With ``--off-grid``, each face's decoded pixels cropped
1..7 columns and 1..7 rows in (the same for the same face on any machine) to 184 x 184, as a face cropped from a
larger JPEG photo: the JPEG's grid is still there, shifted. Tune on these, never on lfw-test.
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
OFF_GRID_SIDE = 184


@click.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N faces of faces/val.")
@click.option("--off-grid", is_flag=True, help="Crop the decoded faces off their JPEG grid instead of halving them.")
def main(out: Path, limit: int | None, off_grid: bool) -> None:
    """Write the halved (or off-grid) faces into OUT (created)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = sorted(FACES_VAL.glob("*.jpg"))[:limit]
    if not paths:
        raise click.UsageError(f"no faces in {FACES_VAL}")
    for k, path in enumerate(paths):
        face = Image.open(path).convert("RGB")
        if off_grid:
            left, top = 1 + k % 7, 1 + (3 * k + 2) % 7
            face = face.crop((left, top, left + OFF_GRID_SIDE, top + OFF_GRID_SIDE))
        else:
            face = face.resize((SIDE, SIDE), Image.LANCZOS)
        face.save(out / f"{path.stem}.png")
    click.echo(f"{len(paths)} faces in {out}")


if __name__ == "__main__":
    main()
