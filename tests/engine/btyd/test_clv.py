"""Customer lifetime value: lifetimes' discounting convention, both purchase models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifetimes import BetaGeoFitter, GammaGammaFitter, ParetoNBDFitter

from loyal.engine.btyd import (
    BetaGeoModel,
    GammaGammaModel,
    ParetoNBDModel,
    customer_equity,
    customer_lifetime_value,
    score_customers,
)


@pytest.fixture(scope="module")
def models(
    cdnow_spend: pd.DataFrame,
) -> tuple[BetaGeoModel, ParetoNBDModel, GammaGammaModel]:
    x, t_x, age = cdnow_spend["frequency"], cdnow_spend["recency"], cdnow_spend["T"]
    repeat = cdnow_spend[x > 0]
    return (
        BetaGeoModel().fit(x, t_x, age),
        ParetoNBDModel().fit(x, t_x, age),
        GammaGammaModel().fit(repeat["frequency"], repeat["monetary_value"]),
    )


def lifetimes_spend(model: GammaGammaModel) -> GammaGammaFitter:
    twin = GammaGammaFitter()
    p, q, gamma = model.params_.as_array()
    twin.params_ = pd.Series({"p": p, "q": q, "v": gamma})
    return twin


@pytest.mark.parametrize("time_unit", ["W", "D", "M"])
@pytest.mark.parametrize("which", ["bgnbd", "paretonbd"])
def test_clv_matches_lifetimes(
    models: tuple[BetaGeoModel, ParetoNBDModel, GammaGammaModel],
    cdnow_spend: pd.DataFrame,
    time_unit: str,
    which: str,
) -> None:
    bgnbd, paretonbd, spend = models
    purchases = bgnbd if which == "bgnbd" else paretonbd
    twin = BetaGeoFitter() if which == "bgnbd" else ParetoNBDFitter()
    twin.params_ = pd.Series(purchases.params_.as_dict())
    twin.predict = twin.conditional_expected_number_of_purchases_up_to_time
    x, t_x, age, m = (cdnow_spend[c] for c in ("frequency", "recency", "T", "monetary_value"))
    ours = customer_lifetime_value(
        purchases, spend, x, t_x, age, m, months=6, discount_rate=0.02, time_unit=time_unit
    )
    theirs = lifetimes_spend(spend).customer_lifetime_value(
        twin, x, t_x, age, m, time=6, discount_rate=0.02, freq=time_unit
    )
    np.testing.assert_allclose(ours, theirs.to_numpy(), rtol=1e-9)


def test_customer_equity_is_the_sum_and_shrinks_with_discounting(
    models: tuple[BetaGeoModel, ParetoNBDModel, GammaGammaModel], cdnow_spend: pd.DataFrame
) -> None:
    bgnbd, _, spend = models
    args = [cdnow_spend[c] for c in ("frequency", "recency", "T", "monetary_value")]
    clv = customer_lifetime_value(bgnbd, spend, *args, time_unit="W")
    equity = customer_equity(bgnbd, spend, *args, time_unit="W")
    assert equity == pytest.approx(clv.sum()) and equity > 0
    assert customer_equity(bgnbd, spend, *args, time_unit="W", discount_rate=0.1) < equity
    assert customer_equity(bgnbd, spend, *args, time_unit="W", months=24) > equity


def test_bad_horizon_and_unit_are_explained(
    models: tuple[BetaGeoModel, ParetoNBDModel, GammaGammaModel],
) -> None:
    bgnbd, _, spend = models
    with pytest.raises(ValueError, match="months must be a positive whole number"):
        customer_lifetime_value(bgnbd, spend, [1], [1.0], [2.0], [10.0], months=0)
    with pytest.raises(ValueError, match="time_unit must be one of D, W, M, H"):
        customer_lifetime_value(bgnbd, spend, [1], [1.0], [2.0], [10.0], time_unit="Y")  # type: ignore[arg-type]


def test_score_customers_matches_the_separate_predictions(
    models: tuple[BetaGeoModel, ParetoNBDModel, GammaGammaModel], cdnow_spend: pd.DataFrame
) -> None:
    bgnbd, _, spend = models
    args = [cdnow_spend[c] for c in ("frequency", "recency", "T", "monetary_value")]
    scores = score_customers(bgnbd, spend, *args, horizon=39.0, time_unit="W")
    assert list(scores.columns) == ["p_alive", "expected_purchases", "expected_spend", "clv"]
    np.testing.assert_allclose(
        scores["p_alive"], bgnbd.conditional_probability_alive(*args[:3]), rtol=1e-12
    )
    np.testing.assert_allclose(
        scores["expected_purchases"],
        bgnbd.conditional_expected_purchases(39.0, *args[:3]),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        scores["clv"], customer_lifetime_value(bgnbd, spend, *args, time_unit="W"), rtol=1e-12
    )
