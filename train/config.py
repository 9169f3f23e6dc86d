"""The one schema of a training config (``train/configs/*.toml``), parsed and checked in one place.

    config = load_config("train/configs/theis_c24.toml")
    config.stage1.steps, config.data.train, config.build_model()

Both trainers, export and the series read configs only through ``load_config``.
Every table and key is listed in the dataclasses below; a key that is not
(a typo such as ``lr_fnal``), a missing one or a value of the wrong type is a
``ConfigError`` that names it. Keys only one trainer uses are optional here and
checked by that trainer (``Config.require``): ``lambdas`` and
``clip_grad_norm`` by train_rd.py, ``calibration_images`` and stage 2's
``bits`` by train.py.

A config looks like this (``[model]`` holds the keyword arguments of the
architecture's constructor, facecodec.models)::

    name = "theis-c24"          # run folder: RUNS_DIR/NAME
    architecture = "theis"      # facecodec.models.ARCHITECTURES
    seed = 1
    lambdas = [...]             # optional: rate-distortion weights, one per quality level
    init_weights = "wavelet-v0" # optional: installed weights the run starts from (a post-filter run: no [stage1])

    [model]
    channels = 24

    [data]
    train = "../shared/data/faces/train"
    val = "../shared/data/faces/val"
    val_images = 100
    calibration_images = 500    # optional

    [stage1]                    # and [stage2], the same keys; a trainer names the stages it needs
    steps = 8000
    batch_size = 16
    crop = 64
    max_scale = 2.0
    lr = 2e-3
    lr_final = 1e-4
    eval_every = 500
    clip_grad_norm = 1.0        # optional
    bits = 6                    # optional (stage 2 of train.py)
    weight_decay = 1e-5         # optional (train_restore.py)
    precision = "bf16"          # optional (train_restore.py)
"""
from __future__ import annotations

import dataclasses
import inspect
from contextlib import contextmanager
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

# Where runs (checkpoints, logs, the decoded-image cache) and exported weights go by default:
# relative to the directory the command runs in, i.e. the checkout when run from its root.
DEFAULT_RUNS_DIR = Path("train") / "runs"
DEFAULT_WEIGHTS_DIR = Path("weights")


class TrainingError(Exception):
    """Something the user can fix (a config, a data folder, a stage not run yet): reported in one line."""


class ConfigError(TrainingError):
    """A config that does not fit the schema, or names data that is not there."""


@contextmanager
def user_errors() -> Iterator[None]:
    """For the commands' main(): a TrainingError exits with its one-line message (status 1), no traceback."""
    try:
        yield
    except TrainingError as e:
        raise SystemExit(f"error: {e}") from None


@dataclass(frozen=True)
class DataConfig:
    """Image folders (every image the same size, RGB).

    Relative ``train`` and ``val`` paths count from the directory the command
    runs in (the checkout's root in the README's commands), not from the config
    file: the same config then works for any checkout beside the same data.
    ``load_config`` stores them resolved to absolute paths.
    """

    train: Path
    val: Path
    val_images: int                        # whole validation images scored at each evaluation
    calibration_images: int | None = None  # train.py: training images that re-measure batch-norm statistics


@dataclass(frozen=True)
class StageConfig:
    """One training stage: its step budget, crops, learning-rate schedule and evaluations."""

    steps: int
    batch_size: int
    crop: int                            # training crops are crop x crop pixels
    max_scale: float                     # scale jitter: squares of crop .. crop * max_scale resized to crop
    lr: float
    lr_final: float                      # cosine decay to this
    eval_every: int                      # evaluate, log and checkpoint every this many steps
    clip_grad_norm: float | None = None  # train_rd.py
    bits: int | None = None              # train.py stage 2: quantizer bit depth (--bits overrides it)
    weight_decay: float | None = None    # train_restore.py: Adam's L2 weight decay
    precision: str | None = None         # train_restore.py: "bf16" (CPU autocast) or "fp32"
    conditions: dict[str, float] | None = None  # train_restore.py: how often each condition is drawn (default: equally)


@dataclass(frozen=True)
class Config:
    """A whole config file; ``path`` is the file it came from (absolute)."""

    name: str
    architecture: str
    seed: int
    model: dict[str, Any]
    data: DataConfig
    stage1: StageConfig | None = None     # the wavelet family's post-filter config has only [stage2]
    stage2: StageConfig | None = None
    lambdas: tuple[float, ...] | None = None
    init_weights: str | None = None       # train_postfilter.py, train_restore.py: installed weights a run starts from
    path: Path = field(default=Path(), compare=False)

    def stage(self, number: int) -> StageConfig:
        found = {1: self.stage1, 2: self.stage2}[number]
        if found is None:
            raise ConfigError(f"{self.path}: this config has no [stage{number}]")
        return found

    def build_model(self):
        """A freshly initialised network of this config's architecture and [model] options."""
        from facecodec.models import build_model

        return build_model(self.architecture, **self.model)

    def require(self, *keys: str, by: str) -> None:
        """ConfigError unless every dotted key (``"lambdas"``, ``"stage2.bits"``) has a value; ``by`` names who needs it."""
        for key in keys:
            value: Any = self
            for part in key.split("."):
                value = getattr(value, part)
            if value is None:
                raise ConfigError(f"{self.path}: {by} needs `{key}`, which this config does not set")


def load_config(path: str | Path, base: str | Path | None = None, check_data: bool = True) -> Config:
    """Read and check a config; relative data paths are resolved against ``base`` (default: the current directory).

    With ``check_data``, a data folder that does not exist is a ConfigError.
    """
    path = Path(path).resolve()
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"no config file {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    config = _build(Config, raw, "", path)
    base = Path.cwd() if base is None else Path(base)
    data = dataclasses.replace(config.data, train=(base / config.data.train).resolve(),
                               val=(base / config.data.val).resolve())
    config = dataclasses.replace(config, data=data, path=path)
    _check_model(config)
    if config.lambdas is not None and not config.lambdas:
        raise ConfigError(f"{path}: `lambdas` is empty")
    for key in ("data.val_images", "data.calibration_images", *(f"stage{n}.{k}" for n in (1, 2) for k in
                ("steps", "batch_size", "crop", "eval_every", "bits"))):
        section, name = key.split(".")
        value = getattr(getattr(config, section), name, None)
        if value is not None and value < 1:
            raise ConfigError(f"{path}: `{key}` must be at least 1, got {value}")
    if check_data:
        for key in ("train", "val"):
            folder = getattr(config.data, key)
            if not folder.is_dir():
                raise ConfigError(f"{path}: data folder `data.{key}` = {folder} does not exist "
                                  f"(relative data paths count from the current directory, {base.resolve()})")
    return config


def _check_model(config: Config) -> None:
    from facecodec.models import ARCHITECTURES, architecture

    try:
        cls = architecture(config.architecture)
    except ValueError:
        raise ConfigError(f"{config.path}: unknown `architecture` {config.architecture!r}; "
                          f"known: {', '.join(ARCHITECTURES)}") from None
    parameters = inspect.signature(cls.__init__).parameters
    for key in config.model:
        if key == "self" or key not in parameters:
            options = ", ".join(p for p in parameters if p != "self")
            raise ConfigError(f"{config.path}: unknown key `model.{key}` for architecture "
                              f"{config.architecture!r} (it takes: {options})")


def _build(cls: type, raw: Any, prefix: str, path: Path) -> Any:
    """A dataclass from a TOML table, naming any unknown, missing or mistyped key."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: `{prefix.rstrip('.')}` must be a table")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "path"}
    for key in raw:
        if key not in fields:
            where = f" in [{prefix.rstrip('.')}]" if prefix else ""
            raise ConfigError(f"{path}: unknown key `{prefix}{key}`{where}; known keys: {', '.join(fields)}")
    values = {}
    for name, f in fields.items():
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{path}: missing key `{prefix}{name}`")
            continue
        values[name] = _convert(raw[name], hints[name], f"{prefix}{name}", path)
    return cls(**values)


def _convert(value: Any, hint: Any, key: str, path: Path) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):  # "X | None": None only ever comes from the default
        return _convert(value, next(a for a in args if a is not type(None)), key, path)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, f"{key}.", path)

    def wrong(expected: str) -> ConfigError:
        return ConfigError(f"{path}: `{key}` must be {expected}, got {value!r}")

    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("an integer")
        if value < 0:
            raise wrong("an integer >= 0")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong("a number")
        return float(value)
    if hint in (str, Path):
        if not isinstance(value, str):
            raise wrong("a string")
        return hint(value)
    if origin is tuple:
        if not isinstance(value, list):
            raise wrong("a list of numbers")
        return tuple(_convert(v, args[0], f"{key}[{i}]", path) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise wrong("a table")
        return dict(value)
    raise TypeError(f"no conversion for {hint}")  # a field type this module does not know yet
