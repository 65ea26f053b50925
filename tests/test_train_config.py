"""Training config files: defaults, and rustc-style diagnostics (T001-T005) for bad ones, without tracebacks."""
import subprocess
import sys
from pathlib import Path

import pytest

from fusionlang.train import ConfigError, load_config
from fusionlang.train.config import DataConfig, TrainSettings

ROOT = Path(__file__).resolve().parents[1]


def diagnostic(tmp_path, text):
    path = tmp_path / "run.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    (found,) = caught.value.diagnostics
    return found, str(caught.value)


def test_defaults_and_model_options(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[data]\ndataset = "ethanol"\ntrain_size = 50\n[model]\nname = "mace"\nchannels = 16\n'
                    '[train]\nlr = 1\n')
    config = load_config(path)
    assert config.data.train_size == 50 and config.data.cutoff == DataConfig().cutoff
    assert config.train.lr == 1.0 and isinstance(config.train.lr, float)
    assert config.train.batch_size == TrainSettings().batch_size
    assert config.model_name == "mace" and config.model_options == {"channels": 16}
    assert config.to_dict()["model"] == {"name": "mace", "channels": 16}


@pytest.mark.parametrize("text, code, line, words", [
    ('[data]\ndataset = "ethanol"\n[train]\nbatch_sise = 4\n', "T002", 4, "did you mean `batch_size`"),
    ('[data]\ndataset = "ethanol"\n[trian]\n', "T002", 3, "did you mean `train`"),
    ('[data]\ndataset = "ethanol"\n[train]\nlr = "fast"\n', "T003", 4, "must be float"),
    ('[data]\ndataset = "ethanol"\n[train]\nmax_epochs = 2.5\n', "T003", 4, "must be int"),
    ('[data]\ndataset = "ethanol"\n[train]\noptimizer = "adamm"\n', "T004", 4, "did you mean `adam`"),
    ('[data]\ndataset = "ethanol"\n[train]\nbatch_size = 0\n', "T004", 4, "must be > 0"),
    ('[data]\ndataset = "ethanol"\n[train]\nema_decay = 1.0\n', "T004", 4, "0 <= ema_decay < 1"),
    ('[data\n', "T001", 1, "not a valid TOML file"),
    ('[train]\nlr = 0.1\n', "T005", None, "no training data"),
    ('[data]\ndataset = "ethanol"\ntrain_file = "x.xyz"\n', "T005", 2, "exclude each other"),
])
def test_bad_configs(tmp_path, text, code, line, words):
    found, rendered = diagnostic(tmp_path, text)
    assert found.code == code and words in rendered
    if line is not None:
        assert found.span.line == line and f"run.toml:{line}:" in rendered and "^" in rendered


def test_cli_prints_the_diagnostic_and_exits_1_or_2(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[data]\ndataset = "ethanol"\n[train]\nbatch_sise = 4\n')
    result = subprocess.run([sys.executable, "-m", "fusionlang.train", "--config", str(path)],
                            capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 1
    assert "error[T002]: unknown key `batch_sise` in `[train]`" in result.stderr
    assert "Traceback" not in result.stderr
    missing = subprocess.run([sys.executable, "-m", "fusionlang.train", "--config", str(tmp_path / "none.toml")],
                             capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert missing.returncode == 2 and "error[T001]: cannot read the config file" in missing.stderr
