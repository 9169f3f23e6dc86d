"""Folder runs from the command line (``fcz encode DIR -o OUT``): options, one progress bar, the summary."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import click

from facecodec import runner
from facecodec.bitstream import FczError
from facecodec.cli import reporting
from facecodec.cli.app import STDIO
from facecodec.cli.outputs import check_names_a_directory
from facecodec.models.threads import threads


def folder_options(command: Callable) -> Callable:
    """The options of a folder run (``fcz encode DIR -o OUT``), shared by encode and decode."""
    options = [
        click.option("-r", "--recursive", is_flag=True,
                     help="Folder input: walk its subfolders too, mirrored in the output folder."),
        click.option("-j", "--jobs", type=click.IntRange(min=1),
                     help="Folder input: worker processes. Default: the machine's cores (1 on CUDA); torch threads "
                          "are shared out so jobs x threads <= cores."),
        click.option("--batch-size", type=click.IntRange(min=1),
                     help="Folder input: same-size images per network pass (default 1). Files stay byte-identical "
                          "on the CPU; on CUDA that is not verified."),
        click.option("--scheduler", metavar="ADDRESS",
                     help="Folder input: run on this Dask cluster (tcp://HOST:8786) instead of local processes; its "
                          "workers must see the folders at the same paths. Needs facecodec[cluster]."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def folder_input(inputs: tuple[str, ...], out: str | None, recursive: bool, jobs: int | None,
                  batch_size: int | None, scheduler: str | None) -> Path | None:
    """The input folder of a folder run, or None; usage errors for folder options without one."""
    if len(inputs) == 1 and inputs[0] != STDIO and Path(inputs[0]).is_dir():
        if out == STDIO:
            raise click.UsageError("a folder's outputs go into a directory, not standard output")
        if out is not None and Path(out).exists() and not Path(out).is_dir():
            raise click.UsageError(f"-o {out} is a file: a folder's outputs go into a directory")
        if out is not None:
            check_names_a_directory(out, "a folder's outputs")
        if scheduler is not None and jobs is not None:
            raise click.UsageError("--jobs starts local processes; with --scheduler the cluster's workers do the work")
        if scheduler is not None:
            from facecodec.runner.cluster import dask_distributed

            try:
                dask_distributed()
            except FczError as exc:
                raise click.UsageError(f"--scheduler: {exc}") from None
        return Path(inputs[0])
    given = [name for name, value in (("--recursive", recursive), ("--jobs", jobs), ("--batch-size", batch_size),
                                      ("--scheduler", scheduler)) if value]
    if given:
        raise click.UsageError(f"{given[0]} applies to a folder input: fcz encode DIR -o OUT/")
    return None


def run_folder_command(conversion: runner.Conversion, folder: Path, out: str | None, recursive: bool, jobs: int | None,
                batch_size: int | None, scheduler: str | None) -> None:
    """A folder run: one progress bar (on a terminal), each failure and warning listed, a summary; exit 1 if any
    file failed, 130 when interrupted (the files finished are kept: the same command again does the rest)."""
    if conversion.device == "cuda":
        jobs = jobs or 1  # one process feeds the GPU
        if (batch_size or 1) > 1:
            reporting.warn("on CUDA a batch may give files other bytes than encoding each alone (cuDNN picks "
                           "kernels by batch size; not verified): --batch-size 1 for identical files")

    def shown(result: runner.Result) -> str:
        return str(folder / result.job.name)

    terminal = sys.stderr.isatty() and reporting.level() >= reporting.NORMAL
    bar = None

    def started(to_do: int, already: int) -> None:
        nonlocal bar
        bar = click.progressbar(length=to_do, label=f"fcz {conversion.direction}", file=sys.stderr, show_pos=True,
                                hidden=not terminal, item_show_func=lambda name: name)
        bar.__enter__()

    def progress(result: runner.Result) -> None:
        clear = "\r\x1b[K" if terminal else ""  # the bar's line, before a message takes it
        if result.status == runner.ERROR:
            click.echo(f"{clear}error: {shown(result)}: {result.error}", err=True)
        for message in result.warnings:
            reporting.warn(f"{shown(result)}: {message}", before=clear)
        bar.update(1, result.job.name)

    try:
        report = runner.run_folder(conversion, folder, out, recursive=recursive, jobs=jobs,
                                  batch_size=batch_size or 1, threads=threads(), client=scheduler,
                                  progress=progress, started=started)
    except FczError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        if bar is not None:
            bar.__exit__(None, None, None)
            bar = None
        click.echo("error: interrupted; the files finished are kept: run the same command again to do the rest",
                   err=True)
        sys.exit(130)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    if not report.total:
        wanted = ".fcz files" if conversion.direction == "decode" else "images"
        reporting.warn(f"{folder} holds no {wanted} to {conversion.direction}"
                       + (" (-r walks its subfolders too)" if not recursive and any(p.is_dir() for p in folder.iterdir())
                          else ""))
    done = report.converted + report.already
    failed = [str(folder / name) for name, _ in report.failed]
    reporting.say(f"{done} of {report.total} files done"
                  + (f" ({report.already} already there)" if report.already else "")
                  + (f"; failed: {', '.join(failed)}" if failed else "")
                  + (f"; {report.ignored} other file{'s' * (report.ignored != 1)} ignored" if report.ignored else "")
                  + f"; manifest {report.manifest}",
                  err=bool(failed))
    if failed:
        sys.exit(1)

