"""Training data: find corpora by layout, split them, preprocess and pack them, batch them.

- :mod:`.layouts`    ``discover(root, layout)`` -> list of :class:`AudioItem`
- :mod:`.splits`     hash split rule, hold-out patterns, the split JSON record
- :mod:`.preprocess` loudness normalisation, silence trimming, 16000-sample clips
- :mod:`.packing`    ``pack_sources`` / ``pack_items``: corpora -> one ``.npz`` (needs soundfile)
- :mod:`.pack`       ``load_pack``: read a pack with numpy only
- :mod:`.segments`   ``SegmentBatches``: random aligned (audio, mel) training batches

Nothing imported here needs soundfile or librosa; only packing calls them, lazily.
"""

from .layouts import AUDIO_SUFFIXES, DIGIT_WORDS, LAYOUTS, AudioItem, discover
from .pack import Pack, load_pack
from .packing import LAYOUT_DEFAULTS, gather_sources, pack_items, pack_sources
from .preprocess import fit_clip, normalize_loudness, place_clip, trim_silence
from .segments import DataPosition, SegmentBatches, crop_segment
from .splits import SPLITS, apply_holdout, hash_split, split_json_path, write_split_json

__all__ = [
    "AUDIO_SUFFIXES", "DIGIT_WORDS", "LAYOUTS", "LAYOUT_DEFAULTS", "SPLITS", "AudioItem", "DataPosition", "Pack",
    "SegmentBatches", "apply_holdout", "crop_segment", "discover", "fit_clip", "gather_sources", "hash_split",
    "load_pack", "normalize_loudness", "pack_items", "pack_sources", "place_clip", "split_json_path",
    "trim_silence", "write_split_json",
]
