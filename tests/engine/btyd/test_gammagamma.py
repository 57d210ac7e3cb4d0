"""Gamma-Gamma: published CDNOW estimates, lifetimes parity, recovery, stability."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifetimes import GammaGammaFitter

from loyal.engine.btyd import (
    GammaGammaModel,
    GammaGammaParams,
    NotFittedError,
    gamma_gamma_customer_log_likelihood,
)
from loyal.engine.btyd.gammagamma import (
    _SpendData,
    gamma_gamma_log_likelihood,
    gamma_gamma_log_likelihood_hessian,
)
from loyal.engine.btyd.simulate import simulate_gamma_gamma

# Fader, Hardie & Lee (2005), "RFM and CLV", section 4: p = 6.25, q = 3.74, gamma = 15.44 on
# the 946 CDNOW repeat buyers; Fader & Hardie's note on the model gives the full digits.
PUBLISHED = {"p": 6.2488, "q": 3.7446, "gamma": 15.4478}
PUBLISHED_LL = -4055.92


@pytest.fixture(scope="module")
def repeat_buyers(cdnow_spend: pd.DataFrame) -> pd.DataFrame:
    return cdnow_spend[cdnow_spend["frequency"] > 0]


@pytest.fixture(scope="module")
def fitted(repeat_buyers: pd.DataFrame) -> GammaGammaModel:
    return GammaGammaModel().fit(repeat_buyers["frequency"], repeat_buyers["monetary_value"])


def test_cdnow_estimates_match_the_paper(fitted: GammaGammaModel) -> None:
    assert fitted.n_customers_ == 946
    for name, value in PUBLISHED.items():
        assert getattr(fitted.params_, name) == pytest.approx(value, rel=1e-3), name
    assert fitted.log_likelihood_ == pytest.approx(PUBLISHED_LL, abs=0.01)
    assert round(fitted.params_.q, 2) == 3.74  # the paper's rounding


def test_matches_lifetimes_optimum_and_standard_errors(
    fitted: GammaGammaModel, repeat_buyers: pd.DataFrame
) -> None:
    theirs = GammaGammaFitter().fit(repeat_buyers["frequency"], repeat_buyers["monetary_value"])
    np.testing.assert_allclose(
        fitted.params_.as_array(), theirs.params_[["p", "q", "v"]].to_numpy(), rtol=1e-4
    )
    np.testing.assert_allclose(
        fitted.standard_errors_.as_array(), theirs.standard_errors_.to_numpy(), rtol=1e-3
    )
    per_customer = fitted.customer_log_likelihood(
        repeat_buyers["frequency"], repeat_buyers["monetary_value"]
    )
    assert per_customer.sum() == pytest.approx(fitted.log_likelihood_, rel=1e-12)


def test_gradient_is_the_derivative_of_the_log_likelihood(repeat_buyers: pd.DataFrame) -> None:
    x = repeat_buyers["frequency"].to_numpy(float)
    data = _SpendData(x, repeat_buyers["monetary_value"].to_numpy(), np.ones_like(x))
    theta = np.log([2.0, 3.0, 10.0])
    _, grad = gamma_gamma_log_likelihood(theta, data)
    step = 1e-6
    numeric = [
        (
            gamma_gamma_log_likelihood(theta + e, data)[0]
            - gamma_gamma_log_likelihood(theta - e, data)[0]
        )
        / (2 * step)
        for e in np.eye(3) * step
    ]
    np.testing.assert_allclose(grad, numeric, rtol=1e-6)


def test_expected_spend_matches_lifetimes(
    fitted: GammaGammaModel, cdnow_spend: pd.DataFrame
) -> None:
    twin = GammaGammaFitter()
    p, q, gamma = fitted.params_.as_array()
    twin.params_ = pd.Series({"p": p, "q": q, "v": gamma})
    x, m = cdnow_spend["frequency"], cdnow_spend["monetary_value"]
    np.testing.assert_allclose(
        fitted.conditional_expected_average_spend(x, m),
        twin.conditional_expected_average_profit(x, m),
        rtol=1e-12,
    )
    # No repeat purchase: the population mean gamma p / (q - 1).
    assert fitted.conditional_expected_average_spend([0], [0.0])[0] == pytest.approx(
        gamma * p / (q - 1)
    )


def test_weighted_fit_equals_repeated_rows(repeat_buyers: pd.DataFrame) -> None:
    x = repeat_buyers["frequency"].to_numpy()[:100]
    m = repeat_buyers["monetary_value"].to_numpy()[:100]
    counts = np.arange(100) % 3 + 1.0
    weighted = GammaGammaModel().fit(x, m, weights=counts)
    times = counts.astype(int)
    repeated = GammaGammaModel().fit(np.repeat(x, times), np.repeat(m, times))
    np.testing.assert_allclose(weighted.params_.as_array(), repeated.params_.as_array(), rtol=1e-6)
    assert weighted.log_likelihood_ == pytest.approx(repeated.log_likelihood_, abs=1e-6)


def test_simulated_parameters_are_recovered() -> None:
    truth = GammaGammaParams(p=4.0, q=3.5, gamma=20.0)
    # 120,000 customers: enough to take the warm-start path (a first fit on a sample).
    frequency = np.random.default_rng(9).integers(1, 15, 120_000).astype(float)
    spend = simulate_gamma_gamma(frequency, *truth.as_array(), seed=13)
    model = GammaGammaModel().fit(frequency, spend)
    assert model.converged_
    z = (model.params_.as_array() - truth.as_array()) / model.standard_errors_.as_array()
    assert np.all(np.abs(z) < 4), dict(zip(truth.names(), z, strict=True))


def test_extreme_spend_and_frequency_stay_finite(repeat_buyers: pd.DataFrame) -> None:
    x = np.concatenate((repeat_buyers["frequency"], [500.0, 1.0]))
    m = np.concatenate((repeat_buyers["monetary_value"], [1e9, 1e-6]))
    model = GammaGammaModel().fit(x, m)
    assert np.isfinite(model.log_likelihood_)
    ll = gamma_gamma_customer_log_likelihood(model.params_, x[-2:], m[-2:])
    assert np.all(np.isfinite(ll))
    # Same model in cents: the parameters scale, the fit does not change.
    cents = GammaGammaModel().fit(repeat_buyers["frequency"], repeat_buyers["monetary_value"] * 100)
    assert cents.params_.gamma == pytest.approx(15.4478 * 100, rel=1e-3)


def test_input_errors_say_what_to_do(repeat_buyers: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="repeat buyers only, but 1 customers have frequency 0"):
        GammaGammaModel().fit([0, 1], [0.0, 5.0])
    with pytest.raises(ValueError, match="monetary_value is not positive for 1 repeat buyers"):
        GammaGammaModel().fit([2, 1], [-3.0, 5.0])
    with pytest.raises(NotFittedError, match=r"call fit\(frequency, monetary_value\)"):
        GammaGammaModel().conditional_expected_average_spend([1], [2.0])


def test_hessian_is_the_derivative_of_the_gradient(repeat_buyers: pd.DataFrame) -> None:
    x = repeat_buyers["frequency"].to_numpy(float)
    data = _SpendData(x, repeat_buyers["monetary_value"].to_numpy(), np.ones_like(x))
    theta = np.log([2.0, 3.0, 10.0])
    _, grad, hess = gamma_gamma_log_likelihood_hessian(theta, data)
    np.testing.assert_allclose(grad, gamma_gamma_log_likelihood(theta, data)[1], rtol=1e-14)
    step = 1e-6
    numeric = [
        (
            gamma_gamma_log_likelihood(theta + e, data)[1]
            - gamma_gamma_log_likelihood(theta - e, data)[1]
        )
        / (2 * step)
        for e in np.eye(3) * step
    ]
    np.testing.assert_allclose(hess, numeric, rtol=1e-6, atol=1e-6)
