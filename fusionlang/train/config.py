"""The training configuration: a TOML file with the sections [data], [model], [train] and [output].

Every field, its default and its meaning is listed in docs/training.md.  Bad files get
rustc-style diagnostics (codes T001-T005, docs/training.md#diagnostics), never a traceback.
"""
from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from fusionlang.diagnostics import Diagnostic, FusionError, Span


@dataclass
class DataConfig:
    dataset: str = ""            # a name for fusionlang.data.load_split ("ethanol", "aspirin", "qm9", ...)
    root: str = "data"           # where the named datasets live
    train_file: str = ""         # extended-XYZ files used instead of a named dataset
    valid_file: str = ""
    test_file: str = ""
    train_size: int = 0          # the first N structures of each split (0: all of them)
    valid_size: int = 0
    test_size: int = 0
    cutoff: float = 5.0          # Angstrom, for the neighbour lists and the model


@dataclass
class TrainSettings:
    seed: int = 0
    dtype: str = "float64"
    device: str = "auto"         # "auto" (cuda when there is one), "cpu", "cuda"
    threads: int = 0             # torch intra-op threads per process (0: torch's default)
    batch_size: int = 8          # the global batch: split over the processes under torchrun
    eval_batch_size: int = 32
    max_epochs: int = 100
    max_steps: int = 0           # stop after this many optimizer steps in all (0: no limit)
    max_minutes: float = 0.0     # wall-clock budget of the whole run, resumes included (0: none)
    optimizer: str = "amsgrad"   # "adam", "amsgrad", "adamw", "sgd" (momentum 0.9)
    lr: float = 0.01
    weight_decay: float = 0.0
    energy_weight: float = 1.0   # on the mean squared energy error per atom (eV^2)
    forces_weight: float = 100.0  # on the mean squared force component error ((eV/A)^2)
    scheduler: str = "plateau"   # "plateau", "cosine", "constant"
    warmup_epochs: float = 0.0   # linear warm-up of the learning rate (fractions of an epoch allowed)
    plateau_factor: float = 0.8
    plateau_patience: int = 5
    min_lr: float = 0.0
    ema_decay: float = 0.99      # exponential moving average of the weights (0: off)
    early_stopping_patience: int = 0  # epochs without a better validation loss (0: off)
    grad_clip: float = 10.0      # max gradient norm (0: off)
    progress: bool = True        # tqdm progress bar on the first process


@dataclass
class OutputConfig:
    dir: str = "runs/train"


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model_name: str = "mace"
    model_options: dict = field(default_factory=dict)   # every other key of [model], passed to build_model
    train: TrainSettings = field(default_factory=TrainSettings)
    output: OutputConfig = field(default_factory=OutputConfig)
    path: str = "<config>"

    def to_dict(self) -> dict:
        """The TOML layout as a dict (what load_config reads back); saved in checkpoints and results."""
        return {"data": asdict(self.data), "model": {"name": self.model_name, **self.model_options},
                "train": asdict(self.train), "output": asdict(self.output)}


CHOICES = {
    ("train", "dtype"): ("float32", "float64"),
    ("train", "device"): ("auto", "cpu", "cuda"),
    ("train", "optimizer"): ("adam", "amsgrad", "adamw", "sgd"),
    ("train", "scheduler"): ("plateau", "cosine", "constant"),
}
POSITIVE = {("data", "cutoff"), ("train", "batch_size"), ("train", "eval_batch_size"), ("train", "lr")}
NON_NEGATIVE = {("data", "train_size"), ("data", "valid_size"), ("data", "test_size"), ("train", "threads"),
                ("train", "max_epochs"), ("train", "max_steps"), ("train", "max_minutes"),
                ("train", "weight_decay"), ("train", "energy_weight"), ("train", "forces_weight"),
                ("train", "warmup_epochs"), ("train", "plateau_patience"), ("train", "min_lr"),
                ("train", "early_stopping_patience"), ("train", "grad_clip")}
UNIT_INTERVAL = {("train", "ema_decay"): "0 <= ema_decay < 1", ("train", "plateau_factor"): "0 < plateau_factor <= 1"}
SECTIONS = {"data": DataConfig, "train": TrainSettings, "output": OutputConfig}


class ConfigError(FusionError):
    """A configuration file (or value) that cannot be used; carries a T-coded diagnostic.  `exit_code`
    follows fusionc's: 1 for errors in the file, 2 for a file that cannot be read."""

    exit_code = 1


def _key_span(source: str | None, section: str | None, key: str) -> Span | None:
    """Where `key = ...` is written in `[section]` (or the header itself when key is empty): for the caret."""
    if not source:
        return None
    in_section = section is None
    offset = 0
    for number, line in enumerate(source.splitlines(keepends=True), start=1):
        stripped = line.strip()
        header = re.match(r"\[\s*([A-Za-z0-9_.-]+)\s*\]", stripped)
        if header:
            in_section = header.group(1) == section
            if in_section and not key:
                column = line.index("[") + 1
                return Span(number, column, number, column + len(stripped), offset + column - 1,
                            offset + column - 1 + len(stripped))
        elif in_section and key:
            match = re.match(rf"\s*({re.escape(key)}|\"{re.escape(key)}\")\s*=", line)
            if match:
                column = match.start(1) + 1
                return Span(number, column, number, match.end(1) + 1, offset + column - 1, offset + match.end(1))
        offset += len(line)
    return None


def _error(code: str, message: str, path: str, source: str | None, span: Span | None = None,
           help: str | None = None) -> ConfigError:
    return ConfigError([Diagnostic(code, message, span, help=help, file=path)], source)


def _suggest(name: str, known) -> str | None:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"did you mean `{close[0]}`?" if close else None


def _check_value(section: str, key: str, value, default, path: str, source: str | None):
    span = _key_span(source, section, key)
    expected = type(default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise _error("T003", f"`{section}.{key}` must be {expected.__name__}, found {type(value).__name__}",
                     path, source, span, help=f"the default is {default!r}")
    choices = CHOICES.get((section, key))
    if choices and value not in choices:
        raise _error("T004", f"`{section}.{key}` must be one of {', '.join(map(repr, choices))}, found {value!r}",
                     path, source, span, help=_suggest(value, choices))
    if (section, key) in POSITIVE and not value > 0:
        raise _error("T004", f"`{section}.{key}` must be > 0, found {value!r}", path, source, span)
    if (section, key) in NON_NEGATIVE and value < 0:
        raise _error("T004", f"`{section}.{key}` must be >= 0, found {value!r}", path, source, span)
    if (section, key) == ("train", "ema_decay") and not 0 <= value < 1 or \
            (section, key) == ("train", "plateau_factor") and not 0 < value <= 1:
        raise _error("T004", f"`{section}.{key}` must satisfy {UNIT_INTERVAL[section, key]}, found {value!r}",
                     path, source, span)
    return value


def config_from_dict(raw: dict, path: str = "<config>", source: str | None = None) -> Config:
    """Check a parsed TOML table against the schema and fill in the defaults."""
    known_sections = set(SECTIONS) | {"model"}
    for section, table in raw.items():
        if section not in known_sections:
            raise _error("T002", f"unknown section `[{section}]`", path, source, _key_span(source, section, ""),
                         help=_suggest(section, known_sections) or f"sections: {', '.join(sorted(known_sections))}")
        if not isinstance(table, dict):
            raise _error("T003", f"`{section}` must be a table (`[{section}]`), found {type(table).__name__}",
                         path, source, _key_span(source, None, section))
    config = Config(path=path)
    for section, cls in SECTIONS.items():
        defaults = cls()
        names = {f.name for f in fields(cls)}
        values = {}
        for key, value in raw.get(section, {}).items():
            if key not in names:
                raise _error("T002", f"unknown key `{key}` in `[{section}]`", path, source,
                             _key_span(source, section, key),
                             help=_suggest(key, names) or f"keys of [{section}]: {', '.join(sorted(names))}")
            values[key] = _check_value(section, key, value, getattr(defaults, key), path, source)
        setattr(config, section, cls(**values))
    model = dict(raw.get("model", {}))
    name = model.pop("name", config.model_name)
    if not isinstance(name, str) or not name:
        raise _error("T003", "`model.name` must be a non-empty string", path, source,
                     _key_span(source, "model", "name"))
    config.model_name, config.model_options = name, model
    data = config.data
    if not data.dataset and not data.train_file:
        raise _error("T005", "no training data: set `data.dataset` or `data.train_file`", path, source,
                     _key_span(source, "data", ""),
                     help='e.g. `dataset = "ethanol"` (made by `make data`) or `train_file = "train.xyz"`')
    if data.dataset and (data.train_file or data.valid_file or data.test_file):
        raise _error("T005", "`data.dataset` and `data.*_file` exclude each other", path, source,
                     _key_span(source, "data", "dataset"), help="keep one of them")
    return config


def load_config(path: str | Path) -> Config:
    """Read and check a TOML config file; raises ConfigError with a T-coded diagnostic."""
    path = Path(path)
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as exc:
        error = _error("T001", f"cannot read the config file: {exc.strerror or exc}", str(path), None)
        error.exit_code = 2
        raise error from None
    try:
        raw = tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        where = re.search(r"at line (\d+), column (\d+)", str(exc))
        span = None
        if where:
            line, column = int(where.group(1)), int(where.group(2))
            span = Span(line, column, line, column + 1)
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise _error("T001", f"not a valid TOML file: {message}", str(path), source, span) from None
    return config_from_dict(raw, str(path), source)
