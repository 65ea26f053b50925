"""Training of energy/force models on molecular data (docs/training.md).

    python -m fusionlang.train --config run.toml [--resume] [--out DIR]
    torchrun --nproc_per_node=K -m fusionlang.train --config run.toml      # the same, data-parallel
"""
from .config import Config, ConfigError, config_from_dict, load_config
from .evaluate import EnergyAndForces, evaluate
from .state import LearningRate, WeightAverage, epoch_batches
from .trainer import Trainer, TrainingError, build, count_parameters, train

__all__ = ["Config", "ConfigError", "config_from_dict", "load_config", "EnergyAndForces", "evaluate",
           "LearningRate", "WeightAverage", "epoch_batches", "Trainer", "TrainingError", "build",
           "count_parameters", "train"]
