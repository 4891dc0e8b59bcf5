"""Spoken digit words synthesised offline with the Debian TTS engines, as extra training clips.

Engines (whichever are installed; ``apt-get install espeak-ng flite festival festvox-kallpc16k
festvox-kdlpc16k festvox-us-slt-hts``):

- espeak-ng: ``ESPEAK_ACCENTS`` x ``ESPEAK_VARIANTS`` (formant synthesis, 22.05 kHz);
- flite: its built-in voices ``FLITE_VOICES`` (diphone / clustergen, 8-16 kHz);
- festival: the installed voices among ``FESTIVAL_VOICES`` (diphone, HTS; 16-32 kHz).

Take ``k`` of digit ``d`` draws, from a generator seeded by ``(seed, d, k)`` only (so a folder
is the same however often it is resumed or extended, given the same installed voices), an engine uniformly from the installed
ones, then one of its voices uniformly (so espeak-ng's many formant voices do not crowd out the
more natural diphone / HTS ones), a speaking-rate factor ``U(0.8, 1.25)`` and, where the engine takes it, a pitch. It is
written as ``{d}_{voice tag}_{k}.wav`` (the FSDD naming: ``wavefast pack-digit-mels
--synthetic DIR`` reads it, into the train split only) through a temporary file, and a file
already there is kept, so an interrupted run resumes. Every engine runs as an argument list,
never through a shell.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np

from ..errors import WavefastError
from ..eval.classifier import DIGITS

ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
                  "en-029", "en-us-nyc")
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2",
                   "klatt3", "adam", "edward", "john", "linda", "steph", "max", "paul", "robert", "annie", "andy")
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
FESTIVAL_VOICES = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")
RATE_RANGE = (0.8, 1.25)
ENGINE_TIMEOUT_S = 60


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker: ``engine`` (espeak-ng | flite | festival) and its voice ``name``."""

    engine: str
    name: str

    @property
    def tag(self) -> str:
        """The voice as an FSDD speaker field (letters and digits only)."""
        return re.sub(r"[^A-Za-z0-9]", "", f"{self.engine[:2]}{self.name}")


def installed_voices() -> List[Voice]:
    """Every voice of the engines found on PATH (festival: only voices whose folder exists)."""
    voices: List[Voice] = []
    if shutil.which("espeak-ng"):
        voices += [Voice("espeak-ng", f"{a}+{v}") for a in ESPEAK_ACCENTS for v in ESPEAK_VARIANTS]
    if shutil.which("flite"):
        voices += [Voice("flite", v) for v in FLITE_VOICES]
    if shutil.which("text2wave"):
        roots = [Path("/usr/share/festival/voices"), Path("/usr/lib/festival/voices")]
        found = {p.name for root in roots if root.is_dir() for p in root.glob("*/*") if p.is_dir()}
        voices += [Voice("festival", v) for v in FESTIVAL_VOICES if v in found]
    return voices


def engine_command(voice: Voice, word: str, rate: float, pitch: float, wav: Path, text_file: Path) -> List[str]:
    """The argument list that makes ``voice`` say ``word`` into ``wav``.

    ``rate`` > 1 speaks faster; ``pitch`` in [0, 1] (espeak-ng's 0-99 scale; flite: a mean F0
    of 90-210 Hz; festival ignores it).
    """
    if voice.engine == "espeak-ng":
        return ["espeak-ng", "-v", voice.name, "-s", str(int(round(165 * rate))), "-p", str(int(round(99 * pitch))),
                "-w", str(wav), word]
    if voice.engine == "flite":
        return ["flite", "-voice", voice.name, "--setf", f"duration_stretch={1 / rate:.3f}",
                "--setf", f"int_f0_target_mean={90 + 120 * pitch:.0f}", "-t", word, "-o", str(wav)]
    if voice.engine == "festival":
        text_file.write_text(word + "\n")
        return ["text2wave", "-eval", f"(voice_{voice.name})", "-eval",
                f"(Parameter.set 'Duration_Stretch {1 / rate:.3f})", "-o", str(wav), str(text_file)]
    raise WavefastError(f"unknown TTS engine {voice.engine!r}; allowed: espeak-ng, flite, festival")


def take_settings(voices: Sequence[Voice], seed: int, digit: int, take: int) -> Tuple[Voice, float, float]:
    """(voice, rate, pitch) of take ``take`` of ``digit``: a function of (voices, seed, digit, take) only, so
    other takes, the number of takes and a resumed run never change it (the same engines installed)."""
    rng = np.random.default_rng([seed, digit, take])
    engines = sorted({v.engine for v in voices})
    engine = engines[int(rng.integers(len(engines)))]
    of_engine = [v for v in voices if v.engine == engine]
    voice = of_engine[int(rng.integers(len(of_engine)))]
    return voice, float(rng.uniform(*RATE_RANGE)), float(rng.uniform(0.2, 0.8))


def synthesize_digits(out_dir, takes_per_digit: int, seed: int = 0, voices: Sequence[Voice] = (),
                      progress: bool = True) -> List[Path]:
    """Write ``takes_per_digit`` clips of each digit word into ``out_dir``; returns every clip path.

    ``voices`` defaults to :func:`installed_voices`. A clip already present is kept (resume).
    """
    from tqdm.auto import tqdm

    voices = list(voices) or installed_voices()
    if not voices:
        raise WavefastError("no TTS engine found; install one of espeak-ng, flite, festival "
                            "(apt-get install espeak-ng flite festival festvox-kallpc16k)")
    if takes_per_digit < 1:
        raise WavefastError(f"takes per digit must be >= 1, got {takes_per_digit}")
    from ..fileio import check_output_folder

    out_dir = check_output_folder(out_dir, what="synthetic clips folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    jobs = [(d, k) for k in range(takes_per_digit) for d in range(10)]
    with tempfile.TemporaryDirectory(prefix="wavefast-synth-") as scratch:
        scratch = Path(scratch)
        for digit, take in tqdm(jobs, desc="synthesising digits", unit="clip", disable=not progress):
            voice, rate, pitch = take_settings(voices, seed, digit, take)
            target = out_dir / f"{digit}_{voice.tag}_{take}.wav"
            paths.append(target)
            if target.is_file():
                continue
            tmp = scratch / "clip.wav"
            command = engine_command(voice, DIGITS[digit], rate, pitch, tmp, scratch / "word.txt")
            try:
                result = subprocess.run(command, capture_output=True, timeout=ENGINE_TIMEOUT_S)
            except (OSError, subprocess.TimeoutExpired) as err:
                raise WavefastError(f"{voice.engine} failed on {DIGITS[digit]!r} with voice {voice.name}: {err}")
            if result.returncode != 0 or not tmp.is_file() or tmp.stat().st_size <= 44:
                message = result.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no audio written"]
                raise WavefastError(f"{voice.engine} failed on {DIGITS[digit]!r} with voice {voice.name}: "
                                    f"{message[0]}")
            shutil.move(str(tmp), str(target.with_suffix(".part")))
            os.replace(target.with_suffix(".part"), target)
    return paths
