"""Optuna search spaces, one per learner family (arrives with the study platform, issue 5)."""
