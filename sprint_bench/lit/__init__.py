"""LightningModules and callbacks (orchestration only: formulas live in param/, losses/, samplers/)."""
