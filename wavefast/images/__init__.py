"""Image diffusion models sampled with the same FastDPM plans and reverse process as the audio models.

- :mod:`.unet`: the DDPM UNet (``DDPMUNet``) with the key layout of the published DDPM
  PyTorch ports, and its frozen ``ImageModelSpec``;
- :mod:`.checkpoints`: layout detection, presets (``ddpm-cifar10``, ``ddpm-celeba64``,
  ``ddpm-lsun-{bedroom,church,cat}``, ``tiny-28``), native safetensors;
- :mod:`.generate`: images / PNG files / grids through :func:`wavefast.samplers.sample`;
- :mod:`.data`, :mod:`.train`, :mod:`.eval`, :mod:`.cli`: Fashion-MNIST / MNIST, the small
  trainer, classifier FID/IS and Inception FID, ``wavefast eval-images`` / ``train-images``.
"""

from .checkpoints import (IMAGE_PRESETS, get_image_preset, is_image_checkpoint, load_image_model,
                          save_image_model)
from .unet import DDPMUNet, ImageModelSpec, UNetConfig

__all__ = ["DDPMUNet", "IMAGE_PRESETS", "ImageModelSpec", "UNetConfig", "get_image_preset", "is_image_checkpoint",
           "load_image_model", "save_image_model"]
