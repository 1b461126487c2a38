"""Paper-style reports built from MLflow."""
