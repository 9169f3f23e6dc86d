from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch
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


@pytest.fixture()
def face_folder(tmp_path) -> Path:
    """A folder for folder runs (``fcz encode DIR``): small crops of the astronaut, so each file takes milliseconds.

    faces/a.png, b.png, c.jpg, d.png (48x48: one batch), e.png (64x32), sub/f.png (48x48), sub/deeper/g.png
    (40x30: padded to 48x32), plus a text file and a hidden file that a walk must leave alone.
    """
    picture = astronaut()
    root = tmp_path / "faces"
    (root / "sub" / "deeper").mkdir(parents=True)
    crops = {"a.png": (0, 150, 48, 48), "b.png": (20, 170, 48, 48), "c.jpg": (40, 190, 48, 48),
             "d.png": (60, 160, 48, 48), "e.png": (30, 200, 32, 64), "sub/f.png": (80, 180, 48, 48),
             "sub/deeper/g.png": (10, 210, 30, 40)}
    for name, (top, left, height, width) in crops.items():
        Image.fromarray(picture[top:top + height, left:left + width]).save(root / name)
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden.png").write_bytes((root / "a.png").read_bytes())
    return root


@pytest.fixture(scope="session")
def dask_client(request):
    """A Dask client on a LocalCluster of 2 worker processes with one thread each (about 5 s to start).

    Skips when dask.distributed is missing (it comes with the test extra and facecodec[cluster]).
    """
    distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed: "
                                                            "pip install -e '.[cluster]'")
    import logging

    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                       silence_logs=logging.ERROR)
    request.addfinalizer(cluster.close)
    client = distributed.Client(cluster)
    request.addfinalizer(client.close)  # finalisers run last-in first-out: the client closes before its cluster
    return client


@pytest.fixture(scope="session")
def write_tiny_faces():
    """Writes data/train (6 crops of the astronaut, 64x64) and data/val (2) under a folder: a training set in seconds."""
    def write(root: Path) -> None:
        picture = astronaut()
        for folder, corners in (("train", [(0, 120), (20, 150), (40, 170), (60, 140), (10, 200), (80, 160)]),
                                ("val", [(30, 160), (50, 180)])):
            (root / "data" / folder).mkdir(parents=True)
            for i, (top, left) in enumerate(corners):
                Image.fromarray(picture[top:top + 64, left:left + 64]).save(root / "data" / folder / f"{i}.png")
    return write


@pytest.fixture()
def keep_torch_threads():
    """Training sets torch's thread count; put it back for the tests that follow."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def forged_checksums(monkeypatch):
    """The installed manifest with every SHA-256 replaced, as if every weights file were damaged; caches cleared."""
    from facecodec import zoo

    real = zoo.manifest()
    forged = {**real, "weights": [{**e, "sha256": "0" * 64} for e in real["weights"]]}
    # cached like the real one, whose cache zoo.clear_caches forgets
    monkeypatch.setattr(zoo, "manifest", functools.lru_cache(maxsize=1)(lambda: forged))
    zoo.clear_caches()
    yield
    zoo.clear_caches()
