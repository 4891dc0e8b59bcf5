"""The only place that samples: noise sources, the GGDM coefficient form and :func:`run_plan`."""

from .ggdm import (GGDM_KEY, PlanCoefficients, check_kappa, coefficients_for, fastdpm_coefficients, is_learned,
                   noise_draws, plan_kappa, run_coefficients, run_plan)
from .noise import (NoiseSource, PerSampleNoise, PositionalNoise, SeededNoise, ShapedNoise, TensorNoise, item_seeds,
                    positional_noise)
from .reverse import plan_coefficients, sample, step_coefficients

__all__ = ["GGDM_KEY", "PlanCoefficients", "check_kappa", "coefficients_for", "fastdpm_coefficients", "is_learned",
           "noise_draws", "plan_kappa", "run_coefficients", "run_plan", "NoiseSource", "PerSampleNoise",
           "PositionalNoise", "SeededNoise", "ShapedNoise", "TensorNoise", "item_seeds", "positional_noise",
           "plan_coefficients", "sample", "step_coefficients"]
