"""wavefast: few-step sampling of pretrained DiffWave vocoders and generators.

    >>> import wavefast
    >>> model = wavefast.load_model("model.safetensors")           # or a philsyn / lmnt file
    >>> audio = wavefast.vocode(model, mel, steps=6, schedule="var-quadratic", kappa=1.0, seed=0)
"""

from .errors import WavefastError
from .models.checkpoints import convert, load_model, save_native
from .models.diffwave import DiffWave
from .models.spec import DiffusionSpec, DiffWaveConfig, ModelSpec
from .pipeline import generate, plan_for, vocode
from .schedules import LinearBetaSchedule, SamplingPlan, make_plan
from .vocoder import Vocoder

__version__ = "0.1.0"

__all__ = ["WavefastError", "convert", "load_model", "save_native", "DiffWave", "DiffusionSpec", "DiffWaveConfig",
           "ModelSpec", "generate", "plan_for", "vocode", "LinearBetaSchedule", "SamplingPlan", "make_plan", "Vocoder"]
