"""``wavefast eval`` sub-commands, and the folder-level evaluations behind them.

    wavefast eval sc09 GENERATED_DIR [--reference DIR | --reference-stats stats.npz]
                       [--classifier PATH] [--json out.json]
    wavefast eval mos DIR [--json out.json]
    wavefast eval vocoder GENERATED_DIR --reference DIR [--json out.json]

``register(subparsers)`` adds ``eval`` to the main ``wavefast`` parser; standalone,
``python -m wavefast.eval.cli sc09 ...`` takes the same sub-commands. Results are printed
as a table on stdout and, with ``--json``, written atomically. Bad input raises
``WavefastError``: one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..errors import WavefastError, run_command
from . import report
from .mos import list_wavs, summarise

NDB_BINS = 50
# vocoder pairs: lengths may differ by this much before it is an error (then both are cropped)
LENGTH_TOLERANCE_SAMPLES = 2048
LENGTH_TOLERANCE_FRACTION = 0.05


def _note(message: str) -> None:
    print(f"wavefast: {message}", file=sys.stderr)


def _resample_note(resampled: Dict[int, int], target: int, what: str) -> Optional[str]:
    if not resampled:
        return None
    rates = ", ".join(f"{n} at {sr} Hz" for sr, n in sorted(resampled.items()))
    message = f"resampled {what} to {target} Hz ({rates})"
    _note(message)
    return message


# --- SC09 --------------------------------------------------------------------------------------
def read_sc09_clips(folder, progress: bool = True) -> Tuple[List[Path], np.ndarray, Optional[str]]:
    """Every ``*.wav`` under ``folder`` (recursive, sorted) through ``prepare_clip``:
    ``(paths, clips (N, 16000), note about resampling or None)``."""
    from tqdm.auto import tqdm

    from ..audio.io import read_audio
    from .classifier import CLIP_SAMPLES, SAMPLE_RATE, prepare_clip

    paths = list_wavs(folder, recursive=True)
    clips = np.zeros((len(paths), CLIP_SAMPLES), dtype=np.float32)
    resampled: Dict[int, int] = {}
    for i, path in enumerate(tqdm(paths, desc=f"reading {Path(folder).name}", unit="file", disable=not progress)):
        audio, sr = read_audio(path)
        if sr != SAMPLE_RATE:
            resampled[sr] = resampled.get(sr, 0) + 1
        clips[i] = prepare_clip(audio, sr)
    return paths, clips, _resample_note(resampled, SAMPLE_RATE, f"clips in {folder}")


def reference_stats_from_clips(model, clips: np.ndarray) -> Dict[str, np.ndarray]:
    """FID statistics, mean posterior (AM) and, with >= 2 * 50 clips, 50 NDB bins of real clips."""
    from . import metrics
    from .classifier import classify

    if clips.shape[0] < 2:
        raise WavefastError(f"the reference needs at least 2 clips, got {clips.shape[0]}")
    probs, features = classify(model, clips)
    mu, sigma = metrics.feature_stats(features)
    stats = {"mu": mu, "sigma": sigma, "train_class_probs": probs.mean(axis=0), "count": np.array(len(clips))}
    if clips.shape[0] >= 2 * NDB_BINS:
        bins = metrics.ndb_bins(features, NDB_BINS, seed=0)
        stats.update(ndb_centres=bins["centres"], ndb_proportions=bins["proportions"], ndb_count=bins["count"])
    return stats


def evaluate_sc09_folder(generated_dir, reference_dir=None, reference_stats=None, classifier=None,
                         progress: bool = True, device="cpu") -> dict:
    """FID, IS (standard, 10-split, SaShiMi split-half), mIS, AM and NDB/K of the clips in
    ``generated_dir`` under the SC09 classifier (``classifier``: a weights path, None =
    shipped). Reference: a folder of real clips, a stats ``.npz``, or (neither) the
    shipped training statistics."""
    from . import metrics
    from .classifier import DEFAULT_STATS, classify, load_sc09_classifier

    if reference_dir is not None and reference_stats is not None:
        raise WavefastError("give either --reference (a folder of real clips) or --reference-stats (.npz), not both")
    model = load_sc09_classifier(classifier, device=device)
    notes = []
    paths, clips, note = read_sc09_clips(generated_dir, progress)
    notes += [note] if note else []
    if clips.shape[0] < 2:
        raise WavefastError(f"{generated_dir} holds {clips.shape[0]} clip; the SC09 scores need at least 2")
    probs, features = classify(model, clips)
    if reference_dir is not None:
        _, ref_clips, note = read_sc09_clips(reference_dir, progress)
        notes += [note] if note else []
        stats, reference = reference_stats_from_clips(model, ref_clips), f"folder {reference_dir}"
        if "ndb_centres" not in stats:
            notes.append(f"NDB/K skipped: the reference has {len(ref_clips)} clips, fewer than {2 * NDB_BINS}")
    else:
        path = Path(reference_stats) if reference_stats is not None else DEFAULT_STATS
        stats, reference = metrics.load_stats(path), f"statistics {path}"
    if stats["mu"].shape[0] != features.shape[1]:
        raise WavefastError(f"reference statistics have {stats['mu'].shape[0]}-d features but the classifier "
                            f"gives {features.shape[1]}-d; use statistics made with the same classifier")
    if clips.shape[0] <= features.shape[1]:
        notes.append(f"FID from {clips.shape[0]} clips <= {features.shape[1]} feature dims: the covariance is "
                     f"rank-deficient and FID is biased upwards; use thousands of clips to compare with papers")
    scores = metrics.sc09_metrics(probs, features, stats)
    predicted = probs.argmax(axis=1)
    return {"command": "sc09", "generated_dir": str(generated_dir), "reference": reference,
            "classifier": str(classifier) if classifier else "shipped", "scores": scores, "notes": notes,
            "files": {str(p.relative_to(generated_dir)): {"digit": int(c), "confidence": float(probs[i, c])}
                      for i, (p, c) in enumerate(zip(paths, predicted))}}


def _print_sc09(result: dict) -> None:
    s = result["scores"]
    is10 = None if s["is_10split_mean"] is None else f"{s['is_10split_mean']:.4g} +- {s['is_10split_std']:.2g}"
    rows = [["FID", s["fid"], "lower is better"],
            ["IS", s["is"], "exp E KL(p(y|x) || p(y)), all clips"],
            ["IS (10 splits)", is10, "mean +- std over 10 splits"],
            ["IS (SaShiMi)", s["is_sashimi"], "split-half, marginal from the other half"],
            ["mIS", s["mis"], "exp E_ij KL(p(y|x_i) || p(y|x_j))"],
            ["AM", s["am"], "lower is better"],
            ["NDB/K", s["ndb_k"], f"K={NDB_BINS}, alpha 0.05, lower is better"]]
    print(f"SC09 scores of {s['n']} clips in {result['generated_dir']} against {result['reference']}")
    print(report.format_table(rows, ["metric", "value", "note"]))
    print("predicted digits: " + " ".join(f"{d}:{n}" for d, n in enumerate(s["class_histogram"])))
    for note in result["notes"]:
        print(f"note: {note}")


# --- vocoder -----------------------------------------------------------------------------------
def _pairs(generated_dir, reference_dir) -> List[Tuple[Path, Path]]:
    generated = list_wavs(generated_dir)
    reference_dir = Path(reference_dir)
    if not reference_dir.is_dir():
        raise WavefastError(f"reference folder not found: {reference_dir}")
    missing = [p.name for p in generated if not (reference_dir / p.name).is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise WavefastError(f"{len(missing)} generated file(s) have no reference of the same name in "
                            f"{reference_dir}: {shown}")
    return [(p, reference_dir / p.name) for p in generated]


def evaluate_vocoder_folder(generated_dir, reference_dir, progress: bool = True) -> dict:
    """Pair ``generated_dir/NAME.wav`` with ``reference_dir/NAME.wav`` and compute
    ``vocoder_scores`` for each pair (generated resampled to the reference's rate if they
    differ; lengths cropped to the shorter, an error beyond max(2048 samples, 5%))."""
    from tqdm.auto import tqdm

    from ..audio.io import read_audio
    from .vocoder_metrics import vocoder_scores

    pairs = _pairs(generated_dir, reference_dir)
    per_file, resampled, cropped = {}, {}, 0
    for gen_path, ref_path in tqdm(pairs, desc="vocoder metrics", unit="file", disable=not progress):
        ref, ref_sr = read_audio(ref_path)
        gen, gen_sr = read_audio(gen_path)
        if gen_sr != ref_sr:
            from ..audio.io import resample

            resampled[gen_sr] = resampled.get(gen_sr, 0) + 1
            gen = resample(gen, gen_sr, ref_sr)
        difference = abs(gen.size - ref.size)
        if difference > max(LENGTH_TOLERANCE_SAMPLES, LENGTH_TOLERANCE_FRACTION * ref.size):
            raise WavefastError(f"{gen_path.name}: generated has {gen.size} samples, reference {ref.size} "
                                f"(at {ref_sr} Hz); they differ by more than max({LENGTH_TOLERANCE_SAMPLES} "
                                f"samples, {LENGTH_TOLERANCE_FRACTION:.0%}), so they are probably not the same utterance")
        cropped += difference > 0
        scores = vocoder_scores(ref, gen, ref_sr)
        scores["seconds"] = min(gen.size, ref.size) / ref_sr
        per_file[gen_path.name] = scores
    notes = []
    if resampled:
        rates = ", ".join(f"{n} at {sr} Hz" for sr, n in sorted(resampled.items()))
        notes.append(f"resampled generated files to their reference's rate ({rates})")
        _note(notes[-1])
    if cropped:
        notes.append(f"{cropped} pair(s) differed in length and were cropped to the shorter")
    keys = ("log_mel_l1", "mr_stft", "mcd_db", "pesq_wb", "stoi")
    return {"command": "vocoder", "generated_dir": str(generated_dir), "reference_dir": str(reference_dir),
            "summary": summarise(per_file, keys), "files": per_file, "notes": notes}


def _print_summary(title: str, summary: dict, names, notes) -> None:
    print(title)
    print(report.format_table(report.summary_rows(summary, names), ["metric", "mean", "+- 95% CI", "n"]))
    for note in notes:
        print(f"note: {note}")


# --- argparse plumbing -------------------------------------------------------------------------
def _write(args, result: dict) -> None:
    if args.json:
        path = report.write_json(args.json, result)
        _note(f"wrote {path}")


def cmd_sc09(args) -> int:
    from ..devices import resolve_device

    result = evaluate_sc09_folder(args.generated_dir, args.reference, args.reference_stats, args.classifier,
                                  device=resolve_device(args.device))
    _print_sc09(result)
    _write(args, result)
    return 0


def cmd_mos(args) -> int:
    from .mos import DNSMOS_KEYS, score_folder

    from ..devices import resolve_device

    result = {"command": "mos", "dir": str(args.dir), **score_folder(args.dir, cuda=resolve_device(args.device).type
                                                                      == "cuda")}
    notes = [f"resampled {len(result['resampled'])} file(s) to 16 kHz for DNSMOS"] if result["resampled"] else []
    for note in notes:
        _note(note)
    _print_summary(f"DNSMOS of {len(result['files'])} files in {args.dir}", result["summary"], DNSMOS_KEYS, notes)
    _write(args, result)
    return 0


def cmd_vocoder(args) -> int:
    result = evaluate_vocoder_folder(args.generated_dir, args.reference)
    missing = [k for k in ("pesq_wb", "stoi") if k not in result["summary"]]
    if missing:
        result["notes"].append(f"{' and '.join(missing)} not computed (pip install pesq pystoi)")
    _print_summary(f"vocoder metrics of {len(result['files'])} pairs ({args.generated_dir} vs {args.reference})",
                   result["summary"], ("log_mel_l1", "mr_stft", "mcd_db", "pesq_wb", "stoi"), result["notes"])
    _write(args, result)
    return 0


def cmd_vocoder_table(args) -> int:
    """Vocode held-out mels with the given models and score them beside the anchors."""
    import json as _json

    from ..audio.io import load_mel, read_audio
    from ..fileio import atomic_write_text
    from .recognizer import read_transcripts
    from .vocoder_eval import evaluate_vocoders, table

    from ..vocoder import Vocoder

    mel_dir = Path(args.mels)
    mel_files = sorted(p for p in mel_dir.iterdir() if p.suffix in (".pt", ".npy")) if mel_dir.is_dir() else []
    if args.ids:
        wanted = set(_expand_ids(args.ids))
        mel_files = [p for p in mel_files if p.name.split(".")[0] in wanted]
    if not mel_files:
        raise WavefastError(f"no mel files (.pt / .npy) to evaluate in {mel_dir}")
    mels = {p.name.split(".")[0]: load_mel(p) for p in mel_files}
    references = None
    if args.references:
        references = {}
        for ident in mels:
            path = Path(args.references) / f"{ident}.wav"
            if path.is_file():
                references[ident] = read_audio(path, args.sample_rate)[0]
    transcripts = read_transcripts(args.transcripts) if args.transcripts else None
    systems = {}
    for spec_text in args.system:
        name, _, rest = spec_text.partition("=")
        path, _, opts = rest.partition(":")
        options = _system_options(spec_text, opts)
        voc = Vocoder.from_pretrained(path or None, steps=int(options["steps"]) if "steps" in options else None,
                                      plan=options.get("plan"),
                                      kappa=float(options["kappa"]) if "kappa" in options else None,
                                      clip_range=options.get("clip") == "1", dtype=options.get("dtype"))
        vocode = (lambda v: lambda ident, mel: v.vocode_long(mel, seed=0).numpy())(voc)
        systems[name] = _cached(vocode, Path(args.output).with_suffix(".audio") / name, spec_text) \
            if args.output else vocode
    results = evaluate_vocoders(systems, mels, args.sample_rate, references, transcripts, anchors=not args.no_anchors,
                                mos=not args.no_mos, pitch_from="hifigan-v1" if args.pitch_from_hifigan else None)
    text = table(results)
    print(text)
    if args.output:
        atomic_write_text(Path(args.output).with_suffix(".md"), text + "\n")
        atomic_write_text(Path(args.output).with_suffix(".json"), _json.dumps(
            {k: {"summary": v["summary"], "n": v["n"], "files": v["files"]} for k, v in results.items()}, indent=1))
    return 0


SYSTEM_OPTIONS = ("steps", "plan", "kappa", "clip", "dtype")


def _system_options(spec_text: str, opts: str) -> dict:
    """``steps=S,plan=P,kappa=K,clip=1,dtype=D`` -> dict, every key and value checked (one line naming what is
    wrong). ``dtype`` (float32 or bfloat16) runs a torch model at that precision, to score what it costs."""
    options = {}
    for item in (opts.split(",") if opts else []):
        key, eq, value = item.partition("=")
        if not eq or key not in SYSTEM_OPTIONS or not value:
            raise WavefastError(f"--system {spec_text!r}: {item!r} is not KEY=VALUE with KEY one of "
                                f"{', '.join(SYSTEM_OPTIONS)}")
        options[key] = value
    try:
        int(options.get("steps", "1")), float(options.get("kappa", "0"))
    except ValueError:
        raise WavefastError(f"--system {spec_text!r}: steps must be a whole number and kappa a number") from None
    if options.get("clip", "1") not in ("0", "1"):
        raise WavefastError(f"--system {spec_text!r}: clip must be 0 or 1 (1: map the plan's noise levels onto "
                            "the model's range)")
    if options.get("dtype", "float32") not in ("float32", "bfloat16"):
        raise WavefastError(f"--system {spec_text!r}: dtype must be float32 or bfloat16 (got {options['dtype']!r})")
    return options


def _cached(vocode, folder: Path, spec_text: str):
    """``vocode`` that keeps each utterance's audio in ``folder`` (float32 .npy) and reuses it on a rerun of
    the same system spec, so an interrupted table resumes; a changed spec starts the folder afresh."""
    import numpy as np

    from ..fileio import atomic_output, atomic_write_text

    stamp = folder / "system.txt"
    if folder.is_dir() and (not stamp.is_file() or stamp.read_text() != spec_text):
        for old in folder.glob("*.npy"):
            old.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(stamp, spec_text)

    def run(ident, mel):
        path = folder / f"{ident}.npy"
        if path.is_file():
            return np.load(path)
        audio = np.asarray(vocode(ident, mel), dtype=np.float32)
        with atomic_output(path, ".npy") as tmp:
            np.save(tmp, audio)
        return audio

    return run


def _expand_ids(text: str) -> List[str]:
    """``LJ001-0033..LJ001-0100,LJ002-0001`` -> the ids (ranges over the last number)."""
    out = []
    for part in text.split(","):
        if ".." in part:
            a, b = part.split("..")
            prefix, start = a.rsplit("-", 1)
            _, stop = b.rsplit("-", 1)
            out += [f"{prefix}-{n:0{len(start)}d}" for n in range(int(start), int(stop) + 1)]
        elif part:
            out.append(part)
    return out


def add_eval_commands(sub) -> None:
    """Add ``sc09``, ``mos`` and ``vocoder`` to an argparse sub-parser collection."""
    p = sub.add_parser("sc09", help="FID / IS / mIS / AM / NDB of generated 1 s digits (SC09 classifier)")
    p.add_argument("generated_dir", help="folder of generated .wav clips (searched recursively)")
    ref = p.add_mutually_exclusive_group()
    ref.add_argument("--reference", metavar="DIR", help="folder of real clips to compare with (e.g. SC09 train)")
    ref.add_argument("--reference-stats", metavar="NPZ",
                     help="reference statistics .npz (default: the shipped classifier-training statistics)")
    p.add_argument("--classifier", help="classifier .safetensors (default: the shipped one)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    p.add_argument("--json", metavar="OUT", help="also write the results as JSON")
    p.set_defaults(func=cmd_sc09)

    p = sub.add_parser("mos", help="DNSMOS P.808 and P.835 of every .wav in a folder")
    p.add_argument("dir", help="folder of .wav files")
    p.add_argument("--device", default="auto", help="auto (CUDA execution provider when present), cpu, cuda")
    p.add_argument("--json", metavar="OUT", help="also write the results as JSON")
    p.set_defaults(func=cmd_mos)

    p = sub.add_parser("vocoder-table", help="vocode mels with models and score them beside Griffin-Lim, HiFi-GAN "
                                             "and the recordings: DNSMOS, WER, GPE/VDE, MR-STFT, log-mel")
    p.add_argument("--mels", required=True, help="folder of mel .pt/.npy files (e.g. ../shared/data/ljspeech/mels)")
    p.add_argument("--ids", help="utterance ids or ranges, e.g. LJ001-0025..LJ001-0032 (default: all)")
    p.add_argument("--references", help="folder of recordings ID.wav (MR-STFT, log-mel, pitch, the 'real' row)")
    p.add_argument("--transcripts", help="LJSpeech-style metadata.csv for WER")
    p.add_argument("--system", action="append", default=[],
                   metavar="NAME=MODEL[:steps=S,plan=P,kappa=K,clip=1,dtype=D]",
                   help="a model to score (MODEL empty = the shipped vocoder; a .onnx graph runs in ONNX Runtime; "
                        "dtype=bfloat16 runs a torch model in bf16); repeat for several")
    p.add_argument("--sample-rate", type=int, default=22050)
    p.add_argument("--pitch-from-hifigan", action="store_true",
                   help="pitch reference = HiFi-GAN's output (for mels without recordings)")
    p.add_argument("--no-anchors", action="store_true")
    p.add_argument("--no-mos", action="store_true")
    p.add_argument("-o", "--output", help="write OUTPUT.md and OUTPUT.json; each system's audio is kept in "
                                          "OUTPUT.audio/NAME/ so a rerun resumes")
    p.set_defaults(func=cmd_vocoder_table)

    p = sub.add_parser("vocoder", help="log-mel L1, MR-STFT, MCD, PESQ, STOI against ground truth")
    p.add_argument("generated_dir", help="folder of vocoded .wav files")
    p.add_argument("--reference", required=True, metavar="DIR", help="folder of ground-truth .wav files, same names")
    p.add_argument("--json", metavar="OUT", help="also write the results as JSON")
    p.set_defaults(func=cmd_vocoder)


def cmd_train_classifier(args) -> int:
    from dataclasses import fields

    from .train_classifier import ClassifierTraining, train

    return train(ClassifierTraining(**{f.name: getattr(args, f.name) for f in fields(ClassifierTraining)}))


def add_train_classifier_command(sub) -> None:
    p = sub.add_parser("train-sc09-classifier", help="train the SC09 digit classifier used by 'eval sc09'")
    p.add_argument("--fsdd", required=True, help="FSDD recordings/ folder")
    p.add_argument("--speech-commands", required=True, help="folder with zero/ .. nine/ subfolders of 16 kHz wavs")
    p.add_argument("-o", "--output", required=True, help="output .safetensors")
    p.add_argument("--stats", help="output reference statistics .npz (default: sc09_train_stats.npz beside -o)")
    p.add_argument("--epochs", type=int, default=18)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--label-smoothing", type=float, default=0.0,
                   help="label smoothing (default 0: smoothing caps the confidence and so deflates IS)")
    p.add_argument("--sc-fraction", type=float, default=0.25, help="share of Speech Commands clips per epoch")
    p.add_argument("--sc-holdout-speakers", type=int, default=2)
    p.add_argument("--ndb-bins", type=int, default=50, help="k-means bins K for NDB/K (default 50)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1; more threads on a busy machine are slower)")
    p.set_defaults(func=cmd_train_classifier)


def register(subparsers) -> None:
    """Add ``eval``, ``sweep`` and ``train-sc09-classifier`` to the main ``wavefast`` parser."""
    add_train_classifier_command(subparsers)
    from ..images.cli import add_eval_images_parser

    p = subparsers.add_parser("eval", help="evaluate generated audio (sc09, mos, vocoder) or images")
    sub = p.add_subparsers(dest="eval_command", required=True, metavar="{sc09,mos,vocoder,images}")
    add_eval_commands(sub)
    add_eval_images_parser(sub, "images")
    p = subparsers.add_parser("sweep", help="paper-style sampler sweep: table (md + json) and plots")
    sub = p.add_subparsers(dest="sweep_command", required=True, metavar="{vocoder,sc09}")
    for kind in ("vocoder", "sc09"):
        q = sub.add_parser(kind, help=f"sweep schedules x S x kappa on the {kind} model")
        q.add_argument("--checkpoint", help="model file (default: the shipped default)")
        q.add_argument("-o", "--output", required=True, help="output folder (re-running resumes)")
        q.add_argument("--steps", default="2,4,6,10" if kind == "vocoder" else "10,20,50", help="S values")
        q.add_argument("--schedules", default="var-linear,var-quadratic,step-linear,step-quadratic",
                       help="rule schedules (comma-separated)")
        q.add_argument("--kappas", default="0,1", help="kappa values")
        q.add_argument("--presets", default="", help="published presets to add, e.g. diffwave-base-6")
        q.add_argument("--no-full-chain", action="store_true", help="skip the full T-step chain")
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
        if kind == "vocoder":
            q.add_argument("--references", required=True, help="folder of ground-truth wavs (mels are computed)")
            q.add_argument("--max-files", type=int, default=8)
            q.add_argument("--max-seconds", type=float, default=3.0, help="crop each reference (default 3 s)")
            q.add_argument("--no-mos", action="store_true", help="skip DNSMOS")
        else:
            q.add_argument("-n", type=int, default=64, help="samples per configuration")
            q.add_argument("--recognizer", action="store_true",
                           help="also score with the independent PocketSphinx digit recogniser (PS columns)")
            q.add_argument("--interval-resamples", type=int, default=200,
                           help="random halves for the 95%% intervals of FID and IS (0: none)")
            q.add_argument("--anchors", metavar="DATA_ROOT",
                           help="add anchor rows from real held-out digits (DATA_ROOT/fsdd/recordings and "
                                "DATA_ROOT/speech_commands_digits: the classifier's test splits), -n of them")
            q.add_argument("--griffin-lim", action="store_true",
                           help="two-stage models: also score the mel stage alone, inverted by Griffin-Lim (GL columns)")
        q.set_defaults(func=cmd_sweep, sweep_kind=kind)


def _csv(text: str, cast) -> list:
    try:
        return [cast(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise WavefastError(f"expected a comma-separated list, got {text!r}") from None


def _sweep_model(checkpoint, kind: str, device):
    """The shipped model of ``kind``, or ``checkpoint``: a waveform/vocoder file, or (sc09) a mel-stage image
    model, which becomes a two-stage generator with the shipped vocoder."""
    from ..models.checkpoints import load_model
    from ..models.default_models import load_default

    if not checkpoint:
        return load_default(kind, device=device)
    if kind == "sc09":
        from ..images.checkpoints import is_image_checkpoint

        if is_image_checkpoint(checkpoint):
            from ..digits.generator import load_two_stage

            model = load_two_stage(checkpoint, device=device)
            if model is None:
                raise WavefastError(f"{checkpoint} is an image model without a mel layout; "
                                    "use 'wavefast sweep-images' for image models")
            return model
    return load_model(checkpoint, device=device)


def cmd_sweep(args) -> int:
    from .sweep import configurations, sc09_sweep, vocoder_sweep

    from ..devices import resolve_device

    kind = args.sweep_kind
    device = resolve_device(args.device)
    model = _sweep_model(args.checkpoint, kind, device)
    configs = configurations(_csv(args.schedules, str), _csv(args.steps, int), _csv(args.kappas, float),
                             full_chain=not args.no_full_chain, presets=_csv(args.presets, str))
    if kind == "vocoder":
        from ..audio.io import read_audio

        if not model.spec.conditional:
            raise WavefastError("this checkpoint is unconditional; use 'wavefast sweep sc09'")
        paths = list_wavs(args.references)[: args.max_files]
        limit = int(args.max_seconds * model.spec.sample_rate)
        utterances = [(p.stem, read_audio(p, model.spec.sample_rate)[0][:limit]) for p in paths]
        rows = vocoder_sweep(model, utterances, args.output, configs, seed=args.seed, mos=not args.no_mos)
    else:
        if model.spec.conditional:
            raise WavefastError("this checkpoint is a vocoder; use 'wavefast sweep vocoder'")
        recognizer = None
        if args.recognizer:
            from .digit_recognizer import DigitRecognizer

            recognizer = DigitRecognizer()
        rows = sc09_sweep(model, args.n, args.output, configs, seed=args.seed, recognizer=recognizer,
                          resamples=args.interval_resamples, griffin_lim=args.griffin_lim) if configs else []
        if args.anchors:
            from ..digits.data import load_digit_clips
            from .sweep import sc09_anchor_rows

            root = Path(args.anchors)
            sc = root / "speech_commands_digits"
            clips, _ = load_digit_clips(root / "fsdd" / "recordings", sc if sc.is_dir() else None)["test"]
            clips = clips[np.random.default_rng(args.seed).permutation(len(clips))[: args.n]]
            rows = sc09_anchor_rows(model, clips, args.output, recognizer, args.interval_resamples, args.seed,
                                     griffin_lim=args.griffin_lim)
    print(Path(args.output, "sweep.md").read_text())
    return 0 if rows else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="wavefast eval", description="Evaluate generated audio.")
    add_eval_commands(parser.add_subparsers(dest="eval_command", required=True, metavar="{sc09,mos,vocoder}"))
    args = parser.parse_args(argv)
    return run_command(args.func, args)

if __name__ == "__main__":
    sys.exit(main())
