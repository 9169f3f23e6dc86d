"""Mutation check: break the library on purpose, one way at a time, and show that a test turns red each time.

    python benchmarks/mutation_check.py                 # every mutation; exit 1 if any survived
    python benchmarks/mutation_check.py --list          # the mutations, no runs
    python benchmarks/mutation_check.py flags pad       # only these (names from --list)
    python benchmarks/mutation_check.py --baseline      # first run each mutation's tests unmutated: they must pass
    python benchmarks/mutation_check.py --exclude tests/test_coder_pins.py    # what would catch them without it

The checkout (``git ls-files``: tracked files and untracked ones git does not ignore, as they are in the
working tree now) is copied to a scratch folder; each mutation there replaces one exact piece of source
text (it must occur exactly once), runs pytest on the mutation's tests in the scratch folder, and restores
the file. A mutation is "killed" when a test fails, and "SURVIVED" when every test passes: then no test
would see that bug. The tests run with ``-x`` (stop at the first failure), so a killed mutation costs little;
the test that failed is then run again on the unmutated copy, where it must pass (else no kill is claimed).

The scratch copy's own package is imported, not the editable install of this checkout: the installed
package maps ``facecodec.bitstream``, ``.train`` and ``.weights`` onto the top-level folders (setup.cfg,
package_dir), so the scratch ``facecodec/`` gets links to its own copies of them, and pytest (which puts
the scratch root first on sys.path, setup.cfg's ``pythonpath = .``) finds everything there before the
editable finder is asked. A check test written into the scratch copy proves it, and its path is printed.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAPPED = {"bitstream": "bitstream", "train": "train", "weights": "weights"}   # facecodec.<name> -> folder
FORMAT_TESTS = ["tests/test_format_rules.py", "tests/test_bitstream.py", "tests/test_fuzz.py"]
CODER_TESTS = ["tests/test_coder_pins.py", "tests/test_wavelet_tiles.py", "tests/test_wavelet_family.py"]


@dataclass(frozen=True)
class Mutation:
    name: str
    what: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


MUTATIONS = [
    Mutation("flags", "the reader accepts any flags byte (FORMAT.md: the flags each version may have)",
             "bitstream/container.py", "if version < 1 or flags not in allowed_flags:", "if version < 1:",
             tuple(FORMAT_TESTS)),
    Mutation("pad", "padding as large as the model's stride is accepted (zoo.WeightsSpec.table)",
             "facecodec/zoo.py", "if header.pad_right >= self.stride or header.pad_bottom >= self.stride:",
             "if False:", tuple(FORMAT_TESTS)),
    Mutation("payload-words", "a payload length that is not a multiple of 4 is accepted",
             "bitstream/container.py", "if payload_length > header.max_payload_length() or payload_length % 4:",
             "if payload_length > header.max_payload_length():", tuple(FORMAT_TESTS)),
    Mutation("weights-id", "the reader's own weights-id check is gone (only FczHeader.validate's is left)",
             "bitstream/container.py", "if not WEIGHTS_ID.fullmatch(raw_id):", "if False:", tuple(FORMAT_TESTS)),
    Mutation("restore-denoise", "every restoration task but denoise and inpaint runs the denoise network",
             "facecodec/restoration.py", "    condition = condition_of(task, scale)\n    weights = load(",
             '    condition = condition_of(task, scale) if task in ("denoise", "inpaint") else "denoise"\n'
             "    weights = load(", ("tests/test_restore.py",)),
    Mutation("coarse-steps", "the default codec's quantization steps 2.5 times coarser (about 8 dB worse)",
             "facecodec/families/wavelet.py", "return wavelet.steps_at(model.steps, self.level(setting))",
             "return 2.5 * wavelet.steps_at(model.steps, self.level(setting))",
             ("tests/test_codec.py", "tests/test_conformance.py")),
    Mutation("bucket-edge", "an activity equal to a context threshold falls one bucket lower (encoder and decoder)",
             "bitstream/contexts.py", 'return np.searchsorted(self.thresholds[key], activity, side="right")',
             'return np.searchsorted(self.thresholds[key], activity, side="left")', tuple(CODER_TESTS)),
    Mutation("sign-vote-edge", "scheme 2: a sign vote equal to a sign threshold gets the weaker sign context",
             "bitstream/contexts.py",
             'np.arange(SIGN_FEATURES * MAX_SIGN_WEIGHT + 1),\n                                         side="right")',
             'np.arange(SIGN_FEATURES * MAX_SIGN_WEIGHT + 1),\n                                         side="left")',
             tuple(CODER_TESTS)),
    Mutation("neighbour-feature", "feature 6 leaves out one of the 4 decoded neighbours (encoder and decoder)",
             "bitstream/wavelet_payload.py", "group[6] = near[0] + near[1] + near[2] + near[3]",
             "group[6] = near[0] + near[1] + near[2]", tuple(CODER_TESTS)),
    Mutation("exact-tables", "the per-channel coder builds its models with perfect=True (encoder and decoder)",
             "bitstream/entropy.py", "Categorical(counts.astype(np.float64), perfect=False)",
             "Categorical(counts.astype(np.float64), perfect=True)",
             ("tests/test_coder_pins.py", "tests/test_bitstream.py", "tests/test_codec.py")),
    Mutation("rdoq-candidates", "the encoder search no longer weighs one step nearer zero",
             "facecodec/rdoq.py",
             "np.abs(values_chosen), np.maximum(np.abs(values_chosen) - 1, 0),\n",
             "np.abs(values_chosen),\n",
             ("tests/test_coder_pins.py", "tests/test_wavelet_family.py", "tests/test_conformance.py")),
    Mutation("lepton-sections", "the decoder no longer checks the lengths inside Lepton's header before Lepton",
             "facecodec/jpeg_file.py", "        if pos > len(header):\n", "        if False:\n",
             ("tests/test_jpeg_file.py", "tests/test_format_rules.py")),
    Mutation("jpeg-pixels", "a JPEG is kept whatever it decodes to (an EXIF-turned one comes back unturned)",
             "facecodec/jpeg_file.py", "    return data if same else None", "    return data",
             ("tests/test_jpeg_file.py",)),
]

IMPORT_CHECK = '''
import facecodec, facecodec.bitstream.container, facecodec.zoo, facecodec.weights

def test_the_scratch_copy_is_imported():
    for module in (facecodec, facecodec.bitstream.container, facecodec.zoo, facecodec.weights):
        path = module.__file__
        assert path.startswith({root!r}), path
        print("IMPORTED", module.__name__, "from", path)
'''


def checkout_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                            check=True, capture_output=True).stdout.decode().split("\0")
    return [name for name in listed if name and (ROOT / name).is_file()]   # not those deleted in the work tree


def make_scratch(scratch: Path) -> None:
    for name in checkout_files():
        target = scratch / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    for name, folder in MAPPED.items():   # the installed layout: facecodec.bitstream is bitstream/, ...
        link = scratch / "facecodec" / name
        if not link.exists():
            link.symlink_to(Path("..") / folder, target_is_directory=True)


def environment(scratch: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(scratch) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"   # no .pyc of a mutated module outlives its mutation
    env["COLUMNS"] = "240"                 # pytest's short summary keeps the failure's reason
    return env


def pytest(scratch: Path, tests: list[str], timeout: float, stop_first: bool = True, show: bool = False
           ) -> tuple[int, str]:
    # -n 0: in one process, since setup.cfg's -n auto would make pytest-xdist end a -x run as "interrupted"
    # (exit 2), which no kill is claimed on
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rf", "--no-header", "-n", "0",
               *(["-x"] if stop_first else []), *(["-s"] if show else []), *tests]
    try:
        done = subprocess.run(command, cwd=scratch, env=environment(scratch), capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, "timed out"
    return done.returncode, done.stdout + done.stderr


def failed_tests(output: str) -> list[str]:
    """The short summary's failed tests, each with the start of its reason."""
    return [line.split(" ", 1)[1][:240] for line in output.splitlines() if line.startswith(("FAILED ", "ERROR "))]


def failed_ids(output: str) -> list[str]:
    return re.findall(r"^(?:FAILED|ERROR) (.+?)(?: - .*)?$", output, flags=re.MULTILINE)


def summary(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if re.search(r"\d+ (passed|failed|error)", line)]
    return lines[-1].strip("= ") if lines else output.strip().splitlines()[-1] if output.strip() else ""


def check_imports(scratch: Path) -> None:
    check = scratch / "tests" / "test_zz_mutation_import_check.py"
    check.write_text(IMPORT_CHECK.format(root=str(scratch)))
    code, output = pytest(scratch, [str(check.relative_to(scratch))], timeout=300, show=True)
    check.unlink()
    for line in output.splitlines():
        if line.startswith("IMPORTED"):
            print("   ", line)
    if code != 0:
        print(output)
        sys.exit("the scratch copy's package is not the one imported: no mutation would be seen")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="mutations to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--baseline", action="store_true", help="run each mutation's tests unmutated first")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per pytest run (default 1800)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--exclude", action="append", default=[], metavar="TEST_FILE",
                        help="leave this test file out of every mutation's tests (to see what else would catch it)")
    args = parser.parse_args()
    known = {m.name: m for m in MUTATIONS}
    if args.list:
        for m in MUTATIONS:
            print(f"{m.name:18} {m.path}: {m.what}\n{'':18} tests: {' '.join(m.tests)}")
        return
    unknown = [name for name in args.names if name not in known]
    if unknown:
        parser.error(f"unknown mutations {unknown}; --list shows them")
    chosen = [known[name] for name in args.names] or MUTATIONS
    chosen = [replace(m, tests=tuple(t for t in m.tests if t not in args.exclude)) for m in chosen]

    for m in chosen:   # every mutation must apply to this checkout exactly once, before anything runs
        count = (ROOT / m.path).read_text().count(m.old)
        if count != 1:
            sys.exit(f"mutation {m.name}: its text occurs {count} times in {m.path}, not once; update it")

    scratch = Path(tempfile.mkdtemp(prefix="fcz-mutants-"))
    try:
        make_scratch(scratch)
        print(f"scratch copy: {scratch} ({len(checkout_files())} files)")
        check_imports(scratch)
        survived = []
        for m in chosen:
            start = time.monotonic()
            if args.baseline:
                code, output = pytest(scratch, list(m.tests), args.timeout, stop_first=False)
                if code != 0:
                    print(f"{m.name:18} BASELINE RED: {' '.join(m.tests)} fail unmutated ({summary(output)}); "
                          f"{', '.join(failed_tests(output)) or output[-2000:]}")
                    survived.append(m.name)
                    continue
            source = scratch / m.path
            original = source.read_text()
            source.write_text(original.replace(m.old, m.new))
            try:
                code, output = pytest(scratch, list(m.tests), args.timeout)
            finally:
                source.write_text(original)
            if code == 1:   # the tests that failed must pass on the unmutated copy, or the kill proves nothing
                recheck, recheck_output = pytest(scratch, failed_ids(output), args.timeout, stop_first=False)
                if recheck != 0:
                    code = "red unmutated too"
                    output = recheck_output
            seconds = time.monotonic() - start
            if code == 1:
                print(f"{m.name:18} killed   ({seconds:5.0f} s) {m.what}\n{'':18} red: {'; '.join(failed_tests(output))}")
            elif code == 0:
                survived.append(m.name)
                print(f"{m.name:18} SURVIVED ({seconds:5.0f} s) {m.what}\n{'':18} green: {' '.join(m.tests)} "
                      f"({summary(output)})")
            else:   # collection errors, a crash, a timeout: no test said red, so no kill is claimed
                survived.append(m.name)
                print(f"{m.name:18} SURVIVED ({seconds:5.0f} s) {m.what}\n{'':18} no kill claimed (pytest: {code}): "
                      f"{summary(output)}\n{output[-3000:]}")
        print(f"{len(chosen) - len(survived)} of {len(chosen)} mutations killed"
              + (f"; survived: {', '.join(survived)}" if survived else ""))
        sys.exit(1 if survived else 0)
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
