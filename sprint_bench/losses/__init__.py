"""Pure loss functions. No Lightning, no MLflow."""
