"""EngineSettings: defaults and validation that names the bad value."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, replace

import pytest

from loyal.engine.settings import EngineSettings


def test_defaults_are_valid_and_frozen():
    settings = EngineSettings()
    assert settings.churn_window_days is None
    assert settings.abc_thresholds == (0.8, 0.9)
    assert settings.contact_kinds == ("call", "chat", "email", "sms", "visit", "wechat")
    with pytest.raises(FrozenInstanceError):
        settings.rfm_bins = 4  # type: ignore[misc]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"churn_window_days": 0}, "churn_window_days must be positive or None, got 0"),
        ({"abc_thresholds": (0.9, 0.8)}, "abc_thresholds must satisfy 0 < A < B < 1"),
        ({"trend_freq": "year"}, "trend_freq must be one of"),
        ({"rfm_bins": 1}, "rfm_bins must be in [2, 100], got 1"),
        ({"contact_costs": {"call": -1.0}}, "contact_costs['call'] must be >= 0"),
        ({"critical_retained_days": (30, 180)}, "critical_retained_days must be"),
        ({"p_alive_churn_threshold": 0.6}, "p_alive_churn_threshold <= p_alive_at_risk"),
        ({"return_class_thresholds": (50.0, 10.0)}, "return_class_thresholds must be"),
    ],
)
def test_invalid_settings_say_what_and_which_value(change, message):
    with pytest.raises(ValueError) as error:
        replace(EngineSettings(), **change)
    assert message in str(error.value)


def test_every_problem_is_reported_at_once():
    with pytest.raises(ValueError) as error:
        EngineSettings(rfm_bins=0, km_alpha=2.0)
    assert "rfm_bins" in str(error.value) and "km_alpha" in str(error.value)
