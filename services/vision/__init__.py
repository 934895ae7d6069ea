"""Perception every service shares: face analysis and the person mask (serving code only; converters live in training/)."""
