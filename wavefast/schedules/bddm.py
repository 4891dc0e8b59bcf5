"""BDDM's published noise-schedule files (``.ns``) as sampling plans.

Bilateral denoising diffusion models (Lam et al. 2022, arXiv 2203.13508) search a short noise
schedule for a trained DiffWave with a schedule network, and their code saves it with
``torch.save`` as a tuple of four float tensors, each (N,), ordered from the *least* noisy
step to the most noisy (index 0 = the last step taken)::

    (ts, a, b, s)
    ts_n : the continuous model step fed to the network, in [0, T-1]
    a_n  : sqrt(alpha_bar_n),  alpha_bar_n = prod_{k <= n} (1 - b_k)
    b_n  : the step's beta
    s_n  : sqrt(b_n (1 - alpha_bar_{n-1}) / (1 - alpha_bar_n)), the DDPM posterior std

and sample from ``x ~ N(0, I)`` at step N-1 down to step 0 with the DDPM update
``x <- (x - b_n / sqrt(1 - a_n^2) eps) / sqrt(1 - b_n) + s_n z`` (no noise at n = 0), or the DDIM
update with the same levels. Both are exactly the FastDPM reverse process on the plan
``steps = ts`` reversed, ``alpha_bar = a^2`` reversed, with kappa = 1 (DDPM-rev, the default) or
kappa = 0 (DDIM-rev): FastDPM's beta at step n is ``1 - alpha_bar_n / alpha_bar_{n-1} = b_n`` and its
kappa-1 sigma is ``s_n``. :func:`read_bddm_schedule` checks both identities on the file, so a file
that is not such a schedule is refused rather than sampled wrongly.

The published LJSpeech files (``egs/lj/noise_schedules/7steps_*.ns`` and ``12steps_*.ns`` in
tencent-ailab/bddm) are for their DiffWave with T = 200, beta linear 1e-4 .. 0.02; the plan
is checked against the model it is used with like every plan file. No file is shipped here:
pass the path (``--schedule 7steps_PESQ4.05_STOI0.975.ns``). Loading is data-only
(``torch.load(weights_only=True)``): the file cannot run code.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from ..errors import WavefastError

BDDM_SUFFIX = ".ns"


def read_bddm_schedule(path) -> dict:
    """A plan object (as in a plan JSON: ``steps``, ``alpha_bar``, ``name``, ``info``) from a BDDM ``.ns`` file."""
    path = Path(path)
    if not path.is_file():
        raise WavefastError(f"schedule file not found: {path}")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        raise WavefastError(f"{path} is not a readable BDDM noise schedule (a torch-saved tuple of 4 tensors; "
                            f"nothing in it may be code): {str(exc).splitlines()[0]}") from None
    if not isinstance(obj, (tuple, list)) or len(obj) != 4 or not all(isinstance(v, torch.Tensor) for v in obj):
        raise WavefastError(f"{path} is not a BDDM noise schedule: expected a tuple (ts, alpha, beta, sigma) of "
                            f"4 tensors, got {type(obj).__name__}")
    ts, a, b, s = (v.detach().double().reshape(-1) for v in obj)
    if not (len(ts) == len(a) == len(b) == len(s) >= 1):
        raise WavefastError(f"{path}: the four BDDM tensors differ in length "
                            f"({len(ts)}, {len(a)}, {len(b)}, {len(s)})")
    if not all(torch.isfinite(v).all() for v in (ts, a, b, s)):
        raise WavefastError(f"{path}: the BDDM schedule holds non-finite values")
    if not ((b > 0).all() and (b < 1).all()):
        raise WavefastError(f"{path}: BDDM betas must lie in (0, 1), got {[round(float(v), 6) for v in b]}")
    alpha_bar = torch.cumprod(1.0 - b, 0)
    if not torch.allclose(a.square(), alpha_bar, rtol=1e-4, atol=1e-6):
        raise WavefastError(f"{path}: its alphas are not the running product of its betas "
                            "(sqrt(alpha_bar_n) = prod_{k<=n} sqrt(1 - b_k)); not a BDDM schedule")
    previous = torch.cat([torch.ones(1, dtype=alpha_bar.dtype), alpha_bar[:-1]])
    sigma = (b * (1.0 - previous) / (1.0 - alpha_bar)).sqrt()
    if len(s) > 1 and not torch.allclose(s[1:], sigma[1:], rtol=1e-3, atol=1e-6):
        raise WavefastError(f"{path}: its sigmas are not the DDPM posterior std of its betas; not a BDDM schedule")
    return {"name": f"bddm-{path.stem}", "steps": ts.flip(0).tolist(), "alpha_bar": alpha_bar.flip(0).tolist(),
            "info": {"kind": "bddm", "note": "BDDM noise schedule (Lam et al. 2022); DDPM-rev = kappa 1, "
                                             "DDIM-rev = kappa 0", "betas": b.flip(0).tolist()}}
