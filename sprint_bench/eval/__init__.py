"""Evaluation protocols (GenEval and friends) for sprint_bench."""
