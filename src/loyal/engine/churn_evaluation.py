"""How well a churn model did on a test snapshot: AUC, top-decile lift, Brier score and
calibration by decile of predicted risk (``loyal.engine.churn`` runs the back-test)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, roc_auc_score

from loyal.engine.churn_features import LABEL

if TYPE_CHECKING:
    from loyal.engine.churn import ChurnModel


@dataclass(frozen=True)
class CalibrationBin:
    """One decile of predicted risk on the test snapshot (decile 10 is the riskiest)."""

    decile: int
    customers: int
    mean_predicted: float
    observed_rate: float


@dataclass(frozen=True)
class Backtest:
    """How the model, trained on the past only, did on the test snapshot.

    - auc: area under the ROC curve (0.5 is chance);
    - top_decile_lift: churn rate among the 10 % riskiest / churn rate of all;
    - brier: mean squared error of the probabilities;
    - churn_rate / mean_predicted: observed and mean predicted churn on the test snapshot;
    - calibration: per decile of predicted risk, mean predicted vs observed churn.

    ``model`` and ``test`` (the test snapshot's features, ``churned`` and ``churn_probability``)
    are kept for the drivers (``drivers.global_drivers``).
    """

    as_of: dt.datetime
    test_snapshot: dt.datetime
    horizon_days: int
    train_snapshots: tuple[dt.datetime, ...]
    train_rows: int
    test_rows: int
    churn_rate: float
    mean_predicted: float
    auc: float
    top_decile_lift: float
    brier: float
    calibration: tuple[CalibrationBin, ...]
    model: ChurnModel = field(repr=False, compare=False)
    test: pd.DataFrame = field(repr=False, compare=False)


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> tuple[CalibrationBin, ...]:
    """Rows split into ``bins`` equal groups by predicted risk (ties broken by order)."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    groups = np.array_split(np.argsort(p, kind="stable"), bins)
    return tuple(
        CalibrationBin(k + 1, len(rows), float(p[rows].mean()), float(y[rows].mean()))
        for k, rows in enumerate(groups)
        if len(rows)
    )


def top_decile_lift(y: np.ndarray, p: np.ndarray) -> float:
    """Churn rate among the riskiest 10 % of rows divided by the overall churn rate."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    top = np.argsort(-p, kind="stable")[: max(1, int(np.ceil(len(p) / 10)))]
    overall = y.mean()
    return float(y[top].mean() / overall) if overall > 0 else float("nan")


def evaluate(
    fitted: ChurnModel,
    test: pd.DataFrame,
    as_of: dt.datetime,
    test_date: dt.datetime,
    train_dates: Sequence[dt.datetime],
    samples: Mapping[dt.datetime, pd.DataFrame],
) -> Backtest:
    """Score the test snapshot with ``fitted`` (trained on ``samples`` of ``train_dates``) and
    measure how it did; see :class:`Backtest`."""
    y = test[LABEL].to_numpy(dtype=float)
    if len(set(y)) < 2:
        raise ValueError(
            f"the test snapshot at {test_date.isoformat()} has {len(y)} subscribers with labels "
            f"{sorted(set(y))}: a back-test needs churners and stayers; choose another as_of"
        )
    p = fitted.churn_probability(test)
    test = test.assign(churn_probability=p)
    trained_on = [date for date in sorted(train_dates) if len(samples[date])]
    return Backtest(
        as_of=as_of,
        test_snapshot=test_date,
        horizon_days=fitted.horizon_days,
        train_snapshots=tuple(trained_on),
        train_rows=sum(len(samples[date]) for date in train_dates),
        test_rows=len(test),
        churn_rate=float(y.mean()),
        mean_predicted=float(p.mean()),
        auc=float(roc_auc_score(y, p)),
        top_decile_lift=top_decile_lift(y, p),
        brier=float(brier_score_loss(y, p)),
        calibration=calibration_table(y, p),
        model=fitted,
        test=test,
    )
