"""sprint_bench: few-step distillation benchmark suite (SANA-Sprint)."""
__version__ = "0.1.0"
