"""The noise schedule object and step plans: FastDPM STEP/VAR, published lists, learned plans read and
verified, and one resolve function."""

from .learned import check_plan_for_model, model_sha256
from .noise import CONTINUOUS_METHODS, LinearBetaSchedule
from .plans import (PRESETS, SamplingPlan, full_plan, load_plan_json, make_plan, plan_from_betas, read_plan_file,
                    schedule_names, step_plan, var_betas, var_plan)
from .resolve import resolve_plan

__all__ = ["CONTINUOUS_METHODS", "LinearBetaSchedule", "PRESETS", "SamplingPlan", "check_plan_for_model",
           "full_plan", "load_plan_json", "make_plan", "model_sha256", "plan_from_betas", "read_plan_file",
           "resolve_plan", "schedule_names", "step_plan", "var_betas", "var_plan"]
