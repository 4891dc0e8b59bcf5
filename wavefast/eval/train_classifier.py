"""Train the SC09 digit classifier used by ``wavefast eval sc09``.

    wavefast train-sc09-classifier --fsdd ../shared/data/fsdd/recordings \\
        --speech-commands ../shared/data/speech_commands_digits -o sc09_classifier.safetensors

Data (both read by the small loaders below, every clip through ``prepare_clip``):

- FSDD ``{digit}_{speaker}_{take}.wav`` (8 kHz, resampled to 16 kHz): takes 5-49 train,
  takes 0-4 held out (the official test split);
- Speech Commands ``{zero..nine}/{speaker}_nohash_{n}.wav`` (16 kHz): every clip of the
  first ``--sc-holdout-speakers`` speakers (sorted hash) among those who say all ten
  digits is held out (speaker-disjoint; 2 per digit on ../shared/data), the rest train.
  Speech Commands clips are repeated so that they make ~``--sc-fraction`` of an epoch.

Augmentation per training clip (``augment``): speed x U(0.9, 1.1) by linear
interpolation, shift U(-0.1, 0.1) s, low-pass at U(3.5, 8) kHz with p 0.3 (FFT mask),
gain U(-12, 0) dB, white noise at U(15, 45) dB SNR with p 0.5. Cross-entropy (no label
smoothing by default: it would cap the confidence and deflate IS), AdamW, one-cycle cosine
learning rate. Everything is seeded; the state
is saved after every epoch to ``OUTPUT.resume.pt`` and a rerun picks it up.

Writes the fp16 weights (``-o``) and the reference statistics (``--stats``, default
``sc09_train_stats.npz`` beside ``-o``): feature mean/covariance of the training clips,
the mean posterior and label frequencies (AM score), NDB bins (``--ndb-bins``, K=50).
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import WavefastError
from .classifier import (CLIP_SAMPLES, DIGITS, SAMPLE_RATE, ClassifierConfig, SC09Classifier, classify,
                         prepare_clip, save_sc09_classifier)
from . import metrics

FSDD_NAME = re.compile(r"^(\d)_([A-Za-z0-9]+)_(\d+)\.wav$")
Split = Tuple[np.ndarray, np.ndarray]  # clips (N, 16000) float32, labels (N,) int64


# --- loaders -------------------------------------------------------------------------------
def _read_clips(paths: List[Path], desc: str) -> np.ndarray:
    from tqdm.auto import tqdm

    from ..audio.io import read_audio

    clips = np.zeros((len(paths), CLIP_SAMPLES), dtype=np.float32)
    for i, path in enumerate(tqdm(paths, desc=desc, unit="file", leave=False)):
        audio, sr = read_audio(path, SAMPLE_RATE)
        clips[i] = prepare_clip(audio, sr)
    return clips


def load_fsdd(root, test_takes=range(0, 5)) -> Dict[str, Split]:
    """FSDD ``recordings/`` -> {"train": (clips, labels), "test": (clips, labels)}."""
    root = Path(root)
    entries = []
    for path in sorted(root.glob("*.wav")):
        match = FSDD_NAME.match(path.name)
        if match:
            entries.append((path, int(match.group(1)), int(match.group(3))))
    if not entries:
        raise WavefastError(f"no FSDD files named {{digit}}_{{speaker}}_{{take}}.wav in {root}")
    test_takes = set(test_takes)
    out = {}
    for split, keep in (("train", lambda t: t not in test_takes), ("test", lambda t: t in test_takes)):
        chosen = [(p, d) for p, d, t in entries if keep(t)]
        out[split] = (_read_clips([p for p, _ in chosen], f"FSDD {split}"),
                      np.array([d for _, d in chosen], dtype=np.int64))
    return out


def load_speech_commands(root, holdout_speakers: int = 2) -> Dict[str, Split]:
    """Speech Commands ``{zero..nine}/*.wav`` -> {"train": ..., "test": ...}; the test split is
    every clip of the first ``holdout_speakers`` speakers (sorted by the hash before
    ``_nohash_``) who recorded all ten digits."""
    root = Path(root)
    files = {d: sorted((root / word).glob("*.wav")) for d, word in enumerate(DIGITS)}
    missing = [DIGITS[d] for d, paths in files.items() if not paths]
    if missing:
        raise WavefastError(f"Speech Commands folder {root} has no wavs for: {', '.join(missing)}")
    speaker = lambda p: p.name.split("_nohash_")[0]
    complete = set.intersection(*({speaker(p) for p in paths} for paths in files.values()))
    held = set(sorted(complete)[:holdout_speakers])
    out = {}
    for split, keep in (("train", lambda p: speaker(p) not in held), ("test", lambda p: speaker(p) in held)):
        chosen = [(p, d) for d, paths in files.items() for p in paths if keep(p)]
        out[split] = (_read_clips([p for p, _ in chosen], f"Speech Commands {split}"),
                      np.array([d for _, d in chosen], dtype=np.int64))
    return out


# --- augmentation --------------------------------------------------------------------------
def augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random speed, shift, band limit, gain and noise; batch (B, 16000) -> (B, 16000)."""
    rand = lambda *shape: torch.rand(*shape, generator=generator)
    b, n = batch.shape
    out = torch.empty_like(batch)
    for i in range(b):
        speed = 0.9 + 0.2 * float(rand(()))
        length = int(round(n / speed))
        stretched = F.interpolate(batch[i][None, None], size=length, mode="linear", align_corners=False)[0, 0]
        shift = int((float(rand(())) - 0.5) * 0.2 * SAMPLE_RATE)
        start = (length - n) // 2 - shift  # index in `stretched` of output sample 0
        clip = torch.zeros(n)
        lo, hi = max(start, 0), min(start + n, length)
        if hi > lo:
            clip[lo - start: hi - start] = stretched[lo:hi]
        out[i] = clip
    lowpass = rand(b) < 0.3
    if lowpass.any():
        spectrum = torch.fft.rfft(out[lowpass], dim=1)
        freqs = torch.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
        cutoff = 3500.0 + 4500.0 * rand(int(lowpass.sum()), 1)
        out[lowpass] = torch.fft.irfft(spectrum * (freqs[None] <= cutoff), n=n, dim=1)
    out = out * 10.0 ** (-12.0 * rand(b, 1) / 20.0)
    rms = out.pow(2).mean(dim=1, keepdim=True).sqrt().clamp_min(1e-5)
    snr_db = 15.0 + 30.0 * rand(b, 1)
    noisy = (rand(b, 1) < 0.5).float()
    out = out + noisy * rms * 10.0 ** (-snr_db / 20.0) * torch.randn(b, n, generator=generator)
    return out


# --- training ------------------------------------------------------------------------------
def accuracy(model: SC09Classifier, clips: np.ndarray, labels: np.ndarray) -> float:
    probs, _ = classify(model, clips)
    return float((probs.argmax(axis=1) == labels).mean())


def reference_stats(model: SC09Classifier, clips: np.ndarray, labels: np.ndarray, ndb_k: int = 50) -> dict:
    """Arrays for ``sc09_train_stats.npz`` from the (un-augmented) training clips."""
    probs, features = classify(model, clips)
    mu, sigma = metrics.feature_stats(features)
    bins = metrics.ndb_bins(features, ndb_k, seed=0)
    return {"mu": mu, "sigma": sigma, "train_class_probs": probs.mean(axis=0),
            "train_label_freq": np.bincount(labels, minlength=10) / labels.size,
            "ndb_centres": bins["centres"], "ndb_proportions": bins["proportions"], "ndb_count": bins["count"],
            "train_is": np.array(metrics.inception_score(probs)), "count": np.array(labels.size)}


@dataclass(frozen=True)
class ClassifierTraining:
    """Settings of a classifier training run (the CLI flags of ``wavefast train-sc09-classifier``)."""

    fsdd: str
    speech_commands: str
    output: str
    stats: Optional[str] = None
    epochs: int = 18
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    sc_fraction: float = 0.25
    sc_holdout_speakers: int = 2
    ndb_bins: int = 50
    seed: int = 0
    threads: int = 1


def train(args: ClassifierTraining) -> int:
    from tqdm.auto import tqdm

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out_path = Path(args.output)
    stats_path = Path(args.stats) if args.stats else out_path.with_name("sc09_train_stats.npz")
    resume_path = out_path.with_name(out_path.name + ".resume.pt")
    if args.epochs < 1 or args.batch_size < 1:
        raise WavefastError("--epochs and --batch-size must be >= 1")
    if not 0.0 < args.sc_fraction < 1.0:
        raise WavefastError(f"--sc-fraction must be in (0, 1), got {args.sc_fraction}")

    fsdd = load_fsdd(args.fsdd)
    sc = load_speech_commands(args.speech_commands, args.sc_holdout_speakers)
    (xf, yf), (xs, ys) = fsdd["train"], sc["train"]
    repeat = max(1, int(round(args.sc_fraction * len(yf) / ((1.0 - args.sc_fraction) * max(len(ys), 1)))))
    train_x = torch.from_numpy(np.concatenate([xf] + [xs] * repeat))
    train_y = torch.from_numpy(np.concatenate([yf] + [ys] * repeat))
    print(f"training clips: {len(yf)} FSDD + {len(ys)} Speech Commands x{repeat}; held out: "
          f"{len(fsdd['test'][1])} FSDD, {len(sc['test'][1])} Speech Commands", file=sys.stderr)

    config = ClassifierConfig()
    model = SC09Classifier(config)
    steps_per_epoch = len(train_y) // args.batch_size
    if steps_per_epoch == 0:
        raise WavefastError(f"only {len(train_y)} training clips for --batch-size {args.batch_size}")
    total_steps = steps_per_epoch * args.epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=total_steps,
                                                    pct_start=0.1, anneal_strategy="cos")
    generator = torch.Generator().manual_seed(args.seed)
    first_epoch, elapsed = 0, 0.0
    settings = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                "sc_fraction": args.sc_fraction, "label_smoothing": args.label_smoothing,
                "weight_decay": args.weight_decay, "clips": len(train_y)}
    if resume_path.exists():
        state = torch.load(str(resume_path), map_location="cpu", weights_only=True)
        if state.get("settings") != settings:
            raise WavefastError(f"{resume_path} was saved by a run with other settings ({state.get('settings')}); "
                                f"rerun with those settings or delete it to start afresh")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        first_epoch, elapsed = int(state["epoch"]), float(state["elapsed"])
        print(f"resuming from {resume_path} after epoch {first_epoch}", file=sys.stderr)

    bar = tqdm(total=total_steps, initial=first_epoch * steps_per_epoch, desc="training", unit="step")
    for epoch in range(first_epoch, args.epochs):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(len(train_y), generator=generator)
        for step in range(steps_per_epoch):
            index = order[step * args.batch_size: (step + 1) * args.batch_size]
            logits, _ = model(augment(train_x[index], generator))
            loss = F.cross_entropy(logits, train_y[index], label_smoothing=args.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}")
        elapsed += time.perf_counter() - started
        from ..fileio import atomic_output

        with atomic_output(resume_path, ".pt") as tmp:
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "generator": generator.get_state(),
                        "torch_rng": torch.get_rng_state(), "epoch": epoch + 1, "elapsed": elapsed,
                        "settings": settings}, str(tmp))
    bar.close()

    model = model.half().float().eval()  # measure exactly what the fp16 file will hold
    results = {"fsdd_test_accuracy": accuracy(model, *fsdd["test"]),
               "speech_commands_holdout_accuracy": accuracy(model, *sc["test"]),
               "fsdd_train_accuracy": accuracy(model, xf, yf)}
    train_clips, train_labels = np.concatenate([xf, xs]), np.concatenate([yf, ys])
    stats = reference_stats(model, train_clips, train_labels, args.ndb_bins)
    save_sc09_classifier(model, out_path, torch.float16, extra_metadata={
        **{k: f"{v:.4f}" for k, v in results.items()}, "epochs": args.epochs, "steps": total_steps,
        "batch_size": args.batch_size, "seed": args.seed, "lr": args.lr, "label_smoothing": args.label_smoothing,
        "sc_fraction": args.sc_fraction, "train_seconds": f"{elapsed:.0f}",
        "train_clips": f"{len(yf)} FSDD + {len(ys)} Speech Commands (x{repeat})",
        "train_is": f"{float(stats['train_is']):.3f}"})
    metrics.save_stats(stats_path, **stats)
    resume_path.unlink(missing_ok=True)
    for key, value in results.items():
        print(f"{key}: {value:.4f}")
    print(f"train-set IS: {float(stats['train_is']):.3f}")
    print(f"training time: {elapsed:.0f} s for {total_steps} steps")
    print(f"wrote {out_path} and {stats_path}")
    return 0


def main(argv=None) -> int:
    """``python -m wavefast.eval.train_classifier ...`` = ``wavefast train-sc09-classifier ...``."""
    from ..cli import main as cli_main

    return cli_main(["train-sc09-classifier", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
