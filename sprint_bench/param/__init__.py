"""Maths of the parameterisations (flow matching, TrigFlow) and time samplers. No Lightning, no MLflow."""
