"""``OUT/fcz-manifest.csv``: what a folder run did to each input, kept as results arrive.

The manifest (CSV: input, output, bytes, bpp, status, error, run, command) has one row per input
(paths relative to DIR and OUT). ``status`` is ``ok`` (converted, in run ``run``),
``exists`` (the output was already there and no earlier run recorded it: not redone), or
``error`` (the one-line reason in ``error``). ``bytes`` is the output's size; ``bpp`` is the
.fcz file's bits per pixel (the output's for encode, the input's for decode). ``command`` says which command wrote
the row (``encode``, ``decode``, ``restore``), so a folder that receives the outputs of two (decoding into the
encode folder) says which row is which. A manifest written before that column existed is read, its rows' command
left empty.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from facecodec.bitstream import FczError
from facecodec.files import write_atomic
from facecodec.runner.jobs import EXISTS, OK, Job, Result

FIELDS = ("input", "output", "bytes", "bpp", "status", "error", "run", "command")
EARLIER_FIELDS = FIELDS[:-1]          # facecodec before the command column
# UTF-8, with a file name that is not valid UTF-8 kept byte for byte (Python hands such names over as surrogates):
# every name a folder can hold then has a row, and a rerun matches it.
ENCODING = {"encoding": "utf-8", "errors": "surrogateescape"}


class Manifest:
    """``OUT/fcz-manifest.csv``: one row per input, appended as results arrive, rewritten whole at start and end.

    A process killed mid-append leaves at most one cut-off last line, which loading drops; a
    later row for the same input replaces an earlier one. The whole-file rewrites are atomic
    (facecodec.files.write_atomic).
    """

    def __init__(self, path: Path, command: str = "") -> None:
        self.path, self.command = path, command
        self.rows: dict[str, dict[str, str]] = self.load(path)
        self._file: io.TextIOBase | None = None

    @staticmethod
    def load(path: Path) -> dict[str, dict[str, str]]:
        try:
            with open(path, newline="", **ENCODING) as f:
                text = f.read()
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            raise FczError(f"cannot read the manifest {path}: {exc}") from None
        records = list(csv.reader(io.StringIO(text)))
        if text and not text.endswith("\n") and records:
            records.pop()  # cut off by a kill in the middle of an append
        fields = next((f for f in (FIELDS, EARLIER_FIELDS) if records and tuple(records[0][:len(f)]) == f), None)
        if fields is None:
            raise FczError(f"{path} is not a manifest fcz wrote (its first line should be {','.join(FIELDS)}); "
                           f"move it away")
        rows = {}
        for record in records[1:]:
            if len(record) >= len(fields):
                rows[record[0]] = {"command": "", **dict(zip(fields, record))}
        return rows

    @property
    def last_run(self) -> int:
        return max((int(row["run"]) for row in self.rows.values() if row["run"].isdigit()), default=0)

    def done(self, job: Job) -> bool:
        row = self.rows.get(job.name)
        return row is not None and row["status"] in (OK, EXISTS) and row["output"] == job.output

    def _text(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(FIELDS)
        for name in sorted(self.rows):
            writer.writerow([self.rows[name][f] for f in FIELDS])
        return buffer.getvalue()

    def open(self) -> None:
        write_atomic(self.path, self._text().encode(**ENCODING))
        self._file = open(self.path, "a", newline="", **ENCODING)

    def record(self, result: Result, run: int) -> None:
        row = {"input": result.job.name, "output": result.job.output,
               "bytes": "" if result.size is None else str(result.size),
               "bpp": "" if result.bpp is None else f"{result.bpp:.4f}",
               "status": result.status, "error": result.error, "run": str(run), "command": self.command}
        self.rows[result.job.name] = row
        if self._file is not None:
            csv.writer(self._file, lineterminator="\n").writerow([row[f] for f in FIELDS])
            self._file.flush()  # a killed process loses nothing written so far; a power cut may

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            write_atomic(self.path, self._text().encode(**ENCODING))

