"""Flags win over REVIVE_* environment variables, which win over defaults."""

from __future__ import annotations

import pytest

from services.detector.service import DEFINITION


def test_environment_sets_defaults_and_flags_override(monkeypatch):
    monkeypatch.setenv("REVIVE_PORT", "6001")
    monkeypatch.setenv("REVIVE_MAX_CONCURRENCY", "3")
    monkeypatch.setenv("REVIVE_PROVIDERS", "cuda, cpu")
    config = DEFINITION.parse(["--port", "7001"])
    assert config.port == 7001
    assert config.max_concurrency == 3
    assert config.providers == ("cuda", "cpu")
    assert config.max_message_bytes == 256 * 1024 * 1024


def test_service_defaults():
    config = DEFINITION.parse([])
    assert (config.port, config.metrics_port, config.default_engine) == (50051, 9101, "unet")


def test_bad_values_are_refused(capsys):
    with pytest.raises(SystemExit):
        DEFINITION.parse(["--max-concurrency", "0"])
    assert "max-concurrency" in capsys.readouterr().err
