"""Pareto/NBD: published CDNOW estimates, lifetimes parity, recovery, stability."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifetimes import ParetoNBDFitter
from scipy.special import hyp2f1

from loyal.engine.btyd import (
    ConvergenceWarning,
    NotFittedError,
    ParetoNBDModel,
    ParetoNBDParams,
    group_histories,
    paretonbd_log_likelihood,
)
from loyal.engine.btyd._fitting import Histories
from loyal.engine.btyd._hyp import log_beta_integral
from loyal.engine.btyd.simulate import simulate_paretonbd

# Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way", section 5 (CDNOW).
PUBLISHED = {"r": 0.5532, "alpha": 10.5763, "s": 0.6062, "beta": 11.6715}
PUBLISHED_LL = -9594.98


@pytest.fixture(scope="module")
def fitted(cdnow: pd.DataFrame) -> ParetoNBDModel:
    return ParetoNBDModel().fit(cdnow["frequency"], cdnow["recency"], cdnow["T"])


def lifetimes_twin(model: ParetoNBDModel) -> ParetoNBDFitter:
    twin = ParetoNBDFitter()
    twin.params_ = pd.Series(model.params_.as_dict())
    return twin


def test_cdnow_estimates_match_the_paper(fitted: ParetoNBDModel) -> None:
    # The true maximum (beta 11.668) is 0.03 % from the published 11.6715.
    for name, value in PUBLISHED.items():
        assert getattr(fitted.params_, name) == pytest.approx(value, rel=1e-3), name
    assert fitted.log_likelihood_ == pytest.approx(PUBLISHED_LL, abs=0.01)
    assert fitted.log_likelihood_ >= PUBLISHED_LL - 1e-3


def test_log_likelihood_matches_lifetimes_formula(cdnow: pd.DataFrame) -> None:
    data = Histories.from_arrays(cdnow["frequency"], cdnow["recency"], cdnow["T"])
    args = (cdnow["frequency"].to_numpy(), cdnow["recency"].to_numpy(), cdnow["T"].to_numpy())
    for params in ([0.55, 10.6, 0.61, 11.7], [0.5, 12.0, 0.6, 8.0], [2.0, 1.0, 3.0, 100.0]):
        ours, _ = paretonbd_log_likelihood(np.log(params), data)
        theirs = ParetoNBDFitter._conditional_log_likelihood(params, *args).sum()
        assert ours == pytest.approx(theirs, rel=1e-12)


@pytest.mark.parametrize("params", [[0.5, 12.0, 0.6, 8.0], [2.0, 1.0, 3.0, 100.0]])
def test_gradient_is_the_derivative_of_the_log_likelihood(
    cdnow: pd.DataFrame, params: list[float]
) -> None:
    data = Histories.from_arrays(cdnow["frequency"], cdnow["recency"], cdnow["T"])
    theta = np.log(params)
    _, grad = paretonbd_log_likelihood(theta, data)
    step = 1e-6
    numeric = [
        (
            paretonbd_log_likelihood(theta + e, data)[0]
            - paretonbd_log_likelihood(theta - e, data)[0]
        )
        / (2 * step)
        for e in np.eye(4) * step
    ]
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-5)


def test_beta_integral_matches_scipy_hyp2f1() -> None:
    rng = np.random.default_rng(0)
    m = np.exp(rng.uniform(np.log(0.05), np.log(600), 500))
    q = np.minimum(np.exp(rng.uniform(np.log(0.05), np.log(600), 500)), m + 0.99)
    z = rng.uniform(0.0, 0.999, 500)
    expected = np.log(hyp2f1(m, q, m + 1, z) / m)
    ok = np.isfinite(expected)
    log_j = log_beta_integral(m, q, z, 1 - z)[0]
    np.testing.assert_allclose(log_j[ok], expected[ok], rtol=1e-12, atol=1e-12)
    # Where scipy overflows (x in the hundreds, z near 1) the log stays finite.
    near_one = log_beta_integral(
        np.array([500.5]), np.array([500.2]), np.array([0.9999]), np.array([1e-4])
    )[0]
    assert np.isfinite(near_one).all()


def test_grouped_fit_equals_customer_fit(fitted: ParetoNBDModel, cdnow: pd.DataFrame) -> None:
    x, t_x, age, counts, _ = group_histories(cdnow["frequency"], cdnow["recency"], cdnow["T"])
    grouped = ParetoNBDModel().fit(x, t_x, age, weights=counts)
    np.testing.assert_allclose(grouped.params_.as_array(), fitted.params_.as_array(), rtol=1e-5)
    assert grouped.log_likelihood_ == pytest.approx(fitted.log_likelihood_, abs=1e-6)


def test_predictions_match_lifetimes(fitted: ParetoNBDModel, cdnow: pd.DataFrame) -> None:
    x, t_x, age = (cdnow[c].to_numpy() for c in ("frequency", "recency", "T"))
    twin = lifetimes_twin(fitted)
    np.testing.assert_allclose(
        fitted.conditional_probability_alive(x, t_x, age),
        twin.conditional_probability_alive(x, t_x, age),
        rtol=1e-9,
    )
    np.testing.assert_allclose(
        fitted.conditional_expected_purchases(39.0, x, t_x, age),
        twin.conditional_expected_number_of_purchases_up_to_time(39.0, x, t_x, age),
        rtol=1e-9,
    )
    times = np.array([1.0, 39.0, 78.0])
    np.testing.assert_allclose(
        fitted.expected_purchases(times),
        twin.expected_number_of_purchases_up_to_time(times),
        rtol=1e-9,
    )


def test_simulated_parameters_are_recovered() -> None:
    truth = ParetoNBDParams(r=0.6, alpha=8.0, s=0.8, beta=12.0)
    ages = np.random.default_rng(5).uniform(30, 80, 20_000)
    sim = simulate_paretonbd(20_000, ages, *truth.as_array(), seed=21)
    model = ParetoNBDModel().fit(sim.frequency, sim.recency, sim.T)
    z = (model.params_.as_array() - truth.as_array()) / model.standard_errors_.as_array()
    assert np.all(np.abs(z) < 4), dict(zip(truth.names(), z, strict=True))


def test_extreme_frequencies_and_far_apart_rates_stay_finite(cdnow: pd.DataFrame) -> None:
    x = np.concatenate((cdnow["frequency"], [500.0, 500.0, 300.0]))
    t_x = np.concatenate((cdnow["recency"], [999.0, 10.0, 1000.0]))
    age = np.concatenate((cdnow["T"], [1000.0, 1000.0, 1000.0]))
    model = ParetoNBDModel().fit(x, t_x, age)
    assert np.isfinite(model.log_likelihood_)
    data = Histories.from_arrays(x, t_x, age)
    # alpha and beta twelve orders of magnitude apart: z is within 1e-12 of 1.
    for params in ([0.5, 1e-6, 0.6, 1e6], [0.5, 1e6, 0.6, 1e-6], [200.0, 0.1, 0.01, 50.0]):
        value, grad = paretonbd_log_likelihood(np.log(params), data)
        assert np.isfinite(value) and np.all(np.isfinite(grad)), params
    palive = model.conditional_probability_alive(x[-3:], t_x[-3:], age[-3:])
    assert np.all((palive >= 0) & (palive <= 1)) and palive[1] < 1e-6


def test_zero_frequency_only_data_does_not_break() -> None:
    age = np.linspace(1.0, 50.0, 200)
    zeros = np.zeros_like(age)
    with pytest.warns(ConvergenceWarning, match="No customer has a repeat purchase"):
        model = ParetoNBDModel().fit(zeros, zeros, age)
    # The likelihood of "no purchase" is a probability: its logarithm stays at or below 0 (the
    # optimiser once climbed quadrature error above it).
    assert np.isfinite(model.log_likelihood_) and -1e-3 < model.log_likelihood_ <= 0
    assert np.all(np.isfinite(model.conditional_probability_alive(zeros, zeros, age)))


def test_unfitted_model_says_how_to_fit() -> None:
    with pytest.raises(NotFittedError, match="ParetoNBDModel is not fitted yet"):
        ParetoNBDModel().conditional_expected_purchases(1.0, [1], [1], [2])
