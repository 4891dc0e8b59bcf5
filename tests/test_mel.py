"""Mel front ends against the shipped data format and their published definitions."""

import numpy as np
import pytest
import torch

from wavefast.audio.io import read_audio
from wavefast.audio.mel import guess_frontend, htk_mel_filterbank, mel_spectrogram, slaney_mel_filterbank

librosa = pytest.importorskip("librosa")


def test_tacotron2_recomputes_shared_mels(shared_data):
    mel_dir, wav_dir = shared_data / "ljspeech" / "mels", shared_data / "ljspeech" / "wavs"
    names = sorted(p.name[: -len(".wav.pt")] for p in mel_dir.glob("*.wav.pt") if (wav_dir / p.name[:-3]).exists())[:4]
    assert names, "no mel/wav pairs found"
    for name in names:
        audio, sr = read_audio(wav_dir / f"{name}.wav")
        assert sr == 22050
        ours = mel_spectrogram(audio, "tacotron2", sr)
        ref = torch.load(mel_dir / f"{name}.wav.pt", weights_only=True)
        assert ours.shape == ref.shape == (80, len(audio) // 256 + 1)
        assert (ours - ref).abs().max() < 2e-3


def test_filterbanks_match_librosa():
    assert np.allclose(slaney_mel_filterbank(22050, 1024, 80, 0, 8000),
                       librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=0, fmax=8000), atol=1e-7)
    assert np.allclose(htk_mel_filterbank(22050, 1024, 80, 20, 11025),
                       librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=20, fmax=11025, htk=True, norm=None),
                       atol=1e-7)


def _lmnt_reference(audio, sr):
    """lmnt preprocess: torchaudio MelSpectrogram(power=1, normalized=True, f_min=20, f_max=sr/2), dB, scaled."""
    window = np.hanning(1025)[:-1]  # periodic Hann
    stft = librosa.stft(audio.astype(np.float64), n_fft=1024, hop_length=256, win_length=1024, window=window,
                        center=True, pad_mode="reflect")
    spec = np.abs(stft) / np.sqrt(np.sum(window ** 2))
    fb = librosa.filters.mel(sr=sr, n_fft=1024, n_mels=80, fmin=20.0, fmax=sr / 2, htk=True, norm=None)
    db = 20 * np.log10(np.maximum(fb @ spec, 1e-5)) - 20
    return np.clip((db + 100) / 100, 0.0, 1.0)


def test_lmnt_front_end_matches_its_definition():
    rng = np.random.default_rng(0)
    t = np.arange(22050) / 22050
    audio = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(t.size))
    ours = mel_spectrogram(audio.astype(np.float32), "lmnt", 22050).numpy()
    assert np.abs(ours - _lmnt_reference(audio, 22050)).max() < 1e-4
    assert ours.min() >= 0 and ours.max() <= 1


def test_lmnt_front_end_matches_torchaudio_when_installed():
    torchaudio = pytest.importorskip("torchaudio")
    audio = torch.randn(8000) * 0.1
    transform = torchaudio.transforms.MelSpectrogram(sample_rate=22050, win_length=1024, hop_length=256, n_fft=1024,
                                                     f_min=20.0, f_max=11025.0, n_mels=80, power=1.0, normalized=True)
    ref = torch.clamp((20 * torch.log10(torch.clamp(transform(audio), min=1e-5)) - 20 + 100) / 100, 0, 1)
    assert (mel_spectrogram(audio, "lmnt", 22050) - ref).abs().max() < 1e-4


def test_batched_and_guess():
    audio = torch.randn(2, 3000) * 0.1
    batched = mel_spectrogram(audio, "tacotron2", 22050)
    assert batched.shape == (2, 80, 3000 // 256 + 1)
    assert torch.allclose(batched[1], mel_spectrogram(audio[1], "tacotron2", 22050), atol=1e-5)
    assert guess_frontend(batched) == "tacotron2"
    assert guess_frontend(mel_spectrogram(audio, "lmnt", 22050)) == "lmnt"
