"""What starting fcz costs: help and header reading open no weights file and import no torch; a decode reads only
the tensors its file needs."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from skimage import data

import facecodec
from facecodec import zoo

PROBE = """
import sys
opened = []
sys.addaudithook(lambda event, args: event == "open" and str(args[0]).endswith(".safetensors") and opened.append(args[0]))
from facecodec.cli import main
try:
    main({args!r})
except SystemExit:
    pass
print("OPENED", opened, "TORCH", "torch" in sys.modules)
"""


@pytest.mark.parametrize("args", [["--help"], ["encode", "--help"], ["decode", "--help"], ["info", "--help"]])
def test_help_reads_no_weights_and_imports_no_torch(args):
    out = subprocess.run([sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True,
                         check=True).stdout
    assert "OPENED [] TORCH False" in out, out
    if args == ["encode", "--help"]:  # the quality range still comes from the installed weights' manifest
        words = " ".join(out.split())
        assert "up to 100 with the default weights" in words and "Default: wavelet-v2." in words


def test_a_decode_reads_the_tables_of_its_own_level_alone(monkeypatch):
    """wavelet-v2's file holds context tables for 8 levels (6 MB); a decode that read them all took 7 ms more."""
    read: list[str] = []

    class Recording:   # safetensors' file handle, noting each tensor read
        def __init__(self, *args, **kwargs):
            self.file = open_file(*args, **kwargs)

        def keys(self):
            return self.file.keys()

        def get_tensor(self, name):
            read.append(name)
            return self.file.get_tensor(name)

    open_file = zoo.safe_open
    monkeypatch.setattr(zoo, "safe_open", Recording)
    try:
        face = np.ascontiguousarray(data.astronaut()[:96:2, 160:256:2])
        coded = facecodec.encode(face, quality=50)
        zoo.clear_caches()
        read.clear()
        assert np.asarray(facecodec.decode(coded)).shape == face.shape
        levels = {name.split(".")[1] for name in read if name.startswith(zoo.ENTROPY_PREFIX)}
        assert levels == {"quality5"}, sorted(read)
    finally:
        zoo.clear_caches()   # no handle made by Recording outlives the test
