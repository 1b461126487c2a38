"""Helper for test_distill.py: two distillation steps under Lightning DDP (2 CPU processes, gloo); each rank saves
its student + discriminator parameters. Lightning's launcher re-runs this script for rank 1. Further arguments are
config overrides."""
import json
import sys
from pathlib import Path

import lightning as L
import torch

from sprint_bench.config import load_config
from sprint_bench.lit.train_distill import train_distill
from tests.integration.test_distill import MICRO, REPO

out, teacher, extra = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]


class Dump(L.Callback):
    def _params(self, pl_module):
        state = {f"student.{k}": v.detach().clone() for k, v in pl_module.student.state_dict().items()}
        state.update({f"disc.{k}": v.detach().clone() for k, v in pl_module.disc.state_dict().items()})
        return state

    def on_train_start(self, trainer, pl_module):
        if trainer.global_rank == 0:
            torch.save(self._params(pl_module), out / "params_init.pt")

    def on_train_end(self, trainer, pl_module):
        torch.save(self._params(pl_module), out / f"params_rank{trainer.global_rank}.pt")
        compiled = {n: c.compiled for n, c in pl_module.__dict__.get("_compiled", {}).items()}
        (out / f"compiled_rank{trainer.global_rank}.json").write_text(json.dumps(compiled))


cfg = load_config(REPO / "experiments/sprint/hybrid.yaml",
                  MICRO + [f"distill.teacher={teacher}", f"output_dir={out}", "train.max_steps=2",
                           "train.strategy=ddp", "train.devices=2",
                           f"tracking.tracking_uri=sqlite:///{out / 'mlflow.db'}", *extra])
train_distill(cfg, extra_callbacks=[Dump()])
