"""What the BTYD estimators share: input checks, tabulated data, the optimiser, standard errors."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]
Objective = Callable[[FloatArray], tuple[float, FloatArray]]
ObjectiveWithHessian = Callable[[FloatArray], tuple[float, FloatArray, FloatArray]]

# Search box for log-parameters (after time and money are scaled to order one): wide enough for
# any sensible fit, narrow enough that exp() never overflows when data cannot identify a value.
LOG_BOUND = 30.0
# Above this many rows, fits start from a fit on a regular sample of a quarter as many.
WARM_START_ROWS = 100_000


class NotFittedError(ValueError, AttributeError):
    """Raised when a model is used for prediction before ``fit``."""


class ConvergenceWarning(UserWarning):
    """The optimiser stopped without meeting its tolerance, or a parameter hit its bound."""


def _ids(values: ArrayLike, mask: NDArray[np.bool_], limit: int = 3) -> str:
    """A short list of the offending customers, by index label when the input had one."""
    positions = np.flatnonzero(mask)[:limit]
    if isinstance(values, pd.Series):
        labels = [str(v) for v in values.index[positions]]
        return "ids " + ", ".join(labels)
    return "rows " + ", ".join(str(p) for p in positions)


def as_float_array(values: ArrayLike, name: str) -> FloatArray:
    """A 1-D float64 array, or a plain error naming the argument."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError("{} must be one-dimensional, got shape {}.".format(name, arr.shape))
    if not np.all(np.isfinite(arr)):
        bad = ~np.isfinite(arr)
        raise ValueError(
            "{} has {} missing or infinite values ({}): drop or fill them first.".format(
                name, int(bad.sum()), _ids(values, bad)
            )
        )
    return arr


def check_rfm(
    frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Validate customers' (x, t_x, T) and return them as float arrays."""
    x = as_float_array(frequency, "frequency")
    t_x = as_float_array(recency, "recency")
    age = as_float_array(T, "T")
    if not (x.shape == t_x.shape == age.shape):
        raise ValueError(
            "frequency, recency and T must have the same length, got {}, {} and {}.".format(
                x.shape[0], t_x.shape[0], age.shape[0]
            )
        )
    if x.shape[0] == 0:
        raise ValueError("There are no customers: frequency, recency and T are empty.")
    checks = [
        (
            (x < 0) | (x != np.round(x)),
            "frequency is negative or not a whole number",
            "frequency counts repeat purchases",
            frequency,
        ),
        (t_x < 0, "recency is negative", "was the first order after the last one?", recency),
        (
            t_x > age * (1 + 1e-12),
            "recency is greater than T",
            "was as_of earlier than the last order?",
            recency,
        ),
        (
            (x == 0) & (t_x != 0),
            "recency is not 0 although frequency is 0",
            "recency counts from the first to the last purchase",
            recency,
        ),
    ]
    for mask, what, hint, source in checks:
        if np.any(mask):
            raise ValueError(
                "{} for {} customers ({}): {}".format(
                    what, int(mask.sum()), _ids(source, mask), hint
                )
            )
    return x, t_x, age


def check_weights(weights: ArrayLike | None, n: int) -> FloatArray:
    """Validate per-row weights (customer counts); ``None`` means one customer per row."""
    if weights is None:
        return np.ones(n)
    w = as_float_array(weights, "weights")
    if w.shape[0] != n:
        raise ValueError("weights has {} values for {} customers.".format(w.shape[0], n))
    if np.any(w < 0):
        raise ValueError(
            "weights are negative for {} rows ({}): weights count customers.".format(
                int((w < 0).sum()), _ids(weights, w < 0)
            )
        )
    if w.sum() <= 0:
        raise ValueError("weights sum to 0: there is nobody to fit.")
    return w


def _codes(values: FloatArray) -> tuple[IntArray, FloatArray]:
    """Codes per row into a table of values: ``table[codes] == values``.

    Whole numbers in a modest range (counts, and times in whole periods as summaries give them)
    index a dense table lo..hi directly; anything else is factorised by hashing. Unused table
    entries are harmless: every lookup goes through the codes.
    """
    if values.shape[0]:
        lo, hi = float(values.min()), float(values.max())
        if hi - lo <= max(1 << 16, values.shape[0]) and np.array_equal(values, np.floor(values)):
            return (values - lo).astype(np.intp), np.arange(lo, hi + 1.0)
    codes, uniques = pd.factorize(values, sort=False)
    return codes.astype(np.intp), np.asarray(uniques, dtype=np.float64)


def _weighted_counts(index: IntArray, weights: FloatArray, size: int) -> FloatArray:
    return np.asarray(np.bincount(index, weights, minlength=size), dtype=np.float64)


@dataclass(frozen=True)
class RepeatRows:
    """Repeat buyers' rows of a :class:`Histories`, with their lookup indices."""

    x: FloatArray
    weights: FloatArray
    x_index: IntArray
    T_index: IntArray
    rec_index: IntArray


class Histories:
    """Customers' (x, t_x, T) with lookup tables for fast likelihoods and predictions.

    Everything that depends on x alone is computed once per distinct x, everything that depends
    on one time (t_x or T) once per distinct time, and the hypergeometric functions once per
    distinct (x, time) pair. Rows may be distinct patterns with ``weights`` counting customers.
    """

    def __init__(self, x: FloatArray, t_x: FloatArray, T: FloatArray, weights: FloatArray):
        self.x, self.t_x, self.T, self.weights = x, t_x, T, weights
        self.n_rows = x.shape[0]
        self.x_index, self.x_values = _codes(x)
        both = np.concatenate((t_x, T))
        time_index, self.time_values = _codes(both)
        self.rec_index = time_index[: self.n_rows]
        self.T_index = time_index[self.n_rows :]
        self.repeat = x > 0

    @classmethod
    def from_arrays(
        cls,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
        weights: ArrayLike | None = None,
    ) -> Histories:
        """Checked arrays to tables, one row per customer (or pattern, with weights)."""
        x, t_x, age = check_rfm(frequency, recency, T)
        return cls(x, t_x, age, check_weights(weights, x.shape[0]))

    @cached_property
    def weight_by_x(self) -> FloatArray:
        """Total weight of the rows with each distinct x."""
        return _weighted_counts(self.x_index, self.weights, self.x_values.shape[0])

    @cached_property
    def weight_by_T(self) -> tuple[FloatArray, FloatArray]:
        """Per distinct time, the total weight and weighted x of the rows with that T."""
        n = self.time_values.shape[0]
        return (
            _weighted_counts(self.T_index, self.weights, n),
            _weighted_counts(self.T_index, self.weights * self.x, n),
        )

    @cached_property
    def repeat_rows(self) -> RepeatRows:
        """The rows with x > 0, which alone carry a recency term."""
        keep = self.repeat
        return RepeatRows(
            x=self.x[keep],
            weights=self.weights[keep],
            x_index=self.x_index[keep],
            T_index=self.T_index[keep],
            rec_index=self.rec_index[keep],
        )

    @cached_property
    def xT_pairs(self) -> tuple[IntArray, IntArray, IntArray]:
        """Per row the index of its (x, T) pair; per pair its x code and time code."""
        n_times = self.time_values.shape[0]
        key = self.x_index.astype(np.int64) * n_times + self.T_index
        pair_index, uniques = pd.factorize(key, sort=False)
        return pair_index.astype(np.intp), uniques // n_times, uniques % n_times

    @cached_property
    def xt_pairs(self) -> tuple[IntArray, IntArray, IntArray, IntArray]:
        """Distinct (x, t) pairs over t in {t_x, T}.

        Returns per row the pair index of (x, t_x) and of (x, T), and per pair its x code and
        time code.
        """
        n_times = self.time_values.shape[0]
        codes = self.x_index.astype(np.int64) * n_times
        key = np.concatenate((codes + self.rec_index, codes + self.T_index))
        pair_index, uniques = pd.factorize(key, sort=False)
        pair_index = pair_index.astype(np.intp)
        return (
            pair_index[: self.n_rows],
            pair_index[self.n_rows :],
            uniques // n_times,
            uniques % n_times,
        )


def warn_if_no_repeat_purchases(data: Histories) -> None:
    """Say so up front when nobody came back: the purchase parameters are then not identified."""
    if not np.any(data.x[data.weights > 0] > 0):
        warnings.warn(
            "No customer has a repeat purchase (frequency is 0 everywhere): the estimates only "
            "say that nobody buys again, and the parameters are not identified.",
            ConvergenceWarning,
            stacklevel=3,
        )


def group_histories(
    frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, IntArray]:
    """Distinct (frequency, recency, T) rows, their counts, and each input row's pattern index.

    ``fit(x, t_x, T, weights=counts)`` gives the same estimates as fitting every customer, and a
    per-pattern prediction ``p`` maps back to the customers as ``p[inverse]``. Patterns come in
    order of first appearance. Hash-based: about 0.1 s for a million customers.
    """
    x, t_x, age = check_rfm(frequency, recency, T)
    x_code, x_values = _codes(x)
    time_code, time_values = _codes(np.concatenate((t_x, age)))
    n = x.shape[0]
    n_times = time_values.shape[0]
    key = (x_code.astype(np.int64) * n_times + time_code[:n]) * n_times + time_code[n:]
    inverse, uniques = pd.factorize(key, sort=False)
    x_of = uniques // (n_times * n_times)
    rec_of = (uniques // n_times) % n_times
    T_of = uniques % n_times
    counts = np.bincount(inverse, minlength=uniques.shape[0]).astype(np.float64)
    return (
        x_values[x_of],
        time_values[rec_of],
        time_values[T_of],
        counts,
        inverse.astype(np.intp),
    )


@dataclass(frozen=True)
class FitResult:
    """The optimum of a log-likelihood over log-parameters."""

    log_params: FloatArray
    log_likelihood: float
    hessian: FloatArray  # of the negative log-likelihood, in log-parameters
    iterations: int
    converged: bool


def one_blas_thread() -> threadpool_limits:
    """A context that runs BLAS on one thread, for the whole of a model fit.

    The fits' dot products are long but cheap: BLAS threads only add wake-up and spin costs,
    which on a busy machine made a 20 ms fit take seconds. Preparing the data (its first dot
    products included) inside the limit too took a 0.2 s Gamma-Gamma fit of a million
    customers down to 0.13 s.
    """
    return threadpool_limits(limits=1, user_api="blas")


def numerical_hessian(
    objective: Objective, at: FloatArray, gradient: FloatArray, step: float = 1e-6
) -> FloatArray:
    """Hessian by forward differences of an analytic gradient (symmetrised).

    One gradient evaluation per parameter; the O(step) error is far below the sampling error
    the Hessian is used for.
    """
    k = at.shape[0]
    hess = np.empty((k, k))
    for i in range(k):
        shift = np.zeros(k)
        shift[i] = step
        hess[i] = (objective(at + shift)[1] - gradient) / step
    return (hess + hess.T) / 2


def maximise(
    objective: Objective,
    start: FloatArray,
    *,
    names: Sequence[str],
    scale: float,
    tol: float,
    max_iter: int,
    with_hessian: ObjectiveWithHessian | None = None,
) -> FitResult:
    """Maximise a log-likelihood over log-parameters.

    ``objective(theta)`` returns the *negative* log-likelihood and its analytic gradient. With
    ``with_hessian`` (the same plus the exact Hessian), a damped Newton method converges in a
    handful of evaluations; otherwise L-BFGS-B (in a wide box) gets close and one Newton step
    on the Hessian of the analytic gradient polishes the optimum. Tolerances apply to the
    objective divided by ``scale`` (the number of customers), whatever the data size. The
    Hessian at the optimum gives the standard errors.
    """
    if with_hessian is not None:
        result = _newton(with_hessian, start, scale=scale, tol=tol, max_iter=max_iter)
        if result is not None and result.converged:
            _check_result(result.log_params, result.hessian, names)
            return result
        if result is not None:
            start = result.log_params
    return _maximise(objective, start, names=names, scale=scale, tol=tol, max_iter=max_iter)


def _newton(
    objective: ObjectiveWithHessian, start: FloatArray, *, scale: float, tol: float, max_iter: int
) -> FitResult | None:
    """Damped Newton with exact Hessians; None if it fails (the caller falls back to L-BFGS).

    Negative curvature is flipped (|eigenvalue|) so that every step descends, steps are capped
    at 2 in log-parameters, and halved until the objective decreases enough (Armijo).
    """
    theta = np.clip(start, -LOG_BOUND, LOG_BOUND)
    value, grad, hess = objective(theta)
    if not (np.isfinite(value) and np.all(np.isfinite(grad)) and np.all(np.isfinite(hess))):
        return None
    for iteration in range(1, max_iter + 1):
        if np.max(np.abs(grad)) / scale < tol:
            return FitResult(theta, -value, hess, iteration - 1, True)
        eigenvalues, vectors = np.linalg.eigh(hess)
        floor = max(1e-12 * float(np.max(np.abs(eigenvalues))), 1e-300)
        step = -vectors @ ((vectors.T @ grad) / np.maximum(np.abs(eigenvalues), floor))
        longest = float(np.max(np.abs(step)))
        if longest > 2.0:
            step *= 2.0 / longest
        length = 1.0
        for _ in range(40):
            trial = np.clip(theta + length * step, -LOG_BOUND, LOG_BOUND)
            t_value, t_grad, t_hess = objective(trial)
            # A trial that meets the gradient tolerance is the optimum. Armijo's test would
            # reject it when the decrease is below the rounding error of a sum over a million
            # rows (1e-12 relative), and halving steps 50 times over took a 0.15 s fit to 2 s.
            at_optimum = bool(np.max(np.abs(t_grad)) / scale < tol)
            if np.isfinite(t_value) and (
                at_optimum or t_value <= value + 1e-4 * length * float(grad @ step)
            ):
                break
            length /= 2
        else:
            return None
        done = value - t_value <= 1e-15 * max(1.0, abs(value))
        theta, value, grad, hess = trial, t_value, t_grad, t_hess
        if not (np.all(np.isfinite(grad)) and np.all(np.isfinite(hess))):
            return None
        if done:
            return FitResult(theta, -value, hess, iteration, True)
    return FitResult(theta, -value, hess, max_iter, bool(np.max(np.abs(grad)) / scale < 1e-6))


def _maximise(
    objective: Objective,
    start: FloatArray,
    *,
    names: Sequence[str],
    scale: float,
    tol: float,
    max_iter: int,
) -> FitResult:
    def scaled(theta: FloatArray) -> tuple[float, FloatArray]:
        value, grad = objective(theta)
        return value / scale, grad / scale

    bounds = [(-LOG_BOUND, LOG_BOUND)] * start.shape[0]
    result = minimize(
        scaled,
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": max_iter, "ftol": tol * 1e-3, "gtol": tol, "maxcor": 20},
    )
    theta = np.clip(result.x, -LOG_BOUND, LOG_BOUND)
    value, grad = objective(theta)
    hess = numerical_hessian(objective, theta, grad)
    inside = np.abs(theta) < LOG_BOUND - 1e-6
    if inside.any() and np.all(np.isfinite(hess)):
        free = np.ix_(inside, inside)
        try:
            step = np.linalg.solve(hess[free], -grad[inside])
        except np.linalg.LinAlgError:
            step = np.full(int(inside.sum()), np.nan)
        if np.all(np.isfinite(step)) and np.max(np.abs(step)) < 0.1:
            trial = theta.copy()
            trial[inside] += step
            trial_value, trial_grad = objective(trial)
            if np.isfinite(trial_value) and trial_value < value:
                theta, value, grad = trial, trial_value, trial_grad
    _check_result(theta, hess, names)
    gradient_ok = bool(np.max(np.abs(grad[inside]), initial=0.0) / scale < max(tol, 1e-6))
    converged = bool(result.success) or gradient_ok
    if not converged:
        warnings.warn(
            "The optimiser stopped without converging ({}): the estimates may be imprecise. "
            "Raise max_iter or check the data.".format(result.message),
            ConvergenceWarning,
            stacklevel=4,
        )
    return FitResult(
        log_params=theta,
        log_likelihood=-float(value),
        hessian=hess,
        iterations=int(result.nit),
        converged=converged,
    )


def _check_result(theta: FloatArray, hess: FloatArray, names: Sequence[str]) -> None:
    """Warn when the data do not identify some parameters."""
    at_bound = [n for n, t in zip(names, theta, strict=True) if abs(t) >= LOG_BOUND - 1e-6]
    if at_bound:
        warnings.warn(
            "{} reached the edge of the search range (exp(+-{:g}) in scaled units): the data "
            "do not identify {}; with no or very few repeat purchases no model of this kind "
            "can.".format(", ".join(at_bound), LOG_BOUND, "it" if len(at_bound) == 1 else "them"),
            ConvergenceWarning,
            stacklevel=5,
        )
    elif not _positive_definite(hess):
        warnings.warn(
            "The log-likelihood is flat in some direction at the optimum, so {} are not all "
            "identified by the data (standard errors are NaN). Are there enough repeat "
            "purchases?".format(", ".join(names)),
            ConvergenceWarning,
            stacklevel=5,
        )


def _positive_definite(matrix: FloatArray) -> bool:
    if not np.all(np.isfinite(matrix)):
        return False
    eigenvalues = np.linalg.eigvalsh(matrix)
    return bool(eigenvalues.min() > 1e-10 * max(abs(eigenvalues.max()), 1e-300))


def delta_method(log_params: FloatArray, hessian: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Covariance and standard errors of exp(log_params) from the Hessian in log-parameters.

    The inverse Hessian of the negative log-likelihood is the asymptotic covariance of the
    log-parameters; d exp(theta) = exp(theta) d theta turns it into the natural parameters'.
    Parameters the data do not identify get NaN.
    """
    params = np.exp(log_params)
    k = params.shape[0]
    singular = not _positive_definite(hessian)
    cov_log = np.full((k, k), np.nan) if singular else np.linalg.inv(hessian)
    cov = cov_log * np.outer(params, params)
    diag = np.diag(cov)
    with np.errstate(invalid="ignore"):
        se = np.where(diag >= 0, np.sqrt(np.abs(diag)), np.nan)
    return cov, se
