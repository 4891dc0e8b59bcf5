"""Learned few-step samplers for a fixed pretrained model.

- :mod:`.ggdm`: the GGDM sampler family (learnable timesteps, weights on the current
  sample and on every model output so far, noise scales), initialised to FastDPM/DDIM.
- :mod:`.ddss`: DDSS training of a GGDM sampler through the whole chain.
- :mod:`.errbound`: schedules that minimise a Monte-Carlo bound of the DDIM error.
- :mod:`.artifacts`: the learned-sampler JSON (a plan keyed to the model's hash).
- :mod:`.cli`: ``wavefast learn-sampler``.
"""

from .artifacts import check_schedule_for_model, learned_plan, model_sha256, save_learned
from .ggdm import FixedSampler, GGDMCoefficients, GGDMSampler, ggdm_sample

__all__ = ["check_schedule_for_model", "learned_plan", "model_sha256", "save_learned", "FixedSampler",
           "GGDMCoefficients", "GGDMSampler", "ggdm_sample"]
