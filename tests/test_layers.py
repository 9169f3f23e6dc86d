"""The layer contract: every facecodec module imports only from its own layer or the layers below it.

Layers, top to bottom, by import name (so ``facecodec.bitstream`` and ``facecodec.train``, whose folders sit at
the top of the repository, are covered across setup.cfg's package_dir mapping). Lazy imports inside functions
count as much as those at the top of a module: they run too.
"""
from __future__ import annotations

import ast
import configparser
import importlib
import importlib.util
import pkgutil
from pathlib import Path

import pytest

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("training and table building", ("facecodec.train",)),
    ("command line", ("facecodec.cli",)),
    ("runner, restoration, comparison, the Python API", ("facecodec", "facecodec.runner", "facecodec.restoration",
                                                         "facecodec.compare", "facecodec.pillow_plugin")),
    ("codec: families, rate control, weights", ("facecodec.codec", "facecodec.families", "facecodec.zoo",
                                                "facecodec.ratecontrol", "facecodec.reading", "facecodec.rdoq")),
    ("models: networks, transforms, tensors", ("facecodec.models", "facecodec.numerics", "facecodec.tensors",
                                               "facecodec.arrays", "facecodec.batching", "facecodec.devices")),
    ("images, files, messages, metrics", ("facecodec.image_io", "facecodec.files", "facecodec.messages",
                                          "facecodec.metrics", "facecodec.damage", "facecodec.classical",
                                          "facecodec.metadata", "facecodec.jpeg_lattice", "facecodec.jpeg_file",
                                          "facecodec.jpeg_rebuild")),
    ("format: numpy only", ("facecodec.bitstream",)),
    ("data", ("facecodec.weights",)),
]


def layer_of(module: str) -> int:
    """The index in LAYERS of ``module``'s layer: its longest matching prefix; KeyError if it has none."""
    best = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[1]):
                best = index, len(prefix)
    if best is None:
        raise KeyError(f"{module} is in no layer: add it to LAYERS in {__file__}")
    return best[0]


def modules() -> dict[str, Path]:
    """Every module of the installed package, by import name, with its file. The packages come from setup.cfg, as
    setuptools installs them: a walk of facecodec/ alone would miss the folders mapped into it."""
    setup = configparser.ConfigParser()
    setup.read(Path(__file__).parents[1] / "setup.cfg")
    found = {}
    for package in setup["options"]["packages"].split():
        found[package] = Path(importlib.util.find_spec(package).origin)
        for info in pkgutil.iter_modules(importlib.import_module(package).__path__, package + "."):
            if not info.ispkg:
                found[info.name] = Path(importlib.util.find_spec(info.name).origin)
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The facecodec modules ``name`` (at ``path``) imports, anywhere in its code."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            for alias in node.names:  # ``from facecodec import zoo`` imports the module facecodec.zoo
                targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {t for t in targets if t == "facecodec" or t.startswith("facecodec.")}


def violations(found: dict[str, Path]) -> list[str]:
    known = set(found)
    wrong = []
    for name, path in sorted(found.items()):
        for target in sorted(imports_of(name, path, known)):
            if layer_of(target) < layer_of(name):
                wrong.append(f"{name} ({LAYERS[layer_of(name)][0]}) imports {target} "
                             f"({LAYERS[layer_of(target)][0]}), a layer above it")
    return wrong


def test_every_module_has_a_layer_and_the_mapped_folders_are_seen():
    found = modules()
    assert {"facecodec.bitstream.container", "facecodec.train.train", "facecodec.models.wavelet_transform",
            "facecodec.cli.commands", "facecodec.runner.folder"} <= set(found)
    for name in found:
        layer_of(name)


def test_imports_point_down_the_layers():
    assert violations(modules()) == []


def test_an_import_up_the_layers_is_caught(tmp_path):
    """The check itself fails when broken: a model module that imports the codec, and the format layer importing
    torch-side code, are both reported."""
    found = modules()
    model = tmp_path / "bad_model.py"
    model.write_text("import torch\n\ndef f():\n    from facecodec.codec import encode\n")
    fmt = tmp_path / "bad_format.py"
    fmt.write_text("from ..models import tiling\n")
    found["facecodec.models.bad_model"] = model
    found["facecodec.bitstream.bad_format"] = fmt
    wrong = violations(found)
    assert any(w.startswith("facecodec.models.bad_model ") and "imports facecodec.codec" in w for w in wrong)
    assert any(w.startswith("facecodec.bitstream.bad_format ") and "imports facecodec.models.tiling" in w
               for w in wrong)


@pytest.mark.parametrize("top", ["facecodec.models", "facecodec.bitstream"])
def test_lower_layers_never_import_training(top):
    found = modules()
    for name, path in found.items():
        if name.startswith(top):
            assert not any(t.startswith("facecodec.train") for t in imports_of(name, path, set(found))), name
