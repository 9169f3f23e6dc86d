from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from skimage.data import astronaut

from facecodec.cli import main


@pytest.fixture(scope="session")
def face() -> np.ndarray:
    """The astronaut's face: a 160x144 RGB crop of scikit-image's portrait (odd multiple of 8 on purpose)."""
    return astronaut()[20:180, 150:294].copy()


@pytest.fixture(scope="session")
def odd_face() -> np.ndarray:
    """A size that is not a multiple of 8 on either side, to exercise padding and cropping."""
    return astronaut()[30:131, 170:267].copy()


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture()
def face_png(face, tmp_path) -> Path:
    path = tmp_path / "face.png"
    Image.fromarray(face).save(path)
    return path


@pytest.fixture()
def face_fcz(runner, face_png) -> Path:
    """face.png encoded by `fcz encode` at the default setting, beside it."""
    result = runner.invoke(main, ["encode", str(face_png)])
    assert result.exit_code == 0, result.output
    return face_png.with_suffix(".fcz")
