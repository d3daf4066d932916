"""In-context linear regression with one layer of linear self-attention (paper B's first setting, chapter 5).

- `theory`: the spectrum and covariance, the closed forms (loss of any Gamma, the rank-r optimum, noise and
  flip-rate thresholds, crossovers) and where a Gamma puts its mass (the derivation is in its docstring);
- `model`: the prompt sampler and the attention model (`LinearSelfAttention`, y_hat = x_q^T Gamma h);
- `sweep`: the baselines, Monte Carlo noise and flip-rate sweeps on shared prompts, crossings of measured curves,
  closed form against Monte Carlo (`comparison_rows`, `comparison_z`);
- `training`: the training loop (`train`, `fit_ranks`);
- `regime`: a sweep of every predictor as tables (crossings and margins beside the closed form) and the regime
  where the smaller model wins, in the data's units.

Every public name is re-exported here, so `from icl_geometry.toys import linear_icl as li` reaches them all.
"""

from icl_geometry.toys.linear_icl.checks import INITS, NOISE_KINDS, OPTIMIZERS, QUERIES, SPECTRA
from icl_geometry.toys.linear_icl.model import (LinearSelfAttention, PromptSampler, Prompts, context_gram, h_vector,
                                                predict_gamma)
from icl_geometry.toys.linear_icl.regime import (BASELINES, MARGIN, UNITS, crossover_table, curve, finite, layout,
                                                 margin_table, regime_text, smaller_wins, sweep_table, unit)
from icl_geometry.toys.linear_icl.sweep import (NoisyGrams, Sweep, bayes_ridge_penalty, comparison_rows,
                                                comparison_z, crossover_margin, flip_signs, flip_sweep, gd_step,
                                                gram_predictors, least_squares, least_squares_gram, mc_loss,
                                                measured_crossover, noise_sweep, optimal_gd_step, ridge, ridge_gram)
from icl_geometry.toys.linear_icl.theory import (crossover, direction_threshold, eigen_projection, eigh_desc,
                                                 expected_loss, flip_crossover, flip_expected_loss, flip_h_moment,
                                                 flip_optimal_loss, flip_threshold, flip_window_rate, h_moment,
                                                 label_noise_condition, make_covariance, make_spectrum, optimal_gains,
                                                 optimal_gamma, optimal_loss, random_rotation, smaller_model_regime,
                                                 top_mass)
from icl_geometry.toys.linear_icl.training import TrainResult, fit_ranks, train

__all__ = [
    "INITS", "NOISE_KINDS", "OPTIMIZERS", "QUERIES", "SPECTRA",
    "LinearSelfAttention", "PromptSampler", "Prompts", "context_gram", "h_vector", "predict_gamma",
    "NoisyGrams", "Sweep", "bayes_ridge_penalty", "comparison_rows", "comparison_z", "crossover_margin", "flip_signs",
    "flip_sweep", "gd_step",
    "gram_predictors", "least_squares", "least_squares_gram", "mc_loss", "measured_crossover", "noise_sweep",
    "optimal_gd_step", "ridge", "ridge_gram",
    "crossover", "direction_threshold", "eigen_projection", "eigh_desc", "expected_loss", "flip_crossover",
    "flip_expected_loss", "flip_h_moment", "flip_optimal_loss", "flip_threshold", "flip_window_rate", "h_moment",
    "label_noise_condition", "make_covariance", "make_spectrum", "optimal_gains", "optimal_gamma", "optimal_loss",
    "random_rotation", "smaller_model_regime", "top_mass",
    "TrainResult", "fit_ranks", "train",
    "BASELINES", "MARGIN", "UNITS", "crossover_table", "curve", "finite", "layout", "margin_table", "regime_text",
    "smaller_wins", "sweep_table", "unit",
]
