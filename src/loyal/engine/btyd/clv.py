"""Customer lifetime value from a purchase model and a spend model.

CLV over ``months`` months is sum_i E[spend] * E[purchases in month i] / (1 + d)^i, with the
month's expected purchases from the purchase model's conditional expectation and the spend from
the Gamma-Gamma model. This is lifetimes' ``customer_lifetime_value`` convention (months of 30
days, 4.345 weeks or 720 hours; the discount rate is monthly), so the two can be compared.
"""

from __future__ import annotations

from typing import Literal, Protocol

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from loyal.engine.btyd._fitting import Histories, group_histories
from loyal.engine.btyd.gammagamma import GammaGammaModel

FloatArray = NDArray[np.float64]
TimeUnit = Literal["D", "W", "M", "H"]
Patterns = tuple[FloatArray, FloatArray, FloatArray, FloatArray, NDArray[np.intp]]

PERIODS_PER_MONTH: dict[str, float] = {"D": 30.0, "W": 4.345, "M": 1.0, "H": 720.0}


class PurchaseModel(Protocol):
    """What CLV needs from BetaGeoModel and ParetoNBDModel."""

    def _palive(self, data: Histories) -> FloatArray: ...

    def _alive_purchases(self, data: Histories, t: float) -> FloatArray: ...


def _periods_per_month(time_unit: str) -> float:
    try:
        return PERIODS_PER_MONTH[time_unit]
    except KeyError:
        raise ValueError(
            "time_unit must be one of {} (the unit of recency and T), got {!r}.".format(
                ", ".join(PERIODS_PER_MONTH), time_unit
            )
        ) from None


def discounted_expected_purchases(
    purchase_model: PurchaseModel,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    *,
    months: int = 12,
    discount_rate: float = 0.01,
    time_unit: TimeUnit = "D",
) -> FloatArray:
    """Sum over the next ``months`` months of expected purchases discounted to today.

    Each customer's expectation is P(alive) times a function of (x, T) only, so the monthly
    hypergeometric terms are computed once per distinct (x, T).
    """
    data = Histories.from_arrays(frequency, recency, T)
    return _discounted(purchase_model, data, months, discount_rate, time_unit)


def _discounted(
    purchase_model: PurchaseModel,
    data: Histories,
    months: int,
    discount_rate: float,
    time_unit: str,
) -> FloatArray:
    if months < 1 or int(months) != months:
        raise ValueError("months must be a positive whole number, got {!r}.".format(months))
    if discount_rate <= -1:
        raise ValueError("discount_rate must be above -1, got {!r}.".format(discount_rate))
    step = _periods_per_month(time_unit)
    previous: FloatArray | float = 0.0
    total: FloatArray | float = 0.0
    for month in range(1, int(months) + 1):
        current = purchase_model._alive_purchases(data, month * step)
        total = total + (current - previous) / (1.0 + discount_rate) ** month
        previous = current
    pair_index = data.xT_pairs[0]
    return purchase_model._palive(data) * np.asarray(total)[pair_index]


def customer_lifetime_value(
    purchase_model: PurchaseModel,
    spend_model: GammaGammaModel,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    monetary_value: ArrayLike,
    *,
    months: int = 12,
    discount_rate: float = 0.01,
    time_unit: TimeUnit = "D",
) -> FloatArray:
    """Discounted value of each customer's purchases over the next ``months`` months.

    ``purchase_model`` is a fitted BetaGeoModel or ParetoNBDModel, ``spend_model`` a fitted
    GammaGammaModel; ``time_unit`` is the unit of recency and T and ``discount_rate`` is
    monthly. Matches lifetimes' ``GammaGammaFitter.customer_lifetime_value``.
    """
    spend = spend_model.conditional_expected_average_spend(frequency, monetary_value)
    purchases = discounted_expected_purchases(
        purchase_model,
        frequency,
        recency,
        T,
        months=months,
        discount_rate=discount_rate,
        time_unit=time_unit,
    )
    return spend * purchases


def customer_equity(
    purchase_model: PurchaseModel,
    spend_model: GammaGammaModel,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    monetary_value: ArrayLike,
    *,
    months: int = 12,
    discount_rate: float = 0.01,
    time_unit: TimeUnit = "D",
) -> float:
    """The customer base's value: the sum of :func:`customer_lifetime_value` over customers."""
    clv = customer_lifetime_value(
        purchase_model,
        spend_model,
        frequency,
        recency,
        T,
        monetary_value,
        months=months,
        discount_rate=discount_rate,
        time_unit=time_unit,
    )
    return float(clv.sum())


def score_customers(
    purchase_model: PurchaseModel,
    spend_model: GammaGammaModel,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    monetary_value: ArrayLike,
    *,
    horizon: float,
    months: int = 12,
    discount_rate: float = 0.01,
    time_unit: TimeUnit = "D",
    patterns: Patterns | None = None,
) -> pd.DataFrame:
    """Every per-customer score at once, computed once per distinct (x, t_x, T).

    Columns: p_alive, expected_purchases (in the next ``horizon`` time units), expected_spend
    (per purchase) and clv (as :func:`customer_lifetime_value`), in the input's row order.
    ``patterns`` may pass on ``group_histories(frequency, recency, T)`` if it was computed
    already (for the fit, say).
    """
    x, t_x, age, counts, inverse = (
        group_histories(frequency, recency, T) if patterns is None else patterns
    )
    data = Histories(x, t_x, age, counts)
    p_alive = purchase_model._palive(data)
    pair_index = data.xT_pairs[0]
    expected = p_alive * purchase_model._alive_purchases(data, float(horizon))[pair_index]
    discounted = _discounted(purchase_model, data, months, discount_rate, time_unit)
    spend = spend_model.conditional_expected_average_spend(frequency, monetary_value)
    return pd.DataFrame(
        {
            "p_alive": p_alive[inverse],
            "expected_purchases": expected[inverse],
            "expected_spend": spend,
            "clv": spend * discounted[inverse],
        }
    )
