"""Samplers: pure functions over a denoiser ``eps(x, t)``, shape-agnostic."""

from .reverse import PerSampleNoise, check_kappa, plan_coefficients, sample, step_coefficients

__all__ = ["PerSampleNoise", "check_kappa", "plan_coefficients", "sample", "step_coefficients"]
