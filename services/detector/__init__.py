"""Damage detector: per-type damage masks, fading and black-and-white scores, faces."""
