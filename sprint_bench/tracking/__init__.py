"""MLflow conventions: store location, experiments with absolute artifact locations, run naming."""
