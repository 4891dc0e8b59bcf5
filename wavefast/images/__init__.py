"""Image diffusion models sampled with the same FastDPM plans and reverse process as the audio models.

- :mod:`.unet`: the DDPM UNet (``DDPMUNet``) with the key layout of the published DDPM
  PyTorch ports, and its frozen ``ImageModelSpec``;
- :mod:`.checkpoints`: layout detection, presets (``ddpm-cifar10``, ``ddpm-celeba64``,
  ``ddpm-lsun-{bedroom,church,cat}``, ``tiny-28``), native safetensors;
- :mod:`.generate`: images and PNG folders through :func:`wavefast.samplers.sample`;
  :mod:`.png`: the PNG codec and grids;
- :mod:`.data`, :mod:`.train`: Fashion-MNIST / MNIST and the small trainer;
- :mod:`.classifier` (classifier FID / IS), :mod:`.inception` (Inception FID), :mod:`.folders`
  (scoring a folder of PNGs), :mod:`.sweep` (the FastDPM sweep), :mod:`.train_classifier`;
  :mod:`.eval` only re-exports their old names;
- :mod:`.cli`: ``wavefast eval-images`` / ``train-images`` / ``sweep-images`` / ``train-image-classifier``.
"""

from .checkpoints import (IMAGE_PRESETS, get_image_preset, is_image_checkpoint, load_image_model,
                          save_image_model)
from .unet import DDPMUNet, ImageModelSpec, UNetConfig

__all__ = ["DDPMUNet", "IMAGE_PRESETS", "ImageModelSpec", "UNetConfig", "get_image_preset", "is_image_checkpoint",
           "load_image_model", "save_image_model"]
