"""The two-stage spoken-digit generator: a mel DDPM (the image UNet over log-mels) and the default vocoder.

- :mod:`wavefast.digits.data`: digit clips -> the mel-image training pack;
- :mod:`wavefast.digits.generator`: :class:`TwoStageGenerator`, sampling both stages through the one sampler.
"""
