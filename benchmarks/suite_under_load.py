"""Run the whole test suite many times in a row while other processes keep every core busy.

    python benchmarks/suite_under_load.py                  # 20 runs, one busy process per core
    python benchmarks/suite_under_load.py --runs 5 --busy 1
    python benchmarks/suite_under_load.py -- -x tests/test_batch.py     # arguments after -- go to pytest

Why: the suite must not depend on an idle machine. The kill and Ctrl-C folder tests, the fuzz CPU limits
and every subprocess test are the ones a loaded machine would break if they raced a clock. The busy
processes are plain spinning loops at normal priority, started before the first run and stopped after
the last, so every run competes for every core.

Each run's outcome (exit status, pytest's summary line, seconds) is printed as it ends and written to
``results/suite_under_load.md`` (and ``.json``) with the commit and the machine, so the claim "N runs in
a row pass under load" is read from a file, not from memory. Exit status 1 if any run failed.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

from benchmarks.common import cpu_model  # noqa: E402
SUMMARY_LINE = re.compile(r"^=+ (.*(?:passed|failed|error).*) =+$", re.MULTILINE)


def spin() -> None:
    while True:
        pass


def commit() -> str:
    described = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT,
                               capture_output=True, text=True)
    return described.stdout.strip() or "unknown"


def run_suite(pytest_args: list[str]) -> dict:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *pytest_args],
                          cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    found = SUMMARY_LINE.findall(done.stdout)
    return {"rc": done.returncode, "summary": found[-1] if found else done.stdout[-300:],
            "seconds": round(seconds, 1), "failures": re.findall(r"^(?:FAILED|ERROR) .*$", done.stdout, re.MULTILINE)}


def write_report(out: Path, meta: dict, runs: list[dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "suite_under_load.json").write_text(json.dumps({"meta": meta, "runs": runs}, indent=1) + "\n")
    passed = sum(run["rc"] == 0 for run in runs)
    lines = [f"# The suite under load: {passed} of {len(runs)} runs passed",
             "",
             f"Commit `{meta['commit']}`, {meta['cpus']} CPUs ({meta['cpu']}), {meta['busy']} busy processes "
             f"spinning at normal priority for the whole time, pytest arguments `{' '.join(meta['pytest_args'])}`; "
             f"started {meta['started']}.",
             "",
             "| run | exit | seconds | pytest's summary |",
             "| ---: | ---: | ---: | --- |"]
    lines += [f"| {i} | {run['rc']} | {run['seconds']} | {run['summary']} |" for i, run in enumerate(runs, 1)]
    for i, run in enumerate(runs, 1):
        lines += ["", f"Run {i} failed: " + "; ".join(run["failures"])] if run["failures"] else []
    (out / "suite_under_load.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--busy", type=int, default=os.cpu_count() or 1,
                        help="spinning processes beside the suite (default: one per core)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("pytest_args", nargs="*", help="after --: passed on to pytest")
    args = parser.parse_args(argv)
    meta = {"commit": commit(), "cpus": os.cpu_count(), "cpu": cpu_model(), "busy": args.busy,
            "pytest_args": args.pytest_args, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    spinners = [multiprocessing.Process(target=spin, daemon=True) for _ in range(args.busy)]
    for spinner in spinners:
        spinner.start()
    runs: list[dict] = []
    try:
        for i in range(1, args.runs + 1):
            runs.append(run_suite(args.pytest_args))
            print(f"run {i}/{args.runs}: exit {runs[-1]['rc']}, {runs[-1]['seconds']} s, {runs[-1]['summary']}",
                  flush=True)
            write_report(args.out, meta, runs)
    finally:
        for spinner in spinners:
            spinner.terminate()
    return 0 if all(run["rc"] == 0 for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
