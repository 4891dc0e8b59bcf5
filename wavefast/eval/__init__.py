"""Evaluation: metrics as pure numpy functions, the SC09 classifier, DNSMOS and vocoder metrics.

- ``metrics``: FID (``frechet_distance``, ``fid_from_features``, ``feature_stats``), KID
  (``kernel_distance``), IS (``inception_score``, ``inception_score_sashimi``), mIS, AM, NDB/K, t-intervals;
- ``classifier``: ``load_sc09_classifier``, ``classify``, ``prepare_clip``;
- ``mos``: DNSMOS P.808 / P.835 via ``speechmos`` (``dnsmos``, ``score_folder``);
- ``vocoder_metrics``: log-mel L1, multi-resolution STFT, MCD, PESQ, STOI;
- ``cli``: ``wavefast eval {sc09,mos,vocoder}``; ``report``: JSON and text tables.
"""

import importlib

_EXPORTS = {
    "classifier": ("classify", "load_sc09_classifier", "prepare_clip"),
    "metrics": ("am_score", "feature_stats", "fid_from_features", "frechet_distance", "inception_score",
                "inception_score_per_split", "inception_score_sashimi", "kernel_distance", "load_feature_stats",
                "load_stats", "mean_confidence_interval", "modified_inception_score", "ndb_bins", "ndb_from_bins",
                "ndb_score", "save_feature_stats", "save_stats", "sc09_metrics"),
    "vocoder_metrics": ("log_mel_l1", "mel_cepstral_distortion", "multi_resolution_stft_distance", "pesq_wb",
                        "stoi_score", "vocoder_scores"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name):
    """Import on first use, so that ``wavefast --help`` (which registers ``eval``) stays fast."""
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
