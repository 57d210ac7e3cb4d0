"""BG/NBD: published CDNOW estimates, lifetimes parity, recovery, stability."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from lifetimes import BetaGeoFitter

from loyal.engine.btyd import (
    BetaGeoModel,
    BetaGeoParams,
    ConvergenceWarning,
    NotFittedError,
    bgnbd_customer_log_likelihood,
    bgnbd_log_likelihood,
    group_histories,
)
from loyal.engine.btyd._fitting import Histories
from loyal.engine.btyd.bgnbd import bgnbd_log_likelihood_hessian
from loyal.engine.btyd.simulate import simulate_bgnbd

# Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way", section 5 (CDNOW).
PUBLISHED = {"r": 0.2426, "alpha": 4.4136, "a": 0.7929, "b": 2.4259}
PUBLISHED_LL = -9582.43


@pytest.fixture(scope="module")
def fitted(cdnow: pd.DataFrame) -> BetaGeoModel:
    return BetaGeoModel().fit(cdnow["frequency"], cdnow["recency"], cdnow["T"])


def lifetimes_twin(model: BetaGeoModel) -> BetaGeoFitter:
    """A lifetimes fitter carrying our parameters, to compare formulas rather than optima."""
    twin = BetaGeoFitter()
    twin.params_ = pd.Series(model.params_.as_dict())
    return twin


def test_cdnow_estimates_match_the_paper(fitted: BetaGeoModel) -> None:
    for name, value in PUBLISHED.items():
        assert getattr(fitted.params_, name) == pytest.approx(value, rel=1e-3), name
    assert fitted.log_likelihood_ == pytest.approx(PUBLISHED_LL, abs=0.01)
    assert fitted.n_customers_ == 2357
    assert fitted.converged_


def test_cdnow_optimum_is_at_least_as_good_as_lifetimes(
    fitted: BetaGeoModel, cdnow: pd.DataFrame
) -> None:
    theirs = BetaGeoFitter().fit(cdnow["frequency"], cdnow["recency"], cdnow["T"])
    their_params = BetaGeoParams(*theirs.params_[["r", "alpha", "a", "b"]])
    their_ll = bgnbd_customer_log_likelihood(
        their_params, cdnow["frequency"], cdnow["recency"], cdnow["T"]
    ).sum()
    assert fitted.log_likelihood_ >= their_ll - 1e-6 * abs(their_ll)
    # Standard errors: lifetimes uses the same inverse-Hessian delta method.
    ours = fitted.standard_errors_.as_array()
    np.testing.assert_allclose(ours, theirs.standard_errors_.to_numpy(), rtol=1e-3)


def test_log_likelihood_sum_equals_per_customer_terms(
    fitted: BetaGeoModel, cdnow: pd.DataFrame
) -> None:
    per_customer = fitted.customer_log_likelihood(cdnow["frequency"], cdnow["recency"], cdnow["T"])
    assert per_customer.sum() == pytest.approx(fitted.log_likelihood_, rel=1e-12)


def test_gradient_is_the_derivative_of_the_log_likelihood(cdnow: pd.DataFrame) -> None:
    data = Histories.from_arrays(cdnow["frequency"], cdnow["recency"], cdnow["T"])
    theta = np.log([0.5, 3.0, 1.2, 4.0])
    _, grad = bgnbd_log_likelihood(theta, data)
    step = 1e-6
    numeric = [
        (bgnbd_log_likelihood(theta + e, data)[0] - bgnbd_log_likelihood(theta - e, data)[0])
        / (2 * step)
        for e in np.eye(4) * step
    ]
    np.testing.assert_allclose(grad, numeric, rtol=1e-6)


@pytest.mark.parametrize(
    "params", [[0.5, 3.0, 1.2, 4.0], [0.24, 4.4, 0.79, 2.4], [3.0, 0.5, 0.1, 30.0]]
)
def test_hessian_is_the_derivative_of_the_gradient(
    cdnow: pd.DataFrame, params: list[float]
) -> None:
    data = Histories.from_arrays(cdnow["frequency"], cdnow["recency"], cdnow["T"])
    theta = np.log(params)
    value, grad, hess = bgnbd_log_likelihood_hessian(theta, data)
    assert (value, list(grad)) == (
        bgnbd_log_likelihood(theta, data)[0],
        list(bgnbd_log_likelihood(theta, data)[1]),
    )
    step = 1e-6
    numeric = [
        (bgnbd_log_likelihood(theta + e, data)[1] - bgnbd_log_likelihood(theta - e, data)[1])
        / (2 * step)
        for e in np.eye(4) * step
    ]
    np.testing.assert_allclose(hess, numeric, rtol=1e-6, atol=1e-6)


def test_grouped_fit_equals_customer_fit(fitted: BetaGeoModel, cdnow: pd.DataFrame) -> None:
    x, t_x, age, counts, inverse = group_histories(cdnow["frequency"], cdnow["recency"], cdnow["T"])
    assert counts.sum() == len(cdnow) and x.shape[0] < len(cdnow)
    np.testing.assert_array_equal(x[inverse], cdnow["frequency"].to_numpy())
    grouped = BetaGeoModel().fit(x, t_x, age, weights=counts)
    np.testing.assert_allclose(grouped.params_.as_array(), fitted.params_.as_array(), rtol=1e-6)
    assert grouped.log_likelihood_ == pytest.approx(fitted.log_likelihood_, abs=1e-6)
    assert grouped.n_customers_ == fitted.n_customers_


def test_predictions_match_lifetimes(fitted: BetaGeoModel, cdnow: pd.DataFrame) -> None:
    x, t_x, age = cdnow["frequency"], cdnow["recency"], cdnow["T"]
    twin = lifetimes_twin(fitted)
    np.testing.assert_allclose(
        fitted.conditional_probability_alive(x, t_x, age),
        twin.conditional_probability_alive(x, t_x, age),
        rtol=1e-9,
    )
    for t in (1.0, 39.0, 104.0):
        np.testing.assert_allclose(
            fitted.conditional_expected_purchases(t, x, t_x, age),
            twin.conditional_expected_number_of_purchases_up_to_time(t, x, t_x, age),
            rtol=1e-9,
        )
    times = np.array([1.0, 10.0, 39.0, 78.0])
    np.testing.assert_allclose(
        fitted.expected_purchases(times),
        twin.expected_number_of_purchases_up_to_time(times),
        rtol=1e-9,
    )


def test_simulated_parameters_are_recovered() -> None:
    truth = BetaGeoParams(r=0.5, alpha=6.0, a=0.9, b=3.0)
    # 120,000 customers: enough to take the warm-start path (a first fit on a sample).
    ages = np.random.default_rng(7).uniform(30, 80, 120_000)
    sim = simulate_bgnbd(120_000, ages, *truth.as_array(), seed=11)
    model = BetaGeoModel().fit(sim.frequency, sim.recency, sim.T)
    assert model.converged_
    # Each estimate lies within a few standard errors of the truth.
    z = (model.params_.as_array() - truth.as_array()) / model.standard_errors_.as_array()
    assert np.all(np.abs(z) < 4), dict(zip(truth.names(), z, strict=True))
    np.testing.assert_allclose(model.params_.as_array(), truth.as_array(), rtol=0.1)


def test_extreme_frequencies_stay_finite(cdnow: pd.DataFrame) -> None:
    # (alpha + T)^(r + x) overflows for x = 500 (the "#NUM!" of Fader & Hardie's Excel note).
    x = np.concatenate((cdnow["frequency"], [500.0, 500.0, 300.0]))
    t_x = np.concatenate((cdnow["recency"], [999.0, 10.0, 1000.0]))
    age = np.concatenate((cdnow["T"], [1000.0, 1000.0, 1000.0]))
    model = BetaGeoModel().fit(x, t_x, age)
    assert np.isfinite(model.log_likelihood_)
    assert np.all(np.isfinite(model.params_.as_array()))
    ll = model.customer_log_likelihood(x[-3:], t_x[-3:], age[-3:])
    assert np.all(np.isfinite(ll))
    # The same values as lifetimes' log-form likelihood.
    theirs = (
        -BetaGeoFitter._negative_log_likelihood(
            np.log(model.params_.as_array()), x[-3:], t_x[-3:], age[-3:], np.ones(3), 0.0
        )
        * 3
    )
    assert ll.sum() == pytest.approx(theirs, rel=1e-12)
    palive = model.conditional_probability_alive(x[-3:], t_x[-3:], age[-3:])
    expected = model.conditional_expected_purchases(52.0, x[-3:], t_x[-3:], age[-3:])
    assert np.all((palive >= 0) & (palive <= 1)) and palive[1] < 1e-6
    assert np.all(np.isfinite(expected)) and expected[0] > 10


def test_heavy_buyers_only_fit() -> None:
    sim = simulate_bgnbd(2_000, 1000.0, 2.0, 4.0, 0.5, 50.0, seed=3)
    assert sim.frequency.max() > 400
    model = BetaGeoModel().fit(sim.frequency, sim.recency, sim.T)
    assert np.isfinite(model.log_likelihood_)
    assert model.params_.r == pytest.approx(2.0, rel=0.15)


def test_zero_frequency_only_data_does_not_break() -> None:
    age = np.linspace(1.0, 50.0, 200)
    zeros = np.zeros_like(age)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = BetaGeoModel().fit(zeros, zeros, age)
    # Nobody came back: any r -> 0 or alpha -> infinity fits; say so rather than fail.
    assert any(issubclass(w.category, ConvergenceWarning) for w in caught)
    assert np.isfinite(model.log_likelihood_) and -1e-3 < model.log_likelihood_ <= 0
    assert np.all(np.isfinite(model.params_.as_array()))
    np.testing.assert_allclose(model.conditional_probability_alive(zeros, zeros, age), 1.0)
    assert np.all(model.conditional_expected_purchases(10.0, zeros, zeros, age) < 1e-3)


def test_unfitted_model_says_how_to_fit() -> None:
    model = BetaGeoModel()
    with pytest.raises(NotFittedError, match=r"not fitted yet: call fit\(frequency, recency, T\)"):
        model.conditional_probability_alive([1], [1], [2])
    with pytest.raises(NotFittedError):
        model.expected_purchases(1.0)
    assert "not fitted" in repr(model)


def test_from_params_predicts_without_fitting(fitted: BetaGeoModel) -> None:
    stored = BetaGeoModel.from_params(fitted.params_)
    assert stored.conditional_probability_alive([2], [30.0], [38.0]) == pytest.approx(
        fitted.conditional_probability_alive([2], [30.0], [38.0])
    )


def test_bad_input_names_the_customers() -> None:
    recency = pd.Series([1.0, 5.0, 9.0, 3.0], index=[17, 52, 90, 4])
    age = pd.Series([2.0, 4.0, 8.0, 3.0], index=recency.index)
    with pytest.raises(
        ValueError, match=r"recency is greater than T for 2 customers \(ids 52, 90\): was as_of"
    ):
        BetaGeoModel().fit([1, 2, 3, 1], recency, age)
    with pytest.raises(ValueError, match="frequency is negative or not a whole number"):
        BetaGeoModel().fit([1.5], [1.0], [2.0])
    with pytest.raises(ValueError, match="recency is not 0 although frequency is 0"):
        BetaGeoModel().fit([0], [1.0], [2.0])
    with pytest.raises(ValueError, match="a must be positive"):
        BetaGeoParams(r=1.0, alpha=1.0, a=-1.0, b=1.0)
