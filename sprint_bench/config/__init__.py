"""Experiment configuration: YAML files with ``base:`` inheritance and dotted
command-line overrides, validated into a typed dataclass schema.

    cfg = load_config("experiments/micro.yaml", ["model.depth=2"])
"""
from .load import config_hash, from_dict, load_config, run_name, to_dict
from .schema import ConfigError, ExperimentConfig

__all__ = ["load_config", "ConfigError", "ExperimentConfig", "config_hash", "run_name", "to_dict", "from_dict"]
