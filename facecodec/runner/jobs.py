"""What a folder run does to which files: the conversion, one job per input, and the walk that plans them."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facecodec.image_io import DEFAULT_MAX_PIXELS

OK, EXISTS, ERROR = "ok", "exists", "error"   # a result's status
MANIFEST_NAME = "fcz-manifest.csv"            # never an input, wherever a walk meets one
DIRECTIONS = ("encode", "decode", "restore")


@dataclass(frozen=True)
class Conversion:
    """What every worker does to each file: picklable, sent along with each chunk."""

    direction: str                      # "encode", "decode" or "restore"
    suffix: str                         # the outputs' extension: ".fcz", ".png", "-denoise.png", ...
    settings: Any = None                # encode: facecodec.codec.EncodeSettings, checked before the run
    device: str = "auto"
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    fmt: str = "PNG"                    # decode, restore: Pillow's name of the output format
    save_quality: int | None = None     # decode, restore: JPEG / WebP quality
    strip: bool = False                 # decode, restore: write no ICC profile, EXIF or XMP (encode: in settings)
    reduce: int = 0                     # decode: output 1 / 2^reduce of the size (facecodec.codec.decode)
    force: bool = False                 # replace existing outputs
    task: str | None = None             # restore: facecodec.damage.TASKS
    scale: int | None = None            # restore: superres's scale

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, not {self.direction!r}")


@dataclass(frozen=True)
class Job:
    """One input and its output. ``name`` (relative to the input folder) is the manifest's key."""

    name: str
    source: str   # absolute path, as workers open it
    output: str   # relative to the output folder
    target: str   # absolute path of the output


@dataclass
class Result:
    job: Job
    status: str                          # ok, exists or error
    size: int | None = None              # bytes of the output
    bpp: float | None = None             # of the .fcz file
    error: str = ""                      # one line, for status error
    warnings: list[str] = field(default_factory=list)


def failed(jobs: Any, message: str) -> list[Result]:
    """Every job of ``jobs`` failed for one reason."""
    return [Result(job, ERROR, error=" ".join(message.split())) for job in jobs]


def input_suffixes(direction: str) -> set[str]:
    """File extensions a folder walk takes: every image format Pillow opens for encode and restore, .fcz for decode."""
    if direction == "decode":
        return {".fcz"}
    from PIL import Image

    Image.init()
    return {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN and fmt != "FCZ"}


def plan(source_dir: Path, out_dir: Path, suffix: str, direction: str,
         recursive: bool = False) -> tuple[list[Job], list[Result], int]:
    """Walk ``source_dir`` -> (jobs in sorted order, errors found while planning, number of files ignored).

    Hidden files and folders (a leading '.') are skipped, and so is ``out_dir`` when it lies inside
    ``source_dir``. Two inputs that would write the same output (``a.jpg`` and ``a.png``) are an error for
    the second one: nothing is overwritten by a namesake.
    """
    accepted = input_suffixes(direction)
    source_dir, out_dir = Path(os.path.abspath(source_dir)), Path(os.path.abspath(out_dir))
    jobs: list[Job] = []
    errors: list[Result] = []
    ignored = 0
    owners: dict[str, str] = {}
    for folder, dirs, files in os.walk(source_dir):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (here / d) != out_dir) if recursive else []
        for name in sorted(files):
            path = here / name
            if name.startswith(".") or name == MANIFEST_NAME:  # hidden, or a manifest (of this run or another)
                continue
            if direction == "restore" and name.endswith(suffix):  # restored beside its input by an earlier run
                continue
            if path.suffix.lower() not in accepted:
                ignored += path.suffix.lower() != suffix  # outputs written beside their inputs are not "ignored"
                continue
            relative = path.relative_to(source_dir)
            output = relative.with_name(relative.stem + suffix).as_posix()
            job = Job(relative.as_posix(), str(path), output, str(out_dir / output))
            if output in owners:
                errors.append(Result(job, ERROR, error=f"same output {output} as {owners[output]}: rename one of them"))
                continue
            owners[output] = job.name
            jobs.append(job)
    return jobs, errors, ignored
