"""The Pareto/NBD model: Schmittlein, Morrison & Colombo (1987), "Counting Your Customers".

While alive, a customer buys as a Poisson process with rate lambda ~ Gamma(r, alpha); their
lifetime is exponential with rate mu ~ Gamma(s, beta). Inputs per customer are x, t_x and T as
for BG/NBD; alpha and beta are in the unit of T.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import digamma, gammaln

from loyal.engine.btyd._base import Model, Params
from loyal.engine.btyd._fitting import (
    Histories,
    maximise,
    one_blas_thread,
    warn_if_no_repeat_purchases,
)
from loyal.engine.btyd._hyp import log_beta_integral

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class ParetoNBDParams(Params):
    """Pareto/NBD parameters: purchase rate ~ Gamma(r, alpha), dropout rate ~ Gamma(s, beta)."""

    r: float
    alpha: float
    s: float
    beta: float


@dataclass(frozen=True)
class _Terms:
    """Per-row pieces of the likelihood, kept for predictions and the gradient."""

    log_lik: FloatArray
    log_c: FloatArray
    log_a: FloatArray
    share_a: FloatArray  # P(alive at T): the share of the "still alive" term


def _log_tail(
    r: float, alpha: float, s: float, beta: float, x: FloatArray, t: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """ln K(t) and its gradient in (r, alpha, s, beta), per (x, t) pair.

    K(t) = integral_t^inf (alpha + u)^-(r+x) (beta + u)^-(s+1) du, written with the larger of
    alpha and beta as base so that z = |alpha - beta| / (base + t) lies in [0, 1):
    K(t) = (base + t)^-(r+s+x) J(r+s+x, q, z) with q = s + 1 (alpha >= beta) or r + x.
    This is Fader & Hardie's A0 term ("A Note on Deriving the Pareto/NBD Model and Related
    Expressions", 2005, equations (19)-(20)) without its 2F1 overflow for large x.
    """
    m = r + s + x
    grad = np.empty((4, x.shape[0]))
    if alpha >= beta:
        base, other, q = alpha + t, beta + t, s + 1.0 + 0.0 * x
    else:
        base, other, q = beta + t, alpha + t, r + x
    z = np.abs(alpha - beta) / base
    omz = other / base
    log_j, j_m, j_q, j_z = log_beta_integral(m, q, z, omz)
    log_base = np.log(base)
    log_k = -m * log_base + log_j
    d_base = -m / base + j_z * other / base**2  # via base and z
    d_other = -j_z / base
    if alpha >= beta:
        grad[0] = -log_base + j_m
        grad[2] = -log_base + j_m + j_q
        grad[1], grad[3] = d_base, d_other
    else:
        grad[0] = -log_base + j_m + j_q
        grad[2] = -log_base + j_m
        grad[3], grad[1] = d_base, d_other
    return log_k, grad


def _terms(
    params: FloatArray, data: Histories, with_grad: bool
) -> tuple[_Terms, FloatArray | None]:
    r, alpha, s, beta = params
    x = data.x
    xv = data.x_values
    log_alpha_t = np.log(alpha + data.time_values)
    log_beta_t = np.log(beta + data.time_values)
    rec_pair, T_pair, pair_x, pair_t = data.xt_pairs
    log_k, k_grad = _log_tail(r, alpha, s, beta, xv[pair_x], data.time_values[pair_t])

    log_c = (gammaln(r + xv) - gammaln(r) + r * np.log(alpha) + s * np.log(beta))[data.x_index]
    log_a = -(r + x) * log_alpha_t[data.T_index] - s * log_beta_t[data.T_index]
    lk_x, lk_T = log_k[rec_pair], log_k[T_pair]
    gap = lk_T - lk_x  # <= 0: K decreases in t; 0 exactly when t_x = T
    with np.errstate(divide="ignore"):
        log_i = lk_x + np.log(-np.expm1(np.minimum(gap, 0.0)))
    log_s_i = np.log(s) + log_i
    top = np.maximum(log_a, log_s_i)
    log_sum = top + np.log(np.exp(log_a - top) + np.exp(log_s_i - top))
    share_a = np.exp(log_a - log_sum)
    terms = _Terms(log_c + log_sum, log_c, log_a, share_a)
    if not with_grad:
        return terms, None

    w = data.weights
    w_a = w * share_a
    w_i = w - w_a
    # d ln I = (d ln K(t_x) - rho d ln K(T)) / (1 - rho) with rho = K(T) / K(t_x).
    rho = np.exp(gap)
    inv = np.where(rho < 1.0, 1.0 / np.where(rho < 1.0, 1.0 - rho, 1.0), 0.0)
    coef_x = w_i * inv
    coef_T = -w_i * rho * inv
    k_sums = k_grad @ (
        np.bincount(rec_pair, coef_x, minlength=log_k.shape[0])
        + np.bincount(T_pair, coef_T, minlength=log_k.shape[0])
    )
    w_x = data.weight_by_x
    g_r = float(w_x @ (digamma(r + xv) - digamma(r) + np.log(alpha)))
    g_alpha = float(w_x.sum() * r / alpha)
    g_s = float(w_x.sum() * np.log(beta))
    g_beta = float(w_x.sum() * s / beta)
    g_r -= float(w_a @ log_alpha_t[data.T_index])
    g_alpha -= float((w_a * (r + x)) @ (1.0 / (alpha + data.T)))
    g_s -= float(w_a @ log_beta_t[data.T_index])
    g_beta -= float(w_a @ (s / (beta + data.T)))
    g_s += float(w_i.sum() / s)
    grad = np.array([g_r, g_alpha, g_s, g_beta]) + k_sums
    return terms, grad


def paretonbd_log_likelihood(log_params: FloatArray, data: Histories) -> tuple[float, FloatArray]:
    """Weighted Pareto/NBD log-likelihood and its gradient in (ln r, ln alpha, ln s, ln beta).

    Schmittlein, Morrison & Colombo (1987), in the form of Fader & Hardie's "A Note on Deriving
    the Pareto/NBD Model and Related Expressions" (2005), equation (18):

        L = G(r+x) alpha^r beta^s / G(r) * [ (alpha+T)^-(r+x) (beta+T)^-s
                                              + s integral_{t_x}^T (alpha+u)^-(r+x)
                                                                  (beta+u)^-(s+1) du ]

    evaluated on the log scale: the first term is ln A, the integral is K(t_x) - K(T) with K
    from :func:`_log_tail`, and the two are combined by log-sum-exp. K is computed once per
    distinct (x, t) pair. The gradient is exact: digamma terms, and the derivatives of the
    hypergeometric integral from ``log_beta_integral``.
    """
    params = np.exp(log_params)
    terms, grad = _terms(params, data, with_grad=True)
    assert grad is not None
    return float(data.weights @ terms.log_lik), grad * params


def _start(data: Histories) -> FloatArray:
    w = data.weights
    rate = max(float(w @ data.x) / (float(w @ data.T) or 1.0), 1e-3)
    return np.log([0.5, 0.5 / rate, 0.5, 1.0])


class ParetoNBDModel(Model[ParetoNBDParams]):
    """Pareto/NBD buy-till-you-die model (Schmittlein et al. 1987), maximum likelihood.

    ``ParetoNBDModel().fit(frequency, recency, T)`` learns ``params_`` (r, alpha, s, beta),
    ``standard_errors_``, ``covariance_``, ``log_likelihood_`` and ``n_customers_``.
    """

    params_class = ParetoNBDParams
    fit_signature = "fit(frequency, recency, T)"

    def __init__(self, *, tol: float = 1e-9, max_iter: int = 500) -> None:
        self.tol = tol
        self.max_iter = max_iter

    def fit(
        self,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
        weights: ArrayLike | None = None,
    ) -> ParetoNBDModel:
        """Fit by maximum likelihood; ``weights`` counts customers per row (see rfm_patterns)."""
        data = Histories.from_arrays(frequency, recency, T, weights)
        warn_if_no_repeat_purchases(data)
        # The optimiser works in time units of the oldest customer's age (alpha and beta are
        # exp(theta) * scale), which keeps every log-parameter near 0 whatever the unit.
        log_scale = np.log(float(data.T.max()) or 1.0)
        shift = np.array([0.0, log_scale, 0.0, log_scale])

        def objective(theta: FloatArray) -> tuple[float, FloatArray]:
            value, grad = paretonbd_log_likelihood(theta + shift, data)
            return -value, -grad

        total = float(data.weights.sum())
        with one_blas_thread():
            result = maximise(
                objective,
                _start(data) - shift,
                names=self.params_class.names(),
                scale=total,
                tol=self.tol,
                max_iter=self.max_iter,
            )
        self._store(result, shift, total)
        self.log_likelihood_ = result.log_likelihood
        return self

    # Predictions -------------------------------------------------------------------------

    def _palive(self, data: Histories) -> FloatArray:
        params = self._require_fitted().as_array()
        return _terms(params, data, with_grad=False)[0].share_a

    def _alive_purchases(self, data: Histories, t: float) -> FloatArray:
        """Expected purchases in (T, T + t] of a customer alive at T, per (x, T) pair.

        (r + x)/(alpha + T) * (beta + T)/(s - 1) * [1 - ((beta + T)/(beta + T + t))^(s - 1)]:
        Fader & Hardie (2005), equation (41) without its P(alive) factor; the limit
        ln((beta + T + t)/(beta + T)) at s = 1 comes from expm1.
        """
        r, alpha, s, beta = self._require_fitted().as_array()
        _, pair_x, pair_t = data.xT_pairs
        x = data.x_values[pair_x]
        age = data.time_values[pair_t]
        return (r + x) / (alpha + age) * (beta + age) * _decay_integral(s, beta + age, t)

    def conditional_probability_alive(
        self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """P(alive at T | x, t_x, T): Fader & Hardie (2005), equation (36)."""
        return self._palive(Histories.from_arrays(frequency, recency, T))

    def conditional_expected_purchases(
        self, t: float, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """Expected purchases in (T, T + t] given (x, t_x, T): equation (41)."""
        data = Histories.from_arrays(frequency, recency, T)
        pair_index = data.xT_pairs[0]
        return self._palive(data) * self._alive_purchases(data, float(t))[pair_index]

    def expected_purchases(self, t: ArrayLike) -> FloatArray:
        """Unconditional E[X(t)] = r beta / (alpha (s - 1)) [1 - (beta/(beta + t))^(s - 1)]."""
        r, alpha, s, beta = self._require_fitted().as_array()
        times = np.atleast_1d(np.asarray(t, dtype=np.float64))
        return r / alpha * beta * _decay_integral(s, beta + 0 * times, times)

    def customer_log_likelihood(
        self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """Each customer's log-likelihood under the fitted parameters."""
        params = self._require_fitted().as_array()
        return _terms(params, Histories.from_arrays(frequency, recency, T), False)[0].log_lik


def _decay_integral(s: float, start: FloatArray, t: float | FloatArray) -> FloatArray:
    """[1 - (start / (start + t))^(s - 1)] / (s - 1), with its s = 1 limit."""
    log_ratio = np.log(start / (start + t))
    if abs(s - 1.0) < 1e-12:
        return -log_ratio
    return -np.expm1((s - 1.0) * log_ratio) / (s - 1.0)
