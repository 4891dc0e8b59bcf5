"""One DiffWave trainer for the mel-conditioned vocoder and the unconditional SC09 model.

Per step (Ho et al. 2020, eq. 14; Kong et al. 2021, Alg. 1), batch of B examples::

    x0  (B, 1, L)       random segments (vocoder: L = k * 256 with mel frames (B, 80, k))
                        or whole clips (SC09: L = 16000, no mel)
    t   ~ Uniform{0 .. T-1},  eps ~ N(0, I)
    x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps,   abar_t = prod_{i<=t} (1 - beta_i)
    loss = mean (eps_theta(x_t, t, mel) - eps)^2          (or |.| with loss="l1")

then Adam, gradient-norm clipping, and an EMA of the weights (:class:`~.state.EMA`).
bf16 autocast is used only on CUDA. The device is the caller's choice.

Run folder (``config.out``)::

    config.json            resolved TrainConfig + ModelSpec
    checkpoint.pt          full state for --resume (weights_only-loadable)
    model-ema.safetensors  EMA weights in wavefast's native format (fp16): the artifact to ship
    log.jsonl              one JSON object per event: every log_every steps {step, loss (mean over
                           the window), grad_norm, lr, samples_per_s (audio samples, train steps
                           only), segments_per_s}; every val_every steps {step, val_logmel_l1 or
                           val_rms, val_items, val_steps, val_schedule, val_kappa, val_seconds_taken}
    samples/               validation audio

Resuming restores model, EMA, optimiser, step, every RNG and the data position
``(epoch, cursor)``, so K straight steps and k + (K - k) resumed steps give the
same weights bit for bit on the CPU.

Imports here need only torch and numpy (no soundfile / librosa): a pack is all
the trainer reads.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch

from ..audio.mel import mel_spectrogram
from ..data.pack import Pack, load_pack
from ..data.segments import SegmentBatches, pick_evenly
from ..errors import WavefastError
from ..models.checkpoints import build_model
from ..models.diffwave import DiffWave
from ..models.spec import ModelSpec
from ..schedules import LinearBetaSchedule
from .config import RESUMABLE_CHANGES, TrainConfig
from .losses import diffwave_losses, sourcefilter_losses
from ..fileio import atomic_torch_save, atomic_write_text
from .stop import StopRequest
from .state import EMA, capture_rng, restore_rng

CHECKPOINT_FORMAT = "wavefast-train/1"
CHECKPOINT_NAME = "checkpoint.pt"
EXPORT_NAME = "model-ema.safetensors"
LOG_NAME = "log.jsonl"
CONFIG_NAME = "config.json"


def _spec_diff(a: ModelSpec, b: ModelSpec) -> str:
    da, db = a.to_dict(), b.to_dict()
    out = []
    for key in sorted(set(da) | set(db)):
        if isinstance(da.get(key), dict) and isinstance(db.get(key), dict):
            out += [f"{key}.{k}: {da[key].get(k)!r} -> {db[key].get(k)!r}" for k in sorted(set(da[key]) | set(db[key]))
                    if da[key].get(k) != db[key].get(k)]
        elif da.get(key) != db.get(key) and key != "name":
            out.append(f"{key}: {da.get(key)!r} -> {db.get(key)!r}")
    return ", ".join(out) or "name only"


def pack_fingerprint(pack: Pack) -> dict:
    """What identifies a pack's content (its path may differ between machines)."""
    ids = hashlib.sha1("\n".join(f"{i}|{s}" for i, s in zip(pack.ids, pack.splits)).encode()).hexdigest()
    return {"items": len(pack), "samples": int(pack.audio.shape[0]), "sample_rate": pack.sample_rate,
            "ids_sha1": ids}


class Trainer:
    """Holds the model, EMA, optimiser, data stream and run folder of one training run."""

    def __init__(self, config: TrainConfig, device="cpu", *, resume: bool = False, progress: bool = True):
        self.config = config
        self.device = torch.device(device)
        self.progress = progress
        self.run_dir = Path(config.out)
        self._check_run_dir(resume)
        self.pack = load_pack(config.pack)
        mc = config.model
        if self.pack.sample_rate != mc.sample_rate:
            raise WavefastError(f"the pack {config.pack} is at {self.pack.sample_rate} Hz but the model runs at "
                                f"{mc.sample_rate} Hz; repack with --sample-rate {mc.sample_rate} or set the "
                                f"model's sample rate to {self.pack.sample_rate}")
        if not mc.conditional and self.pack.clip_samples and self.pack.clip_samples != mc.segment_samples:
            raise WavefastError(f"the unconditional model makes {mc.segment_samples}-sample clips but the pack "
                                f"holds {self.pack.clip_samples}-sample clips; set --segment-samples "
                                f"{self.pack.clip_samples}")
        self.spec: ModelSpec = mc.spec()
        self.family = mc.family
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG
            torch.manual_seed(config.seed)
            model = build_model(self.spec)
        if config.init_from and not resume:
            self._init_weights(model, config.init_from)
        self.model = model.to(self.device).train()
        self.ema = EMA(self.model, config.ema_decay)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.schedule = LinearBetaSchedule.from_spec(self.spec.diffusion)
        pitch = None
        if self.family == "sourcefilter" and self.spec.arch.uses_pitch:
            from ..data.pitch_labels import pitch_labels

            pitch = pitch_labels(self.pack, self.spec.hop_length, self.pack.indices("train"), progress=progress)
        self.data = SegmentBatches(self.pack, mc.segment_samples, seed=config.seed,
                                   mel_frontend=mc.mel_frontend if mc.conditional else None,
                                   n_mels=mc.n_mels, hop_length=self.spec.hop_length, pitch=pitch,
                                   gain_db=config.gain_db)
        self.noise = torch.Generator(device=self.device)
        self.noise.manual_seed(config.seed + 1_000_003)  # t and eps; data order has its own stream
        self.use_amp = bool(config.amp) and self.device.type == "cuda"
        self.step = 0
        self._ema_model: Optional[DiffWave] = None
        self._export_warned = self._val_warned = False
        self._setup_run_dir(resume)

    def _init_weights(self, model, path) -> None:
        """Copy the weights of a model file (same architecture) into ``model``."""
        from ..models.checkpoints import load_model

        source = load_model(path)
        mine = model.state_dict()
        theirs = source.state_dict()
        if set(mine) != set(theirs) or any(mine[k].shape != theirs[k].shape for k in mine):
            raise WavefastError(f"--init-from {path}: its network ({source.spec.name}) has other layers or shapes "
                                "than this run's; use the matching preset and options")
        if source.spec != self.spec:
            print(f"wavefast: --init-from {path}: same network, other settings ({_spec_diff(source.spec, self.spec)}); "
                  "fine-tuning from its weights", file=sys.stderr)
        model.load_state_dict(theirs)

    # --- run folder ----------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_NAME

    def _check_run_dir(self, resume: bool) -> None:
        if resume and not self.checkpoint_path.is_file():
            raise WavefastError(f"nothing to resume: {self.checkpoint_path} does not exist")
        if not resume and self.checkpoint_path.exists():
            raise WavefastError(f"{self.run_dir} already holds a training run ({CHECKPOINT_NAME}); pass --resume "
                                "to continue it or choose another --out")

    def _setup_run_dir(self, resume: bool) -> None:
        if resume:
            self.load_checkpoint(self.checkpoint_path)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.run_dir / CONFIG_NAME, json.dumps(
            {"config": self.config.to_dict(), "spec": self.spec.to_dict()}, indent=1, sort_keys=True) + "\n")
        self._truncate_log()

    def _truncate_log(self) -> None:
        """Drop log lines written after the checkpoint we resume from (they will be redone)."""
        path = self.run_dir / LOG_NAME
        if not path.exists():
            return
        kept = [line for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= self.step]
        atomic_write_text(path, "".join(line + "\n" for line in kept))

    def log(self, record: dict) -> None:
        with open(self.run_dir / LOG_NAME, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")

    # --- checkpoints ----------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "format": CHECKPOINT_FORMAT,
            "step": self.step,
            "config": self.config.to_dict(),
            "spec": self.spec.to_dict(),
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": dict(capture_rng({"noise": self.noise}), noise_device=self.device.type),
            "data": dict(self.data.position.to_dict(), seed=self.data.seed),
            "pack": pack_fingerprint(self.pack),
        }

    def save_checkpoint(self) -> Path:
        """Atomically write checkpoint.pt, then export the EMA weights."""
        atomic_torch_save(self.state_dict(), self.checkpoint_path)
        self.export()
        return self.checkpoint_path

    def _check_compatible(self, ckpt: dict) -> None:
        saved = TrainConfig.from_dict(ckpt["config"])
        changed = [name for name in self.config.to_dict()
                   if name not in RESUMABLE_CHANGES and getattr(saved, name) != getattr(self.config, name)]
        if changed:
            raise WavefastError(f"cannot resume with different {', '.join(changed)} than the checkpoint "
                                f"({self.checkpoint_path}); use the run's settings or start a new --out")
        if ckpt["pack"] != pack_fingerprint(self.pack):
            raise WavefastError(f"the pack {self.config.pack} is not the one this run was trained on "
                                f"(expected {ckpt['pack']})")

    def load_checkpoint(self, path) -> None:
        try:
            ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise WavefastError(f"cannot read training checkpoint {path}: {exc}") from None
        if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
            raise WavefastError(f"{path} is not a wavefast training checkpoint ({CHECKPOINT_FORMAT})")
        self._check_compatible(ckpt)
        self.model.load_state_dict(ckpt["model"])
        self.ema.load_state_dict(ckpt["ema"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt["rng"].get("noise_device") == self.device.type:
            restore_rng(ckpt["rng"], {"noise": self.noise})
        else:  # a CPU generator state cannot drive a CUDA generator (or back): continue on a fresh stream
            restore_rng(ckpt["rng"])
            self.noise.manual_seed(self.config.seed + 1_000_003 + int(ckpt["step"]))
            print(f"wavefast: resuming a {ckpt['rng'].get('noise_device')} run on {self.device.type}: the noise "
                  "stream is reseeded (the continuation is not bit-identical to an uninterrupted run)",
                  file=sys.stderr)
        self.data.position.epoch = int(ckpt["data"]["epoch"])
        self.data.position.cursor = int(ckpt["data"]["cursor"])
        self.step = int(ckpt["step"])

    def ema_model(self) -> DiffWave:
        """A DiffWave (eval mode, on the training device) holding the current EMA weights."""
        if self._ema_model is None:
            self._ema_model = build_model(self.spec).to(self.device)
        return self.ema.copy_to(self._ema_model).eval()

    def export(self, path=None) -> Optional[Path]:
        """EMA weights -> ``model-ema.safetensors`` (``config.export_dtype``) via ``save_native``."""
        path = Path(path) if path is not None else self.run_dir / EXPORT_NAME
        try:
            from ..models.checkpoints import save_native

            return save_native(self.ema_model(), path, dtype=getattr(torch, self.config.export_dtype),
                               extra_metadata={"trained_steps": self.step})
        except ImportError as exc:  # e.g. safetensors or soundfile missing on a bare GPU machine
            if not self._export_warned:
                print(f"wavefast: cannot export {path.name} here ({exc}); checkpoint.pt has the EMA weights: "
                      f"run 'wavefast train --out {self.run_dir} --export-only' where it works", file=sys.stderr)
                self._export_warned = True
            return None

    # --- training -------------------------------------------------------------------
    def train_step(self) -> Dict[str, float]:
        """One optimiser step on the next batch; returns loss and gradient norm."""
        cfg = self.config
        sourcefilter = self.family == "sourcefilter"
        batch = {k: v.to(self.device) for k, v in self.data.next_examples(cfg.batch_size, sourcefilter).items()}
        x0 = batch["audio"]
        T = self.spec.diffusion.T
        t = torch.randint(0, T, (x0.shape[0],), device=self.device, generator=self.noise)
        if cfg.low_t_fraction > 0:
            low = torch.rand(x0.shape[0], device=self.device, generator=self.noise) < cfg.low_t_fraction
            t = torch.where(low, torch.randint(0, max(1, T // 5), (x0.shape[0],), device=self.device,
                                               generator=self.noise), t)
        eps = torch.randn(x0.shape, device=self.device, generator=self.noise)
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.use_amp):
            if sourcefilter:
                parts = sourcefilter_losses(self.model, self.schedule, batch, t, eps, stft_weight=cfg.stft_weight)
            else:
                parts = diffwave_losses(self.model, self.schedule, batch, t, eps, cfg.loss)
        parts = {k: v.float().mean() for k, v in parts.items()}
        loss = sum(parts.values())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        max_norm = cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
        groups = self.model.clip_groups() if hasattr(self.model, "clip_groups") else {"all": list(
            self.model.parameters())}
        grad_norm = max(float(torch.nn.utils.clip_grad_norm_(params, max_norm)) for params in groups.values())
        self.optimizer.step()
        self.step += 1
        self.ema.update(self.model, self.step)
        return {"loss": float(loss.detach()), "grad_norm": float(grad_norm),
                **{f"loss_{k}": float(v.detach()) for k, v in parts.items() if len(parts) > 1}}

    def run(self) -> dict:
        """Train until ``config.steps``; checkpoint, validate and log on the way.

        Returns ``{"step", "losses" (this call's per-step losses), "interrupted",
        "samples_per_s"}``. A first Ctrl-C stops cleanly after the current step
        with a checkpoint saved.
        """
        from tqdm.auto import tqdm

        cfg = self.config
        example_samples = cfg.batch_size * cfg.model.segment_samples
        losses: List[float] = []
        window: List[Dict[str, float]] = []
        window_time, total_time, interrupted = 0.0, 0.0, False
        bar = tqdm(total=cfg.steps, initial=self.step, desc="train", unit="step", disable=not self.progress,
                   dynamic_ncols=True)
        call_started, budget = time.monotonic(), False
        with StopRequest() as stop:
            while self.step < cfg.steps:
                start = time.perf_counter()
                stats = self.train_step()
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                elapsed = time.perf_counter() - start
                window_time += elapsed
                total_time += elapsed
                losses.append(stats["loss"])
                window.append(stats)
                bar.update(1)
                bar.set_postfix(loss=f"{stats['loss']:.4f}")
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    parts = {k: float(np.mean([w[k] for w in window])) for k in window[0] if k.startswith("loss_")}
                    self.log({"step": self.step, "loss": float(np.mean([w["loss"] for w in window])), **parts,
                              "grad_norm": float(np.mean([w["grad_norm"] for w in window])),
                              "lr": self.optimizer.param_groups[0]["lr"],
                              "samples_per_s": len(window) * example_samples / window_time,
                              "segments_per_s": len(window) * cfg.batch_size / window_time})
                    window, window_time = [], 0.0
                if cfg.val_every and self.step % cfg.val_every == 0:
                    self.validate()
                if cfg.max_minutes is not None and time.monotonic() - call_started > 60.0 * cfg.max_minutes:
                    budget = stop.requested = True  # a time budget: stop with a checkpoint, resume to go on
                if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps or stop.requested:
                    self.save_checkpoint()
                if stop.requested:
                    interrupted = not budget
                    break
        bar.close()
        rate = len(losses) * example_samples / total_time if total_time else 0.0
        return {"step": self.step, "losses": losses, "interrupted": interrupted, "samples_per_s": rate}

    # --- validation -----------------------------------------------------------------
    def _save_audio(self, name: str, audio: torch.Tensor) -> Path:
        folder = self.run_dir / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        audio = audio.detach().float().cpu()
        try:
            from ..audio.io import write_wav

            return write_wav(folder / f"{name}.wav", audio, self.spec.sample_rate)
        except ImportError:  # no soundfile on this machine: keep the raw samples
            np.save(folder / f"{name}.npy", audio.numpy())
            return folder / f"{name}.npy"

    @torch.no_grad()
    def validate(self) -> dict:
        """Few-step samples from the EMA model; logs and returns the metrics.

        Vocoder: mean log-mel L1 (``mel_frontend`` of the model) between
        ``vocode(mel)`` and the ground truth over ``val_items`` held-out
        utterances, each cut to its first ``val_seconds``. Unconditional:
        ``val_items`` samples from ``generate`` are written to ``samples/``.
        """
        from ..pipeline import generate, vocode

        cfg, spec = self.config, self.spec
        model = self.ema_model()
        hop, sr = spec.hop_length, spec.sample_rate
        started = time.perf_counter()
        record = {"step": self.step, "val_steps": cfg.val_steps, "val_schedule": cfg.val_schedule,
                  "val_kappa": cfg.val_kappa}
        tag = f"step{self.step:07d}"
        if spec.conditional:
            errors = []
            for n, i in enumerate(pick_evenly(self.pack.indices("heldout"), cfg.val_items)):
                audio = torch.from_numpy(self.pack.clip(i))
                frames = min(int(cfg.val_seconds * sr) // hop, audio.numel() // hop)
                if frames < 3:  # the STFT needs > 512 samples
                    continue
                mel = self.data.utterance_mel(audio)[:, :frames]
                truth = audio[: frames * hop]
                fake = vocode(model, mel.to(self.device), steps=cfg.val_steps, plan=cfg.val_schedule,
                              kappa=cfg.val_kappa, seed=0).float().cpu()[: truth.numel()]
                mel_of = lambda x: mel_spectrogram(x, spec.mel_frontend, sr, spec.n_mels, hop)
                errors.append(float((mel_of(fake) - mel_of(truth)).abs().mean()))
                if n == 0:
                    self._save_audio(f"{tag}_{str(self.pack.ids[i]).replace('/', '_')}", fake)
            if not errors:
                if not self._val_warned:
                    print("wavefast: no held-out utterance of >= 3 frames in the pack: validation skipped "
                          "(pack with --holdout or a layout that has a test split)", file=sys.stderr)
                    self._val_warned = True
                return {}
            record.update(val_logmel_l1=float(np.mean(errors)), val_items=len(errors))
        else:
            count = max(1, cfg.val_items)
            samples = generate(model, count, steps=cfg.val_steps, schedule=cfg.val_schedule, kappa=cfg.val_kappa,
                               seed=0)
            for n in range(count):
                self._save_audio(f"{tag}_sample{n}", samples[n])
            record.update(val_rms=float(samples.pow(2).mean().sqrt()), val_items=count)
        record["val_seconds_taken"] = time.perf_counter() - started
        self.log(record)
        return record


def train(config: TrainConfig, device="cpu", *, resume: bool = False, progress: bool = True) -> dict:
    """Build a :class:`Trainer` and run it to ``config.steps``; see :meth:`Trainer.run`."""
    return Trainer(config, device, resume=resume, progress=progress).run()


def export_run(run_dir, path=None, dtype: str = "float16") -> Path:
    """Export the EMA weights of ``run_dir/checkpoint.pt`` with ``save_native``."""
    from ..models.checkpoints import save_native

    run_dir = Path(run_dir)
    ckpt_path = run_dir / CHECKPOINT_NAME
    if not ckpt_path.is_file():
        raise WavefastError(f"no training checkpoint in {run_dir} ({CHECKPOINT_NAME} missing)")
    ckpt = torch.load(str(ckpt_path), map_location="cpu", weights_only=True)
    model = build_model(ModelSpec.from_dict(ckpt["spec"]))
    model.load_state_dict(ckpt["ema"])
    return save_native(model.eval(), Path(path) if path else run_dir / EXPORT_NAME, dtype=getattr(torch, dtype),
                       extra_metadata={"trained_steps": ckpt["step"]})
