"""Continuous-time noise schedules and step plans."""

from .noise import CONTINUOUS_METHODS, LinearBetaSchedule
from .plans import (PRESETS, SamplingPlan, full_plan, load_plan_json, make_plan, plan_from_betas,
                    schedule_names, step_plan, var_betas, var_plan)

__all__ = ["CONTINUOUS_METHODS", "LinearBetaSchedule", "PRESETS", "SamplingPlan", "full_plan", "load_plan_json",
           "make_plan", "plan_from_betas", "schedule_names", "step_plan", "var_betas", "var_plan"]
