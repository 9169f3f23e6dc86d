from __future__ import annotations

import numpy as np
import pytest
from skimage.data import astronaut


@pytest.fixture(scope="session")
def face() -> np.ndarray:
    """The astronaut's face: a 160x144 RGB crop of scikit-image's portrait (odd multiple of 8 on purpose)."""
    return astronaut()[20:180, 150:294].copy()


@pytest.fixture(scope="session")
def odd_face() -> np.ndarray:
    """A size that is not a multiple of 8 on either side, to exercise padding and cropping."""
    return astronaut()[30:131, 170:267].copy()
