"""Evaluation: ranking metrics and the papers' protocols (full ranking, sampled candidates)."""
