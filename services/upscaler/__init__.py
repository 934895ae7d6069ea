"""Upscaler: super-resolution x2/x4 up to 4096 pixels on a side."""
