"""Training callbacks: a step progress bar with ETA and periodic sample grids logged to MLflow."""
from __future__ import annotations

import lightning as L
import numpy as np
import torch
from tqdm.auto import tqdm

from sprint_bench.data.datamodule import to_uint8
from sprint_bench.eval.grid import image_grid, upscaled


class StepProgress(L.Callback):
    """tqdm bar over global steps (0..max_steps, starting where a resumed run left off), with loss and ETA."""

    def __init__(self):
        self.bar = None

    def on_train_start(self, trainer, pl_module):
        self.bar = tqdm(total=trainer.max_steps, initial=trainer.global_step, desc="train", unit="step",
                        dynamic_ncols=True, mininterval=1.0)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.bar.update(trainer.global_step - self.bar.n)
        loss = trainer.callback_metrics.get("train/loss")
        if loss is not None and trainer.global_step % 10 == 0:
            self.bar.set_postfix(loss=f"{float(loss):.4f}", refresh=False)

    def on_train_end(self, trainer, pl_module):
        if self.bar is not None:
            self.bar.close()


class SampleGrid(L.Callback):
    """Every ``every`` steps (and at the end): sample fixed prompts with fixed noise, log a PNG grid to MLflow."""

    def __init__(self, caption_ids: torch.Tensor, every: int, steps: int, cfg_scale: float, seed: int = 0):
        self.ids, self.every, self.steps, self.cfg_scale, self.seed = caption_ids, every, steps, cfg_scale, seed
        self.last_logged = -1

    def _log(self, trainer, pl_module):
        step = trainer.global_step
        if step == self.last_logged or trainer.logger is None:
            return
        self.last_logged = step
        gen = torch.Generator().manual_seed(self.seed)
        was_training = pl_module.training
        pl_module.eval()
        imgs = to_uint8(pl_module.sample(self.ids, self.steps, self.cfg_scale, generator=gen))
        pl_module.train(was_training)
        grid = upscaled(image_grid(imgs, cols=int(np.ceil(np.sqrt(len(imgs))))))
        trainer.logger.experiment.log_image(trainer.logger.run_id, grid, artifact_file=f"samples/step_{step:06d}.png")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step % self.every == 0:
            self._log(trainer, pl_module)

    def on_train_end(self, trainer, pl_module):
        self._log(trainer, pl_module)
