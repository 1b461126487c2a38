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
