"""Small DiffWave models with random weights for tests (shared by the ONNX and folded-layout tests)."""

import torch

from wavefast.models.diffwave import DiffWave
from wavefast.models.spec import DiffusionSpec, DiffWaveConfig, ModelSpec


def random_diffwave(residual=4, skip=4, layers=2, cycle=2, conditional=True, per_layer=False,
                    embedding="sinusoidal", residual_includes_step=False, seed=1) -> DiffWave:
    """A T=50 DiffWave (22.05 kHz mel vocoder, or 8 kHz unconditional) with N(0, 0.3) weights."""
    torch.manual_seed(seed)
    cfg = DiffWaveConfig(residual, skip, layers, cycle, n_mels=80 if conditional else 0,
                         per_layer_upsampler=per_layer, step_embedding=embedding, embedding_table_size=50,
                         residual_includes_step=residual_includes_step)
    spec = ModelSpec(cfg, DiffusionSpec(50, 1e-4, 0.05), sample_rate=22050 if conditional else 8000,
                     mel_frontend="tacotron2" if conditional else None, segment_length=640)
    model = DiffWave(spec).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model
