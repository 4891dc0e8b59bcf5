"""wavefast: few-step sampling of pretrained DiffWave vocoders and generators.

    >>> import wavefast
    >>> voc = wavefast.Vocoder.from_pretrained()                  # the shipped vocoder; or a path / .onnx
    >>> audio, lengths = voc(mels, lengths=frame_lengths, seeds=[0, 1])
    >>> model = wavefast.load_model("model.safetensors")           # or a philsyn / lmnt file
    >>> audio = wavefast.vocode(model, mel, steps=6, plan="var-quadratic", kappa=1.0, seed=0)
"""

from .errors import WavefastError
from .models.checkpoints import convert, load_model, save_native
from .models.default_models import load_default
from .models.diffwave import DiffWave
from .models.spec import DiffusionSpec, DiffWaveConfig, ModelSpec, SourceFilterConfig
from .pipeline import generate, plan_for, vocode
from .samplers import run_plan
from .schedules import LinearBetaSchedule, SamplingPlan, make_plan, resolve_plan
from .vocoder import Vocoder

__version__ = "0.2.0"

__all__ = ["WavefastError", "convert", "load_model", "load_default", "save_native", "DiffWave", "DiffusionSpec",
           "DiffWaveConfig", "ModelSpec", "SourceFilterConfig", "generate", "plan_for", "vocode", "run_plan",
           "LinearBetaSchedule", "SamplingPlan", "make_plan", "resolve_plan", "Vocoder"]
