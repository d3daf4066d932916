"""The paper's attention + MLP toy (paper A, Figs. 4-5): fit sin(t) over 1000 time bins with an embedding,
one multi-head attention block (eq. 3) and a one-hidden-layer ReLU MLP, then count the MLP's linear regions
along the input and measure the fit - built so that it can test the mechanism the paper proposes.

The mechanism (Theorem 2.1 + section 2.1): more tokens with weight (a longer context) and more heads raise the
dimension of the MLP input; a higher-dimensional input lets the MLP's hyperplanes cut it into more pieces; more
pieces give a finer fit. The paper gives neither the embedding's formula nor the widths, optimiser or number of
steps. Our choices, each made so that one link of that chain can be seen and can fail:

* Task. N time bins t_n evenly spaced on [-P pi, P pi] with P = 5 periods, target sin(t): 10 half-waves.
* Embedding: one sequence of `max(contexts)` tokens per time bin, and "context C" = its first C tokens (the
  prediction is read at token C - 1, which under causal attention sees exactly tokens 0..C-1). Token p is a
  "clock" (sin(w_p t), cos(w_p t)) with w_p = 1 / ((p + 1) P), fixed per position, so token p turns 1 / (p + 1)
  times over the series, plus a fixed sinusoidal code of p (Vaswani et al., base 100) in the other
  d_model - 2 channels. Token 0, the fastest clock, is in every context: context 1 already identifies t (the
  clock turns once), and a longer context adds slower clocks - no new information about t, only more tokens to
  attend to, i.e. geometry. The frequencies do not depend on C, so "more context" is the same network reading
  more tokens, the paper's "context length is a knob that needs no retraining". (The paper's embedding has a
  frequency that depends on the context length too; with that, each context is a different input and needs
  its own fit - our previous design, which mixes "more information" with "more dimension".)
* Attention: eq. 3 with H heads of width d_head = 8 (query, key, value), softmax scaled by 1 / sqrt(d_head);
  the MLP receives MHA(X)_last = sum_h Attn_h V_h O_h directly (no residual, no LayerNorm), so Theorem 2.1
  applies exactly. Across times t the MLP input of one head lies in V_h O_h applied to
  span(clock channels) + conv(position codes of the C tokens): an affine dimension of at most
  min(d_head, C + 1), so at most min(d_model, H min(d_head, C + 1)) for H heads - and exactly the 2 of an
  ellipse for C = 1, whatever H (one token: no attention weight can vary). With d_head = 8 a single head's
  input can rise from 2 (C = 1) through 3, 6 (C = 2, 5) to 8 (C >= 7): context can raise the dimension at
  fixed heads. (With d_head = 2, as before, one head's input was planar for every context.)
* MLP: d_model = 16 -> hidden = 8 ReLU neurons -> 1. The region budget binds: at C = 1 the input is an
  ellipse, which crosses each of the 8 hyperplanes at most twice, so the fit has at most 2 x 8 + 1 = 17
  pieces (`piece_budget`) for 10 half-waves. Within a piece the output is an affine function of a slow clock,
  nearly a line over a half-wave, so a half-wave needs about 2 pieces; the planar fits we trained use 13 to 17
  of the 17, and a finer fit needs more pieces than a planar curve allows - reachable only if the input curve
  leaves the plane and crosses hyperplanes more often, which the extra dimensions of a longer context or more
  heads can allow.
* Training: one network per (heads, seed, restart), trained once on all the contexts of `contexts` together
  (the loss is the mean over contexts of the MSE at the training bins; `mixture="cycle"` instead uses one
  context per step, in turn), then evaluated at each context.
  Full batch, Adam (lr 1e-2, linear warm-up over the first 10% of the steps, cosine decay to 0), float64,
  Gaussian fan-in initialisation from a seeded generator; each hidden neuron's bias puts its hyperplane
  through the MLP input of a random time *between* two bins at a random context of `contexts` (no neuron
  starts dead, no bin starts on a kink). `contexts=(C,)` trains a separate network for one context.
* Held-out data and selection. Every fourth bin trains (250 of the paper's 1000); the bins halfway between
  two training bins validate and the remaining bins (next to a training bin) test (`split_times`): held-out
  times inside the series, so the toy is asked to interpolate. Of the `restarts` of a seed, the one with the
  lowest validation MSE (mean over contexts) is kept; every reported MSE is the test MSE of a kept fit at one
  context. `seeds` seeds give independent kept fits per heads setting; claims compare settings through them
  (medians, 90% bootstrap over seeds; `experiments.attention_graphs.claim_values`), paired by seed where the
  same networks are read at
  two contexts. Training on every fourth bin also makes a step 4x cheaper, which is what lets the paper's
  10 x 7 grid run with seeds and restarts on a CPU.
* Reproducibility across machines. A fit must not depend on round-off, which differs between CPUs (vector
  kernels, summation order). Two choices make it so, measured with `nudge_sensitivity` (every starting weight
  moved one unit in the last place): (1) hyperplanes anchored *between* bins, not on a bin (`anchors="on"`
  puts a bin exactly on each neuron's kink at step 0, so round-off picks the side of the ReLU and hence the
  first gradient; with float32 a one-ulp nudge then changed a restart's final MSE up to 26x, and different
  CPUs gave fits 10x apart); (2) float64 (with anchors between bins a one-ulp nudge still moves float32 fits
  by a few percent, float64 fits by ~1e-14; AVX-512, AVX2 and scalar kernels agree to ~1e-12). That holds
  for a few hundred steps only: training amplifies round-off roughly tenfold every 15 steps at a high
  learning rate, so on the chapter's ci grid AVX-512 and AVX2 losses agree to 1e-11 after 500 steps but end
  1.5% apart after 1200 (measured); the ci profile trains 500 steps, and longer runs are reproducible in
  distribution, not digit for digit.
  Speed: the tokens are (clock, position code) with the position code the same for every time bin, so the
  scores and the value mixing are computed from the 2 clock channels and small per-head tables, never from
  the (n_bins, C, d_model) token tensor (`mha_last`, checked against the plain formula `attention` in the
  tests), and the seeds and restarts are trained together as stacked models. `train` runs on one thread
  (faster for these small ops, and the result does not depend on the core count).

"Regions along the input". The input of the whole model is the time t; the MLP's input z(t) is a curve in
R^d_model. We follow it on a grid of t (`per_bin` points per bin) and count, with `partition.regions_1d`, the
MLP's exact linear regions along each straight segment between consecutive grid points (for a one-hidden-layer
MLP a neuron can switch inside a segment only if its sign differs at the two ends). `pieces` = the number of
intervals of t on which the MLP applies one affine map (Fig. 2's "regions along the input"); `distinct` = the
number of different activation patterns, i.e. of the MLP's linear regions of R^d the curve visits (a curve
can re-enter a region, so distinct <= pieces). The dimension of the MLP input is reported two ways: `rank`
(singular values of the centred inputs above 1e-6 x the largest: the linear dimension Theorem 2.1 bounds) and
`eff_dim` (participation ratio (sum s^2)^2 / sum s^4: how many directions carry the variance; 2 for a circle,
1 for a segment), since a direction of size 1e-6 counts for the rank but not for the fit.

The package: `model` (configuration, task, embedding, network), `training` (the stacked training loop, the kept
restart, round-off sensitivity), `measures` (errors, the MLP input's dimension, exact regions along t) and
`sweep` (rows per fit, the heads grid, the width-matched family's settings, contrasts of two settings through
their fits), `grid` (the grid's rows read back: types, ends, the contrast of its ends on a column, findings as
sentences), `links` (the chain link by link on the whole grid: more heads at every context, plain and
width-matched; test MSE against each candidate mediator, across cells and within networks), `refit` (the
intervention: freeze the attention block, project the MLP input onto its top principal components, refit only
the MLP, against the same refit unprojected) and `parts` (the toy's parts of chapter 2's rows from the chapter's
settings). The chapter's claims on these rows are declared and computed in
`icl_geometry.experiments.attention_graphs`.
"""

from icl_geometry.toys.sine_attention.grid import (INT_FIELDS, context_contrast, context_ratios, context_table,
                                                   contrasts, findings, grid_contrast, grid_ends, restore_types,
                                                   separate_contrast, spearman_columns)
from icl_geometry.toys.sine_attention.links import (CHAIN_SIGN, MEDIATORS, chain_findings, heads_table,
                                                    mediation_table, networks, within_changes)
from icl_geometry.toys.sine_attention.measures import (EVAL_ELEMENTS, RegionCount, activation_patterns,
                                                       count_regions, effective_dim, fine_grid, fit_error,
                                                       linear_probe_error, mlp_input_rank, mlp_inputs, one_thread,
                                                       predict, regions_along, singular_values)
from icl_geometry.toys.sine_attention.model import (ANCHORS, DEVICES, FLOAT_DTYPES, HOLDOUT, MIXTURES, SPLITS,
                                                    SineAttentionToy, ToyConfig, clock_frequencies, clocks,
                                                    config_dict, embed, mha_last, piece_budget,
                                                    position_code, rank_bound, seeds_and_restarts, split_times,
                                                    target, time_grid)
from icl_geometry.toys.sine_attention.refit import (ARMS, INITS, REFIT_FIELDS, RefitResult, intervention_rows,
                                                    pca_basis, pca_refit, project, refit_contrast, refit_many,
                                                    refit_table)
from icl_geometry.toys.sine_attention.sweep import (ROW_FIELDS, WIDTH_FIELDS, compare_paired, compare_restarts,
                                                    evaluate, sweep, width_pairs, width_rows)
from icl_geometry.toys.sine_attention.training import STACK_ELEMENTS, FitResult, nudge_sensitivity, train

__all__ = [
    "ANCHORS", "DEVICES", "EVAL_ELEMENTS", "FLOAT_DTYPES", "HOLDOUT", "INT_FIELDS", "MIXTURES", "ROW_FIELDS", "SPLITS",
    "STACK_ELEMENTS", "FitResult", "RegionCount", "SineAttentionToy", "ToyConfig", "activation_patterns",
    "clock_frequencies", "clocks", "compare_paired", "compare_restarts", "config_dict", "count_regions",
    "effective_dim", "embed", "evaluate", "fine_grid", "fit_error", "linear_probe_error", "mha_last",
    "mlp_input_rank", "mlp_inputs", "nudge_sensitivity", "one_thread", "piece_budget", "position_code", "predict",
    "rank_bound", "seeds_and_restarts", "split_times", "sweep", "target", "time_grid", "train",
    "findings", "grid_contrast", "grid_ends", "restore_types", "spearman_columns", "contrasts", "separate_contrast",
    "CHAIN_SIGN", "MEDIATORS", "chain_findings", "heads_table", "mediation_table", "networks", "within_changes",
    "ARMS", "INITS", "REFIT_FIELDS", "RefitResult", "intervention_rows", "pca_basis", "pca_refit", "project",
    "refit_contrast", "refit_many", "refit_table", "WIDTH_FIELDS", "width_pairs", "width_rows", "regions_along",
]
