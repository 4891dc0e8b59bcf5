"""DiffWave network, checkpoint adapters, presets and the shipped default models."""
