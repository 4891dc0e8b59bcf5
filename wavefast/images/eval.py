"""Compatibility names: the old home of the image evaluation code, now split by job.

- :mod:`.classifier`: the image classifier, classifier FID / IS, reference statistics;
- :mod:`.inception`: the pytorch-fid Inception network and Inception FID;
- :mod:`.folders`: ``read_image_folder``, ``evaluate_image_folder`` (``wavefast eval-images``);
- :mod:`.sweep`: the FastDPM image sweep (``wavefast sweep-images``);
- :mod:`.train_classifier`: building the shipped classifier (``wavefast train-image-classifier``);
- :func:`wavefast.eval.metrics.kernel_distance`: KID.

New code should import from those modules; this one only re-exports them.
"""

from ..eval.metrics import kernel_distance
from ..models.default_models import WEIGHTS_DIR
from .classifier import (CLASSIFIER_FORMAT, CLASSIFIER_KEY, DEFAULT_CLASSIFIER, DEFAULT_STATS, ClassifierConfig,
                         ImageClassifier, classifier_metrics, classifier_reference_stats, classify_images,
                         load_classifier, save_classifier)
from .folders import evaluate_image_folder, read_image_folder
from .inception import FIDInception, inception_features, inception_fid, inception_reference_stats, load_fid_inception
from .sweep import (SweepSetting, clip_study_settings, fastdpm_sweep_settings, run_sweep, summarize_sweep,
                    sweep_table, valid_settings)
from .train_classifier import train_classifier

__all__ = ["CLASSIFIER_FORMAT", "CLASSIFIER_KEY", "DEFAULT_CLASSIFIER", "DEFAULT_STATS", "WEIGHTS_DIR",
           "ClassifierConfig", "FIDInception", "ImageClassifier", "SweepSetting", "classifier_metrics",
           "classifier_reference_stats", "classify_images", "clip_study_settings", "evaluate_image_folder",
           "fastdpm_sweep_settings", "inception_features", "inception_fid", "inception_reference_stats",
           "kernel_distance", "load_classifier", "load_fid_inception", "read_image_folder", "run_sweep",
           "save_classifier", "summarize_sweep", "sweep_table", "train_classifier", "valid_settings"]

if __name__ == "__main__":  # the old 'python -m wavefast.images.eval' commands
    raise SystemExit("wavefast: 'python -m wavefast.images.eval' is gone: use 'wavefast train-image-classifier' "
                     "(was --train) or 'wavefast sweep-images' (was --sweep / --summarize)")
