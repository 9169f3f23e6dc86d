"""What starting fcz costs: help and header reading open no weights file and import no torch."""
from __future__ import annotations

import subprocess
import sys

import pytest

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
