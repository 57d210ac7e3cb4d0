"""Checking a fitted model against what happened after the calibration window.

Fader, Hardie & Lee (2005) validate BG/NBD on CDNOW three ways, and so do these helpers:
per-customer error of the conditional expectation over the holdout window, the expectation by
calibration frequency, and the tracking curve of cumulative repeat purchases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from loyal.engine.btyd._fitting import Histories, as_float_array
from loyal.engine.btyd.gammagamma import GammaGammaModel

FloatArray = NDArray[np.float64]


class PurchaseModel(Protocol):
    """What validation needs from BetaGeoModel and ParetoNBDModel."""

    def _palive(self, data: Histories) -> FloatArray: ...

    def _alive_purchases(self, data: Histories, t: float) -> FloatArray: ...

    def expected_purchases(self, t: ArrayLike) -> FloatArray: ...


@dataclass(frozen=True)
class HoldoutComparison:
    """Predicted vs actual repeat purchases in the holdout window.

    ``by_frequency`` has one row per calibration frequency (0 to 6, then "7+") with the number
    of customers and their mean actual and predicted holdout purchases, as in FHL's Figure 3.
    """

    n_customers: int
    mae: float
    rmse: float
    total_actual: float
    total_predicted: float
    by_frequency: pd.DataFrame

    @property
    def total_error(self) -> float:
        """(predicted - actual) / actual over all customers."""
        return (self.total_predicted - self.total_actual) / self.total_actual


def holdout_predictions(
    model: PurchaseModel,
    frequency_cal: ArrayLike,
    recency_cal: ArrayLike,
    T_cal: ArrayLike,
    duration_holdout: float | ArrayLike,
) -> FloatArray:
    """Each customer's expected repeat purchases over their holdout window."""
    data = Histories.from_arrays(frequency_cal, recency_cal, T_cal)
    durations = np.broadcast_to(np.asarray(duration_holdout, dtype=np.float64), (data.n_rows,))
    pair_index = data.xT_pairs[0]
    predicted = np.empty(data.n_rows)
    # Usually one window for everybody; otherwise one pass per distinct length.
    for duration in np.unique(durations):
        rows = durations == duration
        predicted[rows] = model._alive_purchases(data, float(duration))[pair_index[rows]]
    return model._palive(data) * predicted


def compare_holdout(
    model: PurchaseModel,
    frequency_cal: ArrayLike,
    recency_cal: ArrayLike,
    T_cal: ArrayLike,
    frequency_holdout: ArrayLike,
    duration_holdout: float | ArrayLike,
) -> HoldoutComparison:
    """Per-customer and total accuracy of the conditional expectation over the holdout."""
    predicted = holdout_predictions(model, frequency_cal, recency_cal, T_cal, duration_holdout)
    actual = as_float_array(frequency_holdout, "frequency_holdout")
    if actual.shape != predicted.shape:
        raise ValueError(
            "frequency_holdout has {} values for {} customers.".format(
                actual.shape[0], predicted.shape[0]
            )
        )
    error = predicted - actual
    x = as_float_array(frequency_cal, "frequency_cal")
    bucket = np.minimum(x, 7).astype(int)
    frame = pd.DataFrame({"bucket": bucket, "actual": actual, "predicted": predicted})
    grouped = frame.groupby("bucket").agg(
        customers=("actual", "size"), actual=("actual", "mean"), predicted=("predicted", "mean")
    )
    grouped.index = [str(b) if b < 7 else "7+" for b in grouped.index]
    grouped.index.name = "frequency_cal"
    return HoldoutComparison(
        n_customers=int(actual.shape[0]),
        mae=float(np.abs(error).mean()),
        rmse=float(np.sqrt((error**2).mean())),
        total_actual=float(actual.sum()),
        total_predicted=float(predicted.sum()),
        by_frequency=grouped,
    )


@dataclass(frozen=True)
class SpendComparison:
    """Predicted vs actual mean spend per purchase for customers who bought in the holdout."""

    n_customers: int
    mae: float
    mean_actual: float
    mean_predicted: float


def compare_holdout_spend(
    model: GammaGammaModel,
    frequency_cal: ArrayLike,
    monetary_value_cal: ArrayLike,
    frequency_holdout: ArrayLike,
    monetary_value_holdout: ArrayLike,
) -> SpendComparison:
    """Gamma-Gamma's expected spend against the holdout's mean spend (buyers in the holdout)."""
    predicted = model.conditional_expected_average_spend(frequency_cal, monetary_value_cal)
    bought = as_float_array(frequency_holdout, "frequency_holdout") > 0
    actual = as_float_array(monetary_value_holdout, "monetary_value_holdout")[bought]
    predicted = predicted[bought]
    if actual.shape[0] == 0:
        raise ValueError("Nobody bought in the holdout window: there is no spend to compare.")
    return SpendComparison(
        n_customers=int(actual.shape[0]),
        mae=float(np.abs(predicted - actual).mean()),
        mean_actual=float(actual.mean()),
        mean_predicted=float(predicted.mean()),
    )


def tracking_curve(
    model: PurchaseModel, counts: pd.DataFrame, n_periods: int | None = None
) -> pd.DataFrame:
    """Cumulative repeat purchases per period, actual and predicted.

    ``counts`` has columns period (0 = first period), first_purchases and repeat_purchases, as
    made by ``loyal.engine.summary.purchase_counts_by_period``. Row k covers periods 0..k: the
    actual count sums repeat purchases in them; the prediction sums E[X(k + 1 - j)] over the
    customers whose first purchase was in period j <= k (lifetimes'
    ``expected_cumulative_transactions``; FHL 2005, Figure 2).
    """
    for col in ("period", "first_purchases", "repeat_purchases"):
        if col not in counts.columns:
            raise ValueError(
                "counts needs a {!r} column (see purchase_counts_by_period), has {}.".format(
                    col, ", ".join(map(str, counts.columns))
                )
            )
    periods = counts["period"].to_numpy(dtype=np.int64)
    if np.any(periods < 0):
        raise ValueError("counts has negative periods: period 0 is the first one.")
    size = int(n_periods if n_periods is not None else periods.max() + 1)
    inside = periods < size
    first = np.bincount(
        periods[inside], counts["first_purchases"].to_numpy(float)[inside], minlength=size
    )
    repeat = np.bincount(
        periods[inside], counts["repeat_purchases"].to_numpy(float)[inside], minlength=size
    )
    expected = np.concatenate(([0.0], model.expected_purchases(np.arange(1, size + 1))))
    # Row k: sum_j first[j] * E[X(k + 1 - j)], a convolution.
    predicted = np.convolve(first, expected)[1 : size + 1]
    actual = np.cumsum(repeat)
    return pd.DataFrame(
        {
            "period": np.arange(size),
            "actual": repeat,
            "predicted": np.diff(predicted, prepend=0.0),
            "actual_cumulative": actual,
            "predicted_cumulative": predicted,
        }
    )
