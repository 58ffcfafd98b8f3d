"""Accuracy and latency predictors over a search space: encodings, candidate models, model
selection by cross-validated Kendall τ, quality metrics and safe persistence."""

from predictors.candidates import CANDIDATES, DEFAULT_CANDIDATES, build_candidate
from predictors.encoding import ConfigEncoder
from predictors.metrics import rank_quality
from predictors.persistence import load_predictor, save_predictor
from predictors.selection import PredictorFit, fit_predictor

__all__ = [
    "CANDIDATES",
    "DEFAULT_CANDIDATES",
    "ConfigEncoder",
    "PredictorFit",
    "build_candidate",
    "fit_predictor",
    "load_predictor",
    "rank_quality",
    "save_predictor",
]
