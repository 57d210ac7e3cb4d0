"""Churn probability for contractual customers (R16): a calibrated classifier on behaviour
features, and an honest back-test.

Definitions
-----------
*Subscriber at t*, *features at t* (``churn_features``) and the *label* (``churn_labels``) are
defined in ``loyal.engine.churn_features``, and the back-test's measures (``Backtest``) in
``loyal.engine.churn_evaluation``; their public names are re-exported here.

*Snapshots*: the model learns from several past ``as_of`` dates (every ``snapshot_step_days``
back from the newest date whose label is known), each row a subscriber at that date with their
features then and what happened in the following ``horizon_days``. Snapshots are executed a few
dates per query (``DATES_PER_QUERY``) and each contributes a seeded sample of at most
``max_rows_per_snapshot`` subscribers, so memory stays flat however many customers there are.

*Back-test* (``backtest``): standing at ``as_of``, the test snapshot is ``as_of - horizon`` (its
labels are known by ``as_of``); training uses only snapshots whose label window ends at or before
the test snapshot, so no outcome the model learns from lies after the test snapshot date. The
whole test snapshot is scored. ``backtest_and_fit`` runs the back-test and the final fit (on every
snapshot whose label is known at ``as_of``) in one pass over the snapshot dates.
Everything is computed on ``known_at(sources, as_of)``: the records as they stood at ``as_of``.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from threadpoolctl import ThreadpoolController

from loyal.engine.churn_evaluation import (
    Backtest,
    CalibrationBin,
    calibration_table,
    evaluate,
    top_decile_lift,
)
from loyal.engine.churn_features import (
    _KEYS,
    CATEGORICAL,
    COMPLAINT_KIND,
    FEATURES,
    LABEL,
    NUMERIC,
    SNAPSHOT,
    UNRESOLVED_OUTCOME,
    _check_horizon,
    churn_features,
    churn_labels,
    known_at,
    snapshot_features,
    snapshot_labels,
    snapshots_table,
)
from loyal.engine.common import utc
from loyal.engine.execution import to_arrow, to_scalar
from loyal.engine.settings import EngineSettings
from loyal.engine.sources import Sources

# HistGradientBoosting bins categories into at most 255 bins; rarer values become missing.
_MAX_CATEGORIES = 250


def _check_columns(X: pd.DataFrame) -> None:
    missing = [name for name in FEATURES if name not in X.columns]
    if missing:
        raise ValueError(f"X lacks the feature columns {missing}: build it with snapshot_frame")


# --- Snapshots (executed) ----------------------------------------------------------------------


def snapshot_dates(
    newest: dt.datetime, earliest: dt.datetime, step_days: int = 30, max_snapshots: int = 24
) -> list[dt.datetime]:
    """Dates ``newest, newest - step, ...`` not before ``earliest``, at most ``max_snapshots``,
    oldest first."""
    if step_days < 1 or max_snapshots < 1:
        raise ValueError(
            f"step_days and max_snapshots must be >= 1, got {step_days!r} and {max_snapshots!r}"
        )
    newest, earliest = utc(newest, "newest"), utc(earliest, "earliest")
    steps = (dt.timedelta(days=step_days * k) for k in range(max_snapshots))
    return [newest - step for step in steps if newest - step >= earliest][::-1]


# Snapshot dates computed per query: every date multiplies the rows the feature query joins
# (subscribers x events...), so a few at a time keep DuckDB and the frames small.
DATES_PER_QUERY = 4

# Rows of one snapshot the model learns from, at most (a seeded sample of the subscribers).
MAX_ROWS_PER_SNAPSHOT = 10_000

# Rows scored per call of the trees and calibrator.
SCORE_BATCH_ROWS = 100_000


def _frame_columns(horizon_days: int | None) -> list[str]:
    return [SNAPSHOT, "customer_id", *FEATURES] + ([] if horizon_days is None else [LABEL])


def snapshot_batches(
    sources: Sources,
    dates: Sequence[dt.datetime],
    horizon_days: int | None = 60,
    settings: EngineSettings | None = None,
    *,
    compact: bool = False,
) -> Iterator[tuple[dt.datetime, pd.DataFrame]]:
    """``(date, frame)`` for every date, oldest first: the features (and labels unless
    ``horizon_days`` is None) of the subscribers at that date, as ``snapshot_frame`` has them.

    The dates are executed ``DATES_PER_QUERY`` at a time, so only that many snapshots are ever in
    memory. ``compact`` gives the numeric features as float32 (half the memory; the model reads
    them as float64 bins, and float32 keeps 7 significant digits).
    """
    columns = _frame_columns(horizon_days)
    instants = sorted({utc(date, "snapshot date") for date in dates})
    for first in range(0, len(instants), DATES_PER_QUERY):
        chunk = instants[first : first + DATES_PER_QUERY]
        expr = snapshot_features(sources, chunk, settings)
        if horizon_days is not None:
            labels = snapshot_labels(sources.subscriptions, chunk, horizon_days)
            labels = labels.rename(j_snapshot=SNAPSHOT, j_id="customer_id")
            expr = expr.join(
                labels, [expr[SNAPSHOT] == labels.j_snapshot, expr.customer_id == labels.j_id]
            ).order_by(list(_KEYS))
        table = to_arrow(expr).select(columns)
        if compact:
            table = _float32_features(table)
        frame = table.to_pandas()
        del table
        dates_of_rows = frame[SNAPSHOT]
        for date in chunk:
            yield (
                date,
                frame[(dates_of_rows == pd.Timestamp(date)).to_numpy()].reset_index(drop=True),
            )


def _float32_features(table: pa.Table) -> pa.Table:
    for name in NUMERIC:
        index = table.schema.get_field_index(name)
        table = table.set_column(index, name, pc.cast(table.column(name), pa.float32()))
    return table


def snapshot_frame(
    sources: Sources,
    dates: Sequence[dt.datetime],
    horizon_days: int | None = 60,
    settings: EngineSettings | None = None,
) -> pd.DataFrame:
    """Execute the features (and labels unless ``horizon_days`` is None) at every date:
    columns ``snapshot``, customer_id, the features[, churned], by snapshot then customer."""
    frames = [frame for _, frame in snapshot_batches(sources, dates, horizon_days, settings)]
    if not frames:
        return pd.DataFrame(columns=_frame_columns(horizon_days))
    return pd.concat(frames, ignore_index=True)


def sample_snapshot(
    frame: pd.DataFrame, date: dt.datetime, max_rows: int | None, random_state: int
) -> pd.DataFrame:
    """At most ``max_rows`` rows of one snapshot's ``frame``, drawn without replacement and kept
    in their order. The draw is seeded by ``random_state`` and the date, so a snapshot gives the
    same rows whichever other snapshots are read with it."""
    if max_rows is None or len(frame) <= max_rows:
        return frame
    day = int(utc(date, "snapshot date").timestamp()) // 86_400
    rng = np.random.default_rng([random_state, day])
    keep = np.sort(rng.choice(len(frame), size=max_rows, replace=False))
    return frame.iloc[keep].reset_index(drop=True)


def _training_dates(sources: Sources, newest: dt.datetime, model: ChurnModel) -> list[dt.datetime]:
    first = to_scalar(sources.subscriptions.started_at.min())
    if first is None:
        raise ValueError("there are no subscriptions: a churn model needs contractual customers")
    return snapshot_dates(
        newest,
        first + dt.timedelta(days=model.snapshot_step_days),
        model.snapshot_step_days,
        model.max_snapshots,
    )


def training_frame(
    sources: Sources, newest: dt.datetime, model: ChurnModel, settings: EngineSettings | None = None
) -> pd.DataFrame:
    """Labelled snapshots for ``model``: every ``model.snapshot_step_days`` back from ``newest``
    to the first subscription start, at most ``model.max_snapshots``, each sampled down to
    ``model.max_rows_per_snapshot`` rows (``sample_snapshot``); numeric features as float32."""
    dates = _training_dates(sources, newest, model)
    samples, _ = _labelled_samples(sources, dates, model, settings)
    return _stack(samples, dates, model.horizon_days)


def _labelled_samples(
    sources: Sources,
    dates: Sequence[dt.datetime],
    model: ChurnModel,
    settings: EngineSettings | None,
    keep_whole: dt.datetime | None = None,
) -> tuple[dict[dt.datetime, pd.DataFrame], pd.DataFrame | None]:
    """Each date's labelled snapshot sampled for training, and the whole snapshot at
    ``keep_whole`` (one of the dates) when given."""
    samples: dict[dt.datetime, pd.DataFrame] = {}
    whole = None
    batches = snapshot_batches(sources, dates, model.horizon_days, settings, compact=True)
    for date, frame in batches:
        samples[date] = sample_snapshot(
            frame, date, model.max_rows_per_snapshot, model.random_state
        )
        if date == keep_whole:
            whole = frame
    return samples, whole


def _stack(
    samples: Mapping[dt.datetime, pd.DataFrame], dates: Sequence[dt.datetime], horizon_days: int
) -> pd.DataFrame:
    frames = [samples[date] for date in sorted(dates)]
    if not frames:
        return pd.DataFrame(columns=_frame_columns(horizon_days))
    return pd.concat(frames, ignore_index=True)


# --- The model ---------------------------------------------------------------------------------


@functools.cache
def _controller() -> ThreadpoolController:
    # Finding the thread pools reads the process's loaded libraries: do it once.
    return ThreadpoolController()


class ChurnModel(ClassifierMixin, BaseEstimator):
    """Gradient-boosted trees on behaviour features, calibrated on later snapshots.

    ``fit(X, y, snapshots)`` trains a ``HistGradientBoostingClassifier`` (categorical features
    from the pandas dtype, seeded) on the snapshots whose label window ends at or before the
    first snapshot of the last ``calibration_days``, then calibrates its probabilities on those
    later snapshots with ``CalibratedClassifierCV`` on the frozen trees. The gap mimics scoring:
    a model scores ``horizon_days`` after its newest label is known.

    ``calibration="sigmoid"`` (Platt) is the default: it is steady on a few hundred churners and
    strictly monotone, so per-customer comparisons (``drivers.customer_reasons``) keep their
    order; ``"isotonic"`` fits a step function and needs more data.

    ``max_rows_per_snapshot`` caps the rows each snapshot contributes when the training frame
    is built (``training_frame``, ``backtest_and_fit``): a seeded sample (``sample_snapshot``).
    It keeps memory flat whatever the size of the store; on the 1,000,000-customer demo store
    (about 31,000 subscribers per date) the back-test AUC moved from 0.711 to 0.710.

    Learned: ``estimator_`` (the trees), ``calibrator_``, ``categories_`` (the categories of each
    categorical feature seen in training), ``train_snapshots_``, ``calibration_snapshots_``.
    """

    def __init__(
        self,
        *,
        horizon_days: int = 60,
        snapshot_step_days: int = 15,
        max_snapshots: int = 48,
        max_rows_per_snapshot: int | None = MAX_ROWS_PER_SNAPSHOT,
        calibration: str = "sigmoid",
        calibration_days: int = 90,
        learning_rate: float = 0.05,
        max_iter: int = 150,
        max_leaf_nodes: int = 7,
        min_samples_leaf: int = 80,
        l2_regularization: float = 1.0,
        random_state: int = 0,
        n_threads: int | None = 1,
    ) -> None:
        self.horizon_days = horizon_days
        self.snapshot_step_days = snapshot_step_days
        self.max_snapshots = max_snapshots
        self.max_rows_per_snapshot = max_rows_per_snapshot
        self.calibration = calibration
        self.calibration_days = calibration_days
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.random_state = random_state
        self.n_threads = n_threads

    def _check_settings(self) -> None:
        _check_horizon(self.horizon_days)
        if self.calibration not in ("sigmoid", "isotonic"):
            raise ValueError(
                f"calibration must be 'sigmoid' or 'isotonic', got {self.calibration!r}"
            )
        if self.calibration_days < 1:
            raise ValueError(f"calibration_days must be >= 1, got {self.calibration_days!r}")
        if self.max_rows_per_snapshot is not None and self.max_rows_per_snapshot < 1:
            raise ValueError(
                "max_rows_per_snapshot must be >= 1 or None (every row), "
                f"got {self.max_rows_per_snapshot!r}"
            )

    def fit(self, X: pd.DataFrame, y: Any, snapshots: Any) -> ChurnModel:
        """Fit on feature rows ``X`` (the ``FEATURES`` columns), labels ``y`` (1 = churned) and
        each row's snapshot date; see the class docstring for the time split."""
        self._check_settings()
        _check_columns(X)
        labels = np.asarray(y, dtype=float)
        if np.isnan(labels).any() or not np.isin(labels, (0.0, 1.0)).all():
            raise ValueError("y must be 0/1 (or False/True) without missing values")
        dates = pd.to_datetime(pd.Series(np.asarray(snapshots)), utc=True)
        if not len(labels) == len(X) == len(dates):
            raise ValueError(
                f"X, y and snapshots have {len(X)}, {len(labels)} and {len(dates)} rows: "
                "give one label and one snapshot date per row"
            )
        newest = dates.max()
        calibrate = (dates > newest - pd.Timedelta(days=self.calibration_days)).to_numpy()
        first_calibration = dates[calibrate].min()
        train = (dates <= first_calibration - pd.Timedelta(days=self.horizon_days)).to_numpy()
        for name, mask in (("training", train), ("calibration", calibrate)):
            present = set(labels[mask])
            if present != {0.0, 1.0}:
                raise ValueError(
                    f"the {name} snapshots hold {int(mask.sum())} rows with labels "
                    f"{sorted(present)}: both churners and stayers are needed; use more history "
                    f"(training snapshots end {self.horizon_days} days before the calibration "
                    f"snapshots, the last {self.calibration_days} days)"
                )
        self.categories_ = {
            name: list(X[name].dropna().astype(str).value_counts().index[:_MAX_CATEGORIES])
            for name in CATEGORICAL
        }
        features = self._prepare(X)
        trees = HistGradientBoostingClassifier(
            learning_rate=self.learning_rate,
            max_iter=self.max_iter,
            max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization,
            categorical_features="from_dtype",
            early_stopping=False,  # its validation split is random, not later in time
            random_state=self.random_state,
        )
        with self._threads():
            trees.fit(features[train], labels[train].astype(int))
            calibrator = CalibratedClassifierCV(FrozenEstimator(trees), method=self.calibration)
            calibrator.fit(features[calibrate], labels[calibrate].astype(int))
        self.estimator_ = trees
        self.calibrator_ = calibrator
        self.classes_ = np.array([0, 1])
        self.train_snapshots_ = tuple(sorted(dates[train].unique()))
        self.calibration_snapshots_ = tuple(sorted(dates[calibrate].unique()))
        return self

    def _prepare(self, X: pd.DataFrame) -> pd.DataFrame:
        columns: dict[str, Any] = {}
        for name in FEATURES:
            values = X[name]
            if name in CATEGORICAL:
                text = values.astype(str).where(values.notna())
                columns[name] = pd.Categorical(text, categories=self.categories_[name])
            else:
                columns[name] = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")
        return pd.DataFrame(columns, index=X.index)

    def _threads(self) -> Any:
        # OpenMP threads in the trees: on a few thousand rows one thread is fastest, and on a
        # busy machine more threads spin-wait for each other (seen: 0.6 s vs 16 s per fit).
        return _controller().limit(limits=self.n_threads, user_api="openmp")

    def _check_fitted(self) -> None:
        if not hasattr(self, "calibrator_"):
            raise NotFittedError(
                "this ChurnModel is not fitted yet: call fit(X, y, snapshots) first "
                "(or use churn.score / churn.backtest)"
            )

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities, shape (rows, 2): column 1 is P(churn within the horizon).

        Rows are scored ``SCORE_BATCH_ROWS`` at a time: each row's probability depends on that
        row alone, and the float64 copy of the features stays one batch long.
        """
        self._check_fitted()
        _check_columns(X)
        probabilities = np.zeros((len(X), 2))
        with self._threads():
            for start in range(0, len(X), SCORE_BATCH_ROWS):
                batch = X.iloc[start : start + SCORE_BATCH_ROWS]
                probabilities[start : start + len(batch)] = self.calibrator_.predict_proba(
                    self._prepare(batch)
                )
        return probabilities

    def churn_probability(self, X: pd.DataFrame) -> np.ndarray:
        """P(churn within the horizon) per row of ``X``."""
        return self.predict_proba(X)[:, 1]


# --- Back-test and scoring -----------------------------------------------------------------------


def backtest(
    sources: Sources,
    as_of: dt.datetime,
    model: ChurnModel | None = None,
    settings: EngineSettings | None = None,
) -> Backtest:
    """Train on the snapshots whose labels were known at ``as_of - horizon`` and test on the
    snapshot at ``as_of - horizon`` (labels known at ``as_of``); see the module docstring."""
    return backtest_and_fit(sources, as_of, model, settings, fit=False)[0]


def fit_history(
    sources: Sources,
    as_of: dt.datetime,
    model: ChurnModel | None = None,
    settings: EngineSettings | None = None,
) -> ChurnModel:
    """A model fitted on every snapshot whose label is known at ``as_of``."""
    template = model or ChurnModel()
    template._check_settings()
    t = utc(as_of)
    known = known_at(sources, t)
    dates = _training_dates(known, t - dt.timedelta(days=template.horizon_days), template)
    samples, _ = _labelled_samples(known, dates, template, settings)
    return _fit(template, _stack(samples, dates, template.horizon_days))


def backtest_and_fit(
    sources: Sources,
    as_of: dt.datetime,
    model: ChurnModel | None = None,
    settings: EngineSettings | None = None,
    *,
    fit: bool = True,
) -> tuple[Backtest, ChurnModel | None]:
    """``backtest`` and, when ``fit``, ``fit_history`` at ``as_of`` in one pass over the snapshots.

    The back-test's training snapshots (labels known at the test snapshot, ``as_of - horizon``)
    and the final model's (labels known at ``as_of``) are mostly the same dates: each date is
    executed once, ``DATES_PER_QUERY`` at a time, and only its sample (``sample_snapshot``) and
    the whole test snapshot are kept. Both models see exactly the rows ``backtest`` and
    ``fit_history`` would give them.
    """
    template = model or ChurnModel()
    template._check_settings()
    t = utc(as_of)
    known = known_at(sources, t)
    horizon = dt.timedelta(days=template.horizon_days)
    test_date = t - horizon
    train_dates = _training_dates(known, test_date - horizon, template)
    final_dates = _training_dates(known, test_date, template) if fit else []
    every_date = sorted({*train_dates, *final_dates, test_date})
    samples, test = _labelled_samples(known, every_date, template, settings, keep_whole=test_date)
    assert test is not None  # test_date is one of the dates read
    fitted = _fit(template, _stack(samples, train_dates, template.horizon_days))
    tested = evaluate(fitted, test, t, test_date, train_dates, samples)
    final = _fit(template, _stack(samples, final_dates, template.horizon_days)) if fit else None
    return tested, final


def _fit(template: ChurnModel, train: pd.DataFrame) -> ChurnModel:
    return clone(template).fit(train[list(FEATURES)], train[LABEL], train[SNAPSHOT])


SCORE_SCHEMA = pa.schema([("customer_id", pa.int64()), ("churn_probability", pa.float64())])


def current_frame(
    sources: Sources, as_of: dt.datetime, settings: EngineSettings | None = None
) -> pd.DataFrame:
    """The features of every subscriber at ``as_of`` (no labels): the rows ``score`` scores."""
    t = utc(as_of)
    return snapshot_frame(known_at(sources, t), [t], None, settings)


def score_frame(fitted: ChurnModel, current: pd.DataFrame) -> pa.Table:
    """customer_id, churn_probability for the rows of ``current`` (``current_frame``)."""
    columns = [
        pa.array(current["customer_id"].to_numpy(), pa.int64()),
        pa.array(fitted.churn_probability(current), pa.float64()),
    ]
    return pa.Table.from_arrays(columns, schema=SCORE_SCHEMA)


def score(
    sources: Sources,
    as_of: dt.datetime,
    model: ChurnModel | None = None,
    settings: EngineSettings | None = None,
) -> pa.Table:
    """customer_id, churn_probability for every subscriber at ``as_of``, from a model fitted on
    all labelled history (``fit_history``)."""
    fitted = fit_history(sources, as_of, model, settings)
    return score_frame(fitted, current_frame(sources, as_of, settings))


__all__ = [
    "CATEGORICAL",
    "COMPLAINT_KIND",
    "FEATURES",
    "LABEL",
    "NUMERIC",
    "SCORE_SCHEMA",
    "SNAPSHOT",
    "UNRESOLVED_OUTCOME",
    "Backtest",
    "CalibrationBin",
    "ChurnModel",
    "backtest",
    "backtest_and_fit",
    "calibration_table",
    "churn_features",
    "churn_labels",
    "current_frame",
    "fit_history",
    "known_at",
    "sample_snapshot",
    "score",
    "score_frame",
    "snapshot_batches",
    "snapshot_dates",
    "snapshot_features",
    "snapshot_frame",
    "snapshot_labels",
    "snapshots_table",
    "top_decile_lift",
    "training_frame",
]
