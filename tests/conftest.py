import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def world():
    from sprint_bench.config import load_config

    return load_config(REPO / "experiments" / "base.yaml").world


@pytest.fixture
def micro_cfg():
    from sprint_bench.config import load_config

    return load_config(REPO / "experiments" / "micro.yaml")


@pytest.fixture(scope="module")
def tiny_teacher():
    """(config, teacher): a one-block, width-32 SANA transformer of the default world, random weights (seed 0)."""
    import torch

    from sprint_bench.config import load_config
    from sprint_bench.models.sana import build_sana

    cfg = load_config(REPO / "experiments" / "base.yaml",
                      ["model.width=32", "model.depth=1", "model.heads=2", "model.cross_heads=2"])
    torch.manual_seed(0)
    return cfg, build_sana(cfg.model, 3, cfg.world.resolution).eval()
