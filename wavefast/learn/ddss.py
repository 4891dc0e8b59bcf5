"""DDSS: train a GGDM sampler by gradient descent through the whole S-step chain.

Watson et al. 2022 (arXiv 2202.05830): the pretrained model stays frozen; the
sampler's timesteps and coefficients (:class:`wavefast.learn.ggdm.GGDMSampler`) are
trained on a sample-quality loss of the samples it produces. Reparametrisation:
``x_T`` and the per-step noise ``z_i`` are drawn once per example and iteration and
held fixed, so the sample is a differentiable function of the parameters;
backpropagation goes through every step, with each denoiser call rematerialised in
the backward pass (``torch.utils.checkpoint``), so memory is O(S) samples plus one
step's activations.

Objectives (lower is better):

- vocoder (mel-conditioned model; ground truth known): the S-step sample given the
  mel of a real segment against that segment,
  ``L = MR-STFT(x, x_ref) + logmel_L1(x, x_ref)``, with
  ``MR-STFT = (1/R) sum_r [ || |S_r x_ref| - |S_r x| ||_F / || |S_r x_ref| ||_F
  + mean |ln|S_r x_ref| - ln|S_r x|| ]`` over (n_fft, hop, win) = (512, 128, 512),
  (1024, 256, 1024), (2048, 512, 2048) (those with n_fft <= L), magnitudes clamped at
  1e-7 (the definitions of :mod:`wavefast.eval.vocoder_metrics`, in differentiable
  torch), and ``logmel_L1 = mean |ln M_ref - ln M|`` on the Tacotron-2 log-mel.
- unconditional: the unbiased squared MMD (KID) with the cubic polynomial kernel
  ``k(a, b) = (a.b / d + 1)^3`` between features of generated clips and of real
  clips. Features: the SC09 classifier's pooled penultimate activations
  (:mod:`wavefast.eval.classifier`, clips peak-normalised, not re-centred) when the
  model makes 1 s clips at 16 kHz and the classifier weights load, else "log-mel
  statistics": per-bin mean and standard deviation over frames of the Tacotron-2
  log-mel (2 x 80 dims), standardised with the real clips' statistics.
- image models: the same kernel distance on the penultimate features of the shipped image
  classifier that takes the model's images (Fashion-MNIST images: raw; the digit mel stage's
  folded log-mels: centred and scaled by one scale from the real held-out images), see
  :func:`image_features` and :class:`ImageFeatures`.

Runs are resumable: the sampler parameters, the Adam state, the step, the data
position and the best held-out parameters are saved atomically every
``save_every`` iterations; the held-out objective is measured before training
(the FastDPM initialisation), every ``eval_every`` iterations and at the end, and
the best of these (possibly the initialisation itself) is what gets exported.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch
from tqdm.auto import tqdm

from ..errors import WavefastError, check_choice
from ..samplers.reverse import check_kappa
from ..schedules import LinearBetaSchedule, SamplingPlan, make_plan
from .ggdm import GGDMSampler

STFT_RESOLUTIONS = ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048))
FEATURES = ("auto", "sc09", "logmel", "auto+logmel")
STATE_FORMAT = "wavefast-learn-state/1"


# --- differentiable losses ----------------------------------------------------------------
def _magnitude(x: torch.Tensor, n_fft: int, hop: int, win: int) -> torch.Tensor:
    window = torch.hann_window(win, periodic=True, dtype=x.dtype, device=x.device)
    spec = torch.stft(x, n_fft, hop_length=hop, win_length=win, window=window, center=True, pad_mode="reflect",
                      return_complex=True)
    return (spec.real.square() + spec.imag.square()).clamp_min(1e-14).sqrt()


def mr_stft_distance(generated: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-item multi-resolution STFT distance (module docstring). (B, 1, L) or (B, L) -> (B,)."""
    gen, ref = generated.reshape(generated.shape[0], -1), reference.reshape(reference.shape[0], -1)
    length = gen.shape[-1]
    resolutions = [r for r in STFT_RESOLUTIONS if r[0] <= length]
    if not resolutions:
        raise WavefastError(f"the multi-resolution STFT loss needs segments of >= 512 samples, got {length}")
    total = gen.new_zeros(gen.shape[0])
    for n_fft, hop, win in resolutions:
        m_gen, m_ref = _magnitude(gen, n_fft, hop, win), _magnitude(ref, n_fft, hop, win)
        ref_norm = torch.linalg.norm(m_ref.flatten(1), dim=1).clamp_min(1e-7)
        sc = torch.linalg.norm((m_ref - m_gen).flatten(1), dim=1) / ref_norm
        logmag = (m_ref.clamp_min(1e-7).log() - m_gen.clamp_min(1e-7).log()).abs().flatten(1).mean(1)
        total = total + sc + logmag
    return total / len(resolutions)


def log_mel_l1(generated: torch.Tensor, reference: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Per-item mean |ln M_ref - ln M_gen| on the Tacotron-2 log-mel. -> (B,)."""
    from ..audio.mel import mel_spectrogram

    gen, ref = generated.reshape(generated.shape[0], -1), reference.reshape(reference.shape[0], -1)
    m = mel_spectrogram(torch.cat([gen, ref]), "tacotron2", sample_rate)
    return (m[: gen.shape[0]] - m[gen.shape[0]:]).abs().flatten(1).mean(1)


class VocoderObjective:
    """``MR-STFT + log-mel L1`` of a generated waveform against its ground truth (mean over items)."""

    name = "mrstft+logmel_l1"

    def __init__(self, sample_rate: int):
        self.sample_rate = int(sample_rate)

    def components(self, generated: torch.Tensor, reference: torch.Tensor) -> Dict[str, torch.Tensor]:
        stft = mr_stft_distance(generated, reference)
        mel = log_mel_l1(generated, reference, self.sample_rate)
        return {"mrstft": stft, "logmel_l1": mel, "total": stft + mel}

    def __call__(self, generated: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        return self.components(generated, reference)["total"].mean()


def polynomial_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Unbiased squared MMD with the KID kernel between feature sets x (n, d) and y (m, d); n, m >= 2."""
    n, m = x.shape[0], y.shape[0]
    if n < 2 or m < 2:
        raise WavefastError(f"the kernel distance needs at least 2 generated and 2 real clips, got {n} and {m}")
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return sxx + syy - 2.0 * kxy.mean()


class ClipFeatures(torch.nn.Module):
    """Differentiable features of clips (B, 1, L) -> (B, D); see the module docstring."""

    def __init__(self, kind: str, sample_rate: int, classifier=None):
        super().__init__()
        check_choice("feature extractor", kind, ("sc09", "logmel"))
        self.kind = kind
        self.sample_rate = int(sample_rate)
        self.classifier = classifier
        self.register_buffer("mean", torch.zeros(0), persistent=False)
        self.register_buffer("std", torch.zeros(0), persistent=False)

    def raw(self, clips: torch.Tensor) -> torch.Tensor:
        x = clips.reshape(clips.shape[0], -1)
        if self.kind == "sc09":
            x = x / x.abs().amax(dim=1, keepdim=True).clamp_min(1e-8)
            return self.classifier.features_from_logmel(self.classifier.frontend(x))
        from ..audio.mel import mel_spectrogram

        m = mel_spectrogram(x, "tacotron2", self.sample_rate)
        return torch.cat([m.mean(-1), m.std(-1)], dim=1)

    @torch.no_grad()
    def fit(self, real_clips: torch.Tensor) -> "ClipFeatures":
        """Standardisation statistics from real clips (identity for the classifier features)."""
        f = self.raw(real_clips)
        if self.kind == "sc09":
            self.mean, self.std = torch.zeros(f.shape[1]), torch.ones(f.shape[1])
        else:
            self.mean, self.std = f.mean(0), f.std(0).clamp_min(1e-3)
        return self

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return (self.raw(clips) - self.mean) / self.std


def clip_features(spec, kind: str = "auto") -> Tuple[ClipFeatures, str]:
    """(features module, description) for an unconditional model's clips."""
    check_choice("feature extractor", kind, FEATURES)
    if kind == "auto+logmel":
        raise WavefastError("features 'auto+logmel' are for mel-image models (the digit mel stage); audio models "
                            "take auto, sc09 or logmel")
    if kind in ("auto", "sc09") and spec.sample_rate == 16000 and spec.segment_length == 16000:
        try:
            from ..eval.classifier import load_sc09_classifier

            clf = load_sc09_classifier().requires_grad_(False)
            return ClipFeatures("sc09", spec.sample_rate, clf), "sc09-classifier"
        except (ImportError, WavefastError) as exc:
            if kind == "sc09":
                raise WavefastError(f"SC09 classifier features are unavailable: {exc}") from None
    elif kind == "sc09":
        raise WavefastError("SC09 classifier features need a model making 16000-sample clips at 16 kHz")
    return ClipFeatures("logmel", spec.sample_rate), "logmel-stats"


class ImageFeatures(torch.nn.Module):
    """Differentiable features of images (B, C, H, W) in model range -> (B, D): the penultimate
    activations of an image classifier on the images clamped to [-1, 1], as the uint8 images it
    is scored on are. ``standardise=False`` (the Fashion-MNIST classifier, whose features the
    image FID also uses): raw activations, ``fit`` keeps identity statistics. ``standardise=True``
    (the digit mel classifier): ``fit`` takes the features' mean ``mu`` (D,) over the real images
    and one scale ``s = sqrt(mean_d Var_d)``, and features become ``(f - mu) / s``, so that the
    cubic kernel's inner products are O(1) (raw, ``a.b / d`` is about 24 there against 6.7 for
    Fashion-MNIST, and a 32-image batch's KID is too noisy to learn from). One scale, not one per
    feature: many ReLU features are dead on real images (zero spread), and dividing by their
    spread would let them dominate the distance.

    ``mel_layout`` (a :class:`~wavefast.images.mel_image.MelImageLayout`; features
    ``auto+logmel``): the classifier features are followed by the image's log-mel statistics,
    per-bin mean and standard deviation over frames (2 x n_mels), each part centred and scaled by
    its own single scale, so that a sampler must match the spectra, not only what the classifier
    looks at."""

    def __init__(self, classifier, standardise: bool = False, mel_layout=None):
        super().__init__()
        self.classifier = classifier.eval().requires_grad_(False)
        self.standardise = bool(standardise or mel_layout is not None)
        self.mel_layout = mel_layout
        self.register_buffer("mean", torch.zeros(0), persistent=False)
        self.register_buffer("std", torch.zeros(0), persistent=False)

    def _parts(self, images: torch.Tensor) -> List[torch.Tensor]:
        x = images.clamp(-1.0, 1.0)
        parts = [self.classifier(x)[1]]
        if self.mel_layout is not None:
            mel = self.mel_layout.to_mel(x)
            parts.append(torch.cat([mel.mean(-1), mel.std(-1)], dim=1))
        return parts

    @torch.no_grad()
    def fit(self, real_images: torch.Tensor) -> "ImageFeatures":
        if self.standardise:
            device = next(self.classifier.parameters()).device
            chunks = [self._parts(real_images[i:i + 256].to(device)) for i in range(0, len(real_images), 256)]
            means, scales = [], []
            for k in range(len(chunks[0])):
                f = torch.cat([c[k] for c in chunks])
                means.append(f.mean(0))
                scales.append(f.var(0).mean().sqrt().clamp_min(1e-6).expand(f.shape[1]))
            self.mean, self.std = torch.cat(means), torch.cat(scales)
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = torch.cat(self._parts(images), dim=1)
        if self.standardise and self.mean.numel():
            features = (features - self.mean) / self.std
        return features


def image_features(spec, kind: str = "auto") -> Tuple[ImageFeatures, str]:
    """(features module, description) for an image model: the first shipped image classifier that
    takes its images (the Fashion-MNIST one for 28 x 28 images, the digit mel one for the digit
    generator's (16, 20, 22) mel images)."""
    from ..images.classifier import load_classifier
    from ..images.mel_image import mel_layout_of
    from ..models.default_models import default_path

    layout = mel_layout_of(spec) if kind == "auto+logmel" else None
    if kind not in ("auto", "auto+logmel") or (kind == "auto+logmel" and layout is None):
        raise WavefastError(f"feature extractor {kind!r} is not for this model: image models use the image "
                            "classifier's features ('auto'), mel-image models also 'auto+logmel'")
    offered = []
    for name, standardise in (("image-classifier", False), ("digit-mel-classifier", True)):
        path = default_path(name)
        if not path.is_file():
            continue
        classifier = load_classifier(path)
        if tuple(spec.image_shape) == classifier.config.input_shape:
            note = name + ("-standardised" if standardise else "") + ("+logmel" if layout is not None else "")
            return ImageFeatures(classifier, standardise, layout), note
        offered.append(f"{name} {classifier.config.input_shape}")
    raise WavefastError(f"no shipped image classifier takes {tuple(spec.image_shape)} images (shipped: "
                        f"{', '.join(offered) or 'none'}); train one with 'wavefast train-image-classifier'")


class KernelObjective:
    """Unbiased MMD^2 (KID kernel) between features of generated clips and real clips."""

    def __init__(self, features: ClipFeatures, description: str):
        self.features = features
        self.name = f"kid[{description}]"

    def __call__(self, generated: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            real_features = self.features(real)
        return mmd2_unbiased(self.features(generated), real_features)


# --- data ---------------------------------------------------------------------------------
class PackData:
    """Training batches (train split) and a fixed held-out set (test split) from a pack.

    ``next_batch(B) -> (x0 (B,1,L), mel (B,n_mels,L/hop) or None)``; ``heldout``:
    the same, fixed, for ``heldout_items`` examples of ``heldout_samples`` samples.
    Crops quieter than ``min_rms`` (default 0.01, -40 dBFS) are skipped: the spectral
    convergence term divides by the reference's energy, so one near-silent crop would
    outweigh the rest of a batch. Skipping is deterministic (the crop stream's
    position just moves on), so resumed runs see the same batches.
    """

    def __init__(self, pack_path, spec, segment_samples: int, *, seed: int = 0, heldout_items: int = 8,
                 heldout_samples: Optional[int] = None, min_rms: float = 0.01):
        from ..data.pack import load_pack
        from ..data.segments import SegmentBatches

        pack = load_pack(pack_path)
        if pack.sample_rate != spec.sample_rate:
            raise WavefastError(f"the pack {pack_path} is at {pack.sample_rate} Hz but the model makes "
                                f"{spec.sample_rate} Hz audio")
        self.min_rms = float(min_rms)
        frontend = spec.mel_frontend if spec.conditional else None
        kw = dict(mel_frontend=frontend, n_mels=spec.n_mels or 80, hop_length=spec.hop_length)
        self.train = SegmentBatches(pack, segment_samples, seed=seed, split="train", **kw)
        split = "test" if pack.indices("test") else "heldout"
        if not pack.indices(split):
            raise WavefastError(f"the pack {pack_path} has no held-out items to measure the objective on")
        held = SegmentBatches(pack, heldout_samples or segment_samples, seed=10_000 + seed, split=split, **kw)
        self.heldout = self._active_batch(held, int(heldout_items))
        self.heldout_split = split

    def _active_batch(self, stream, count: int):
        """The next ``count`` crops of ``stream`` with RMS >= min_rms (gives up after 50 x count draws)."""
        xs, mels = [], []
        for _ in range(50 * count):
            x, mel = stream.next_batch(1)
            if float(x.square().mean().sqrt()) >= self.min_rms:
                xs.append(x)
                mels.append(mel)
                if len(xs) == count:
                    return torch.cat(xs), (torch.cat(mels) if mels[0] is not None else None)
        raise WavefastError(f"fewer than {count} crops louder than RMS {self.min_rms} in the pack; "
                            "lower min_rms or use longer items")

    @property
    def position(self):
        return self.train.position

    def next_batch(self, batch_size: int):
        return self._active_batch(self.train, batch_size)


class ImageData:
    """Training batches and a fixed held-out set for an image model, in model range [-1, 1].

    ``dataset``: a named image data set (``fashion-mnist``, ``mnist-5k``) or an ``.npz`` image
    pack. ``next_batch(B) -> (x0 (B, C, H, W), None)`` from the train split
    (:class:`wavefast.learn.phase2.TensorBatches`: seeded epochs, resumable ``position``);
    ``heldout``: the first ``heldout_items`` images of the test split, fixed.
    """

    def __init__(self, dataset, spec, *, seed: int = 0, heldout_items: int = 256):
        from ..images.data import image_split
        from .phase2 import TensorBatches

        train, test = image_split(dataset, "train"), image_split(dataset, "test")
        for name, images in (("train", train), ("test", test)):
            if tuple(images.shape[1:]) != tuple(spec.image_shape):
                raise WavefastError(f"{dataset} {name} images are {tuple(images.shape[1:])} but the model makes "
                                    f"{tuple(spec.image_shape)}")
        if int(heldout_items) < 2 or len(test) < 2:
            raise WavefastError(f"the held-out kernel distance needs at least 2 test images, got "
                                f"{min(int(heldout_items), len(test))}")
        self.train = TensorBatches(train, seed)
        self.heldout = (test[: int(heldout_items)], None)
        self.heldout_split = "test"

    @property
    def position(self):
        return self.train.position

    def next_batch(self, batch_size: int):
        return self.train.next_batch(batch_size)


# --- training -----------------------------------------------------------------------------
@dataclass
class DDSSConfig:
    """Settings of one DDSS run (all JSON-serialisable)."""

    steps: int = 6
    iters: int = 200
    batch_size: int = 4
    kappa: float = 0.0
    init: str = "var-quadratic"
    lr: float = 1e-3  # coefficient offsets
    lr_time: float = 2e-2  # timestep gap logits
    learn_timesteps: bool = True
    learn_coefficients: bool = True
    history: bool = True
    learn_noise: bool = True
    grad_clip: float = 1.0
    eval_every: int = 25
    save_every: int = 25
    heldout_seed: int = 1_000_000
    seed: int = 0
    checkpoint: bool = True  # rematerialise each step in the backward pass
    features: str = "auto"
    real_per_generated: int = 2  # unconditional: real clips per generated clip in a batch

    def validate(self) -> "DDSSConfig":
        for name in ("steps", "iters", "batch_size", "eval_every", "save_every"):
            if int(getattr(self, name)) < 1:
                raise WavefastError(f"{name} must be >= 1, got {getattr(self, name)}")
        self.kappa = check_kappa(self.kappa)
        if self.lr <= 0 or self.lr_time <= 0:
            raise WavefastError("learning rates must be > 0")
        check_choice("feature extractor", self.features, FEATURES)
        return self

    def identity(self) -> dict:
        """Settings a resumed run must share (iters, eval/save cadence may change)."""
        keep = ("steps", "batch_size", "kappa", "init", "learn_timesteps", "learn_coefficients", "history",
                "learn_noise", "seed", "features", "heldout_seed")
        return {k: getattr(self, k) for k in keep}


def denoiser_for(model, cond):
    """``eps(x, t)`` of a frozen model with the conditioner terms prepared once (None: unconditional)."""
    cache = {}

    def denoise(x, t):
        if cond is not None and cache.get("length") != x.shape[-1]:
            with torch.no_grad():
                cache["terms"], cache["length"] = model.prepare(cond, x.shape[-1]), x.shape[-1]
        return model.denoise(x, t, cache.get("terms"))

    return denoise


def run_chain(model, sampler, cond, batch: int, item_shape, generator: torch.Generator,
              checkpoint: bool = False) -> torch.Tensor:
    """x_T and the per-step noise from ``generator`` (fixed: reparametrisation), then the sampler.

    ``item_shape``: one example's shape, e.g. (1, L) for audio or (C, H, W) for an image model
    (an int L means (1, L)); returns (B, *item_shape). The model's own prior shapes the noise and
    its ``finish`` makes the output (identity and identity for DiffWave and image UNets; the
    envelope filter and the harmonic mean for the source-filter family, whose F0 comes from its
    predictor, as at inference).
    """
    item_shape = (1, int(item_shape)) if isinstance(item_shape, int) else tuple(int(n) for n in item_shape)
    length = item_shape[-1]
    device = next(model.parameters()).device
    x_T = torch.randn((batch, *item_shape), generator=generator).to(device)
    z = sampler.draw_noise(item_shape, batch, generator).to(device)
    with torch.no_grad():
        prepared = model.prepare(cond.to(device), length) if cond is not None else model.prepare(None, length)
    shape = lambda w: model.shape_noise(w, prepared)  # noqa: E731
    z = torch.stack([shape(zk) for zk in z]) if len(z) else z
    out = sampler(lambda x, t: model.denoise(x, t, prepared), shape(x_T), z, checkpoint=checkpoint)
    return model.finish(out, prepared)


def objective_value(spec, objective, generated, x0, real=None) -> torch.Tensor:
    """Vocoder: distance to the ground truth x0; unconditional: kernel distance to ``real`` (default x0)."""
    if spec.conditional:
        return objective(generated, x0)
    return objective(generated, x0 if real is None else real)


@torch.no_grad()
def evaluate_sampler(model, sampler, heldout, objective, seed: int = 1_000_000) -> float:
    """Held-out objective: the held-out items' mels (or real clips), x_T and noise from ``seed``."""
    x0, cond = heldout
    device = next(model.parameters()).device
    generated = run_chain(model, sampler, cond, x0.shape[0], x0.shape[1:], torch.Generator().manual_seed(seed))
    return float(objective_value(model.spec, objective, generated, x0.to(device)))


def default_objective(spec, data, features: str = "auto"):
    """(objective, feature description or None) for a model: vocoder distance or kernel distance
    (on clip features for unconditional audio, on image-classifier features for image models)."""
    if spec.conditional:
        return VocoderObjective(spec.sample_rate), None
    if hasattr(spec, "image_shape"):
        extractor, note = image_features(spec, features)
    else:
        extractor, note = clip_features(spec, features)
    extractor.fit(data.heldout[0])
    return KernelObjective(extractor, note), note


def _noise_seed(seed: int, step: int) -> int:
    return (int(seed) * 1_000_003 + int(step) * 7919 + 17) % (2 ** 63 - 1)


class DDSSTrainer:
    """Trains a :class:`GGDMSampler` for a frozen DiffWave ``model``.

    ``data``: an object with ``next_batch(B)``, ``heldout`` (x0, cond) and optionally
    ``position`` (:class:`PackData` or a test double). ``state_path``: resumable
    state file (None: no saving).
    """

    def __init__(self, model, data, config: DDSSConfig, state_path=None, init_plan: Optional[SamplingPlan] = None):
        self.model = model.eval()
        self.data = data
        self.config = config.validate()
        self.spec = model.spec
        self.schedule = LinearBetaSchedule.from_spec(model.spec.diffusion)
        self.device = next(model.parameters()).device
        plan = init_plan or make_plan(self.schedule, config.init, config.steps)
        if len(plan) != config.steps:
            raise WavefastError(f"the initial plan has {len(plan)} steps but steps={config.steps}")
        self.init_plan = plan
        self.sampler = GGDMSampler(self.schedule, plan, config.kappa, learn_timesteps=config.learn_timesteps,
                                   learn_coefficients=config.learn_coefficients, history=config.history,
                                   learn_noise=config.learn_noise).to(self.device)
        groups = []
        if self.sampler.time_parameters():
            groups.append({"params": self.sampler.time_parameters(), "lr": config.lr_time})
        if self.sampler.coefficient_parameters():
            groups.append({"params": self.sampler.coefficient_parameters(), "lr": config.lr})
        if not groups:
            raise WavefastError("nothing to learn: enable timesteps, coefficients, history or noise (with kappa > 0)")
        self.optimizer = torch.optim.Adam(groups)
        self.objective, self.feature_note = default_objective(self.spec, data, config.features)
        if isinstance(self.objective, KernelObjective):
            self.objective.features.to(self.device)
        self.state_path = Path(state_path) if state_path is not None else None
        self.step = 0
        self.history: List[dict] = []
        self.best: Optional[dict] = None
        self.initial_value: Optional[float] = None
        self.seconds = 0.0

    def evaluate(self) -> float:
        """Held-out objective of the current sampler (fixed x_T and noise per held-out item)."""
        return evaluate_sampler(self.model, self.sampler, self.data.heldout, self.objective, self.config.heldout_seed)

    # --- state ----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        from .artifacts import model_sha256

        position = getattr(self.data, "position", None)
        return {"format": STATE_FORMAT, "learner": "ddss", "identity": self.config.identity(),
                "model_sha256": model_sha256(self.model), "init_plan": self.init_plan.to_dict(),
                "step": self.step, "sampler": self.sampler.state_dict(), "optimizer": self.optimizer.state_dict(),
                "data_position": position.to_dict() if position is not None else None, "history": self.history,
                "best": self.best, "initial_value": self.initial_value, "seconds": self.seconds}

    def save_state(self) -> None:
        if self.state_path is not None:
            from ..fileio import atomic_torch_save

            atomic_torch_save(self.state_dict(), self.state_path)

    def load_state(self) -> None:
        from .artifacts import model_sha256

        state = load_state_file(self.state_path, "ddss")
        if state["model_sha256"] != model_sha256(self.model):
            raise WavefastError(f"{self.state_path} belongs to a run on another model; start afresh without --resume "
                                "or pick another output")
        if state["identity"] != self.config.identity():
            diff = {k: (state["identity"].get(k), v) for k, v in self.config.identity().items()
                    if state["identity"].get(k) != v}
            raise WavefastError(f"{self.state_path} was made with other settings (saved, now): {diff}; "
                                "resume with the same settings")
        self.sampler.load_state_dict(state["sampler"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.history = list(state["history"])
        self.best = state["best"]
        self.initial_value = state["initial_value"]
        self.seconds = float(state["seconds"])
        position = getattr(self.data, "position", None)
        if position is not None and state["data_position"] is not None:
            position.epoch, position.cursor = state["data_position"]["epoch"], state["data_position"]["cursor"]

    # --- loop -----------------------------------------------------------------------------
    def _consider(self, value: float) -> None:
        self.history.append({"step": self.step, "heldout": value})
        if self.best is None or value < self.best["value"]:
            self.best = {"value": value, "step": self.step,
                         "sampler": {k: v.detach().clone() for k, v in self.sampler.state_dict().items()}}

    def train(self, progress: bool = True) -> dict:
        """Run to ``config.iters`` iterations (continuing from the loaded state); returns a summary."""
        cfg = self.config
        requires = [p.requires_grad for p in self.model.parameters()]
        self.model.requires_grad_(False)
        try:
            if self.initial_value is None:
                self.initial_value = self.evaluate()
                self._consider(self.initial_value)
            bar = tqdm(total=cfg.iters, initial=min(self.step, cfg.iters), desc=f"ddss S={cfg.steps}",
                       disable=not progress, unit="it")
            loss_value = float("nan")
            while self.step < cfg.iters:
                start = time.perf_counter()
                x0, cond = self.data.next_batch(cfg.batch_size)
                real = None
                if not self.spec.conditional:
                    real, _ = self.data.next_batch(cfg.batch_size * cfg.real_per_generated)
                    real = real.to(self.device)
                g = torch.Generator().manual_seed(_noise_seed(cfg.seed, self.step))
                generated = run_chain(self.model, self.sampler, cond, x0.shape[0], x0.shape[1:], g,
                                      checkpoint=cfg.checkpoint)
                loss = objective_value(self.spec, self.objective, generated, x0.to(self.device), real)
                if not torch.isfinite(loss.detach()):
                    raise WavefastError(f"DDSS loss became {float(loss.detach())} at iteration {self.step}; "
                                        "lower --lr / --lr-time")
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                params = [p for group in self.optimizer.param_groups for p in group["params"]]
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                self.optimizer.step()
                self.step += 1
                loss_value = float(loss.detach())
                self.seconds += time.perf_counter() - start
                if self.step % cfg.eval_every == 0 or self.step == cfg.iters:
                    start = time.perf_counter()
                    self._consider(self.evaluate())
                    self.seconds += time.perf_counter() - start
                    bar.set_postfix(loss=f"{loss_value:.4f}", heldout=f"{self.history[-1]['heldout']:.4f}",
                                    best=f"{self.best['value']:.4f}")
                else:
                    bar.set_postfix(loss=f"{loss_value:.4f}", best=f"{self.best['value']:.4f}")
                bar.update(1)
                if self.step % cfg.save_every == 0 or self.step == cfg.iters:
                    self.save_state()
            bar.close()
            if self.history[-1]["step"] != self.step:  # resumed at the end: make sure the last point is measured
                self._consider(self.evaluate())
        finally:
            for p, r in zip(self.model.parameters(), requires):
                p.requires_grad_(r)
        return {"initial": self.initial_value, "best": self.best["value"], "best_step": self.best["step"],
                "final": self.history[-1]["heldout"], "iters": self.step, "seconds": self.seconds}

    def best_plan(self, name: Optional[str] = None) -> SamplingPlan:
        """The best held-out sampler as a plan with its GGDM coefficients.

        The coefficients (noise scales included) are always written, even when only the
        timesteps moved, so the file samples exactly as it was measured whatever kappa
        the user passes.
        """
        current = {k: v.clone() for k, v in self.sampler.state_dict().items()}
        self.sampler.load_state_dict(self.best["sampler"])
        plan = self.sampler.to_plan(name or f"ddss-S{self.config.steps}", with_coefficients=True)
        self.sampler.load_state_dict(current)
        return plan


def load_state_file(path, learner: str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise WavefastError(f"nothing to resume: {path} does not exist")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WavefastError(f"cannot read the run state {path}: {exc}") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT or state.get("learner") != learner:
        raise WavefastError(f"{path} is not a wavefast {learner} run state")
    return state


def objective_record(trainer: DDSSTrainer, summary: dict) -> dict:
    rec = {"name": trainer.objective.name, "value": summary["best"], "initial_value": summary["initial"],
           "final_value": summary["final"], "best_step": summary["best_step"],
           "split": getattr(trainer.data, "heldout_split", "heldout"),
           "heldout_items": int(trainer.data.heldout[0].shape[0]), "lower_is_better": True}
    if trainer.data.heldout[0].dim() == 4:
        rec["heldout_shape"] = list(trainer.data.heldout[0].shape[1:])
    else:
        rec["heldout_samples"] = int(trainer.data.heldout[0].shape[-1])
    if trainer.feature_note:
        rec["features"] = trainer.feature_note
    return rec


def config_record(config: DDSSConfig) -> dict:
    return asdict(config)


def heldout_objective(model, data, plan: SamplingPlan, kappa: float = 0.0, objective: Optional[Callable] = None,
                      seed: int = 1_000_000) -> float:
    """Held-out objective of any plan (FastDPM with ``kappa``, or GGDM) under the DDSS evaluation protocol."""
    from .ggdm import FixedSampler

    if objective is None:
        objective, _ = default_objective(model.spec, data, "auto")
    return evaluate_sampler(model, FixedSampler(plan, kappa), data.heldout, objective, seed)
