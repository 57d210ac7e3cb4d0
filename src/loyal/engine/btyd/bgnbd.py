"""The BG/NBD model: Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way".

While active, a customer buys as a Poisson process with rate lambda ~ Gamma(r, alpha); after each
repeat purchase they drop out for good with probability p ~ Beta(a, b). Inputs per customer are
x (repeat purchases), t_x (time of the last purchase since the first) and T (time since the
first purchase), all in one time unit; alpha is in that unit.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1, polygamma

from loyal.engine.btyd._base import Model, Params
from loyal.engine.btyd._fitting import (
    WARM_START_ROWS,
    Histories,
    check_rfm,
    one_blas_thread,
    warn_if_no_repeat_purchases,
)

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class BetaGeoParams(Params):
    """BG/NBD parameters: purchase rate ~ Gamma(r, alpha), dropout probability ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float


def bgnbd_customer_log_likelihood(
    params: BetaGeoParams, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> FloatArray:
    """Each customer's log-likelihood under BG/NBD: Fader, Hardie & Lee (2005), equation (6).

    Written in logs as in Fader & Hardie's note "Implementing the BG/NBD Model for Customer Base
    Analysis in Excel" (2005, section 2): ln L = A1 + A2 + ln(exp(A3) + [x > 0] exp(A4)) with

    - A1 = ln G(r + x) - ln G(r) + r ln alpha
    - A2 = ln B(a, b + x) - ln B(a, b)
    - A3 = -(r + x) ln(alpha + T)
    - A4 = ln a - ln(b + x - 1) - (r + x) ln(alpha + t_x)

    The powers (alpha + T)^(r + x) that overflow in a spreadsheet ("#NUM!") never leave the
    log scale, and the last term is a log-sum-exp.
    """
    x, t_x, age = check_rfm(frequency, recency, T)
    r, alpha, a, b = params.as_array()
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = betaln(a, b + x) - betaln(a, b)
    a3 = -(r + x) * np.log(alpha + age)
    a4 = np.where(
        x > 0,
        np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + t_x),
        -np.inf,
    )
    return a1 + a2 + np.logaddexp(a3, a4)


def bgnbd_log_likelihood(log_params: FloatArray, data: Histories) -> tuple[float, FloatArray]:
    """Weighted BG/NBD log-likelihood and its gradient in (ln r, ln alpha, ln a, ln b).

    The same terms as :func:`bgnbd_customer_log_likelihood`, tabulated: A1 and A2 once per
    distinct x, the logarithms once per distinct time, and only the log-sum-exp of A3 and A4
    per row (and only for repeat buyers: without one, it is A3). The gradient is exact
    (digamma functions for the gamma and beta terms, the softmax weight of A4 for the rest).
    """
    value, grad, _ = _bgnbd(log_params, data, with_hessian=False)
    return value, grad


def bgnbd_log_likelihood_hessian(
    log_params: FloatArray, data: Histories
) -> tuple[float, FloatArray, FloatArray]:
    """:func:`bgnbd_log_likelihood` with its exact Hessian in the log-parameters.

    Second derivatives: trigamma functions for the gamma and beta terms; for the log-sum-exp
    softplus(D), pi (1 - pi) grad D grad D' + pi hess D with pi the share of A4.
    """
    value, grad, hess = _bgnbd(log_params, data, with_hessian=True)
    assert hess is not None
    return value, grad, hess


def _bgnbd(
    log_params: FloatArray, data: Histories, with_hessian: bool
) -> tuple[float, FloatArray, FloatArray | None]:
    params = np.exp(log_params)
    r, alpha, a, b = params
    xv = data.x_values
    w_x = data.weight_by_x
    log_t = np.log(alpha + data.time_values)
    inv_t = 1.0 / (alpha + data.time_values)
    total = float(w_x.sum())

    # A1 + A2, once per distinct x.
    dig_abx = digamma(a + b + xv)
    per_x = gammaln(r + xv) - gammaln(r) + r * np.log(alpha) + betaln(a, b + xv) - betaln(a, b)
    value = float(w_x @ per_x)
    grad = np.array(
        [
            float(w_x @ (digamma(r + xv) - digamma(r) + np.log(alpha))),
            total * r / alpha,
            float(w_x @ (digamma(a + b) - dig_abx)),
            float(w_x @ (digamma(a + b) + digamma(b + xv) - digamma(b) - dig_abx)),
        ]
    )
    hess = np.zeros((4, 4))
    if with_hessian:
        tri_abx = polygamma(1, a + b + xv)
        tri_ab = float(polygamma(1, a + b))
        hess[0, 0] = float(w_x @ (polygamma(1, r + xv) - polygamma(1, r)))
        hess[0, 1] = total / alpha
        hess[1, 1] = -total * r / alpha**2
        hess[2, 2] = float(w_x @ (tri_ab - tri_abx))
        hess[2, 3] = hess[2, 2]
        hess[3, 3] = float(w_x @ (tri_ab + polygamma(1, b + xv) - polygamma(1, b) - tri_abx))

    # A3 for every row, summed per distinct T: -sum_rows w (r + x) ln(alpha + T).
    w_T, wx_T = data.weight_by_T
    rw_T = r * w_T + wx_T
    value -= float(rw_T @ log_t)
    grad[0] -= float(w_T @ log_t)
    grad[1] -= float(rw_T @ inv_t)
    if with_hessian:
        hess[0, 1] -= float(w_T @ inv_t)
        hess[1, 1] += float(rw_T @ inv_t**2)

    # Repeat buyers add softplus(D), D = A4 - A3.
    rep = data.repeat_rows
    if rep.weights.shape[0]:
        inv_b = 1.0 / (b + xv - 1 + (xv == 0))
        c_x = np.log(a) + np.log(inv_b)
        rx = r + rep.x
        d_r = log_t[rep.T_index] - log_t[rep.rec_index]  # dD/dr
        d = c_x[rep.x_index] + rx * d_r
        e = np.exp(-np.abs(d))
        one_e = 1.0 + e
        # log1p would be exact for tiny e; log(1 + e) is off by < 2e-16 absolute and twice
        # as fast, which matters at a million rows per evaluation.
        value += float(rep.weights @ (np.maximum(d, 0.0) + np.log(one_e)))
        # The softmax share of A4 is expit(d) = 1/(1+e) for d >= 0 and 1 - 1/(1+e) below.
        pi = 0.5 + np.copysign(1.0 / one_e - 0.5, d)
        wpi = rep.weights * pi
        inv_diff = inv_t[rep.T_index] - inv_t[rep.rec_index]  # d^2 D / dr dalpha
        d_alpha = rx * inv_diff
        wpi_by_x = np.bincount(rep.x_index, wpi, minlength=xv.shape[0])
        sum_wpi = float(wpi_by_x.sum())
        grad[0] += float(wpi @ d_r)
        grad[1] += float(wpi @ d_alpha)
        grad[2] += sum_wpi / a
        grad[3] -= float(wpi_by_x @ inv_b)
        if with_hessian:
            # pi (1 - pi) grad D grad D', with dD/da = 1/a and dD/db = -1/(b + x - 1).
            v = rep.weights * pi * (1.0 - pi)
            v_by_x = np.bincount(rep.x_index, v, minlength=xv.shape[0])
            vb = v_by_x * inv_b
            v_dr, v_dalpha = v * d_r, v * d_alpha
            vb_dr = np.bincount(rep.x_index, v_dr, minlength=xv.shape[0]) @ inv_b
            vb_dalpha = np.bincount(rep.x_index, v_dalpha, minlength=xv.shape[0]) @ inv_b
            hess[0, 0] += float(v_dr @ d_r)
            hess[0, 1] += float(v_dr @ d_alpha) + float(wpi @ inv_diff)
            hess[1, 1] += float(v_dalpha @ d_alpha) - float(
                (wpi * rx) @ (inv_t[rep.T_index] ** 2 - inv_t[rep.rec_index] ** 2)
            )
            hess[0, 2] += float(v_dr.sum()) / a
            hess[1, 2] += float(v_dalpha.sum()) / a
            hess[0, 3] -= float(vb_dr)
            hess[1, 3] -= float(vb_dalpha)
            hess[2, 2] += float(v_by_x.sum()) / a**2 - sum_wpi / a**2
            hess[2, 3] -= float(vb.sum()) / a
            hess[3, 3] += float(vb @ inv_b) + float(wpi_by_x @ inv_b**2)

    log_grad = grad * params
    if not with_hessian:
        return value, log_grad, None
    hess = np.triu(hess) + np.triu(hess, 1).T
    # d^2/dlog p_i dlog p_j = p_i p_j d^2/dp_i dp_j + [i == j] p_i d/dp_i.
    log_hess = hess * np.outer(params, params) + np.diag(log_grad)
    return value, log_grad, log_hess


def _start(data: Histories) -> FloatArray:
    """Starting log-parameters from simple moments.

    r / alpha is the mean purchase rate; a / (a + b) is roughly the share of repeat buyers who
    look inactive. Any positive start converges; a close one saves iterations.
    """
    w = data.weights
    total_time = float(w @ data.T) or 1.0
    rate = max(float(w @ data.x) / total_time, 1e-3)
    inactive = float(w[data.repeat] @ (data.t_x[data.repeat] < 0.5 * data.T[data.repeat]))
    share = min(max(inactive / max(float(w[data.repeat].sum()), 1.0), 0.05), 0.95)
    r = 0.5
    return np.log([r, r / rate, share * 2.0, (1 - share) * 2.0])


class BetaGeoModel(Model[BetaGeoParams]):
    """BG/NBD buy-till-you-die model (Fader, Hardie & Lee 2005), fitted by maximum likelihood.

    ``BetaGeoModel().fit(frequency, recency, T)`` learns ``params_`` (r, alpha, a, b),
    ``standard_errors_`` (delta method on the inverse Hessian), ``covariance_``,
    ``log_likelihood_`` and ``n_customers_``. Predictions use the same time unit as T.
    """

    params_class = BetaGeoParams
    fit_signature = "fit(frequency, recency, T)"
    log_likelihood_function = staticmethod(bgnbd_log_likelihood)
    log_likelihood_hessian_function = staticmethod(bgnbd_log_likelihood_hessian)

    def __init__(self, *, tol: float = 1e-9, max_iter: int = 500) -> None:
        self.tol = tol
        self.max_iter = max_iter

    def fit(
        self,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
        weights: ArrayLike | None = None,
    ) -> BetaGeoModel:
        """Fit by maximum likelihood; ``weights`` counts customers per row (see rfm_patterns)."""
        data = Histories.from_arrays(frequency, recency, T, weights)
        warn_if_no_repeat_purchases(data)
        with one_blas_thread():
            return self._fit(data)

    def _fit(self, data: Histories) -> BetaGeoModel:
        # The optimiser works in time units of the oldest customer's age, which keeps every
        # log-parameter near 0 whatever the unit: alpha = exp(theta_alpha) * scale.
        shift = np.array([0.0, np.log(float(data.T.max()) or 1.0), 0.0, 0.0])
        start = _start(data) - shift
        if data.n_rows > WARM_START_ROWS:
            # A few Newton steps on every k-th row land close to the optimum, so the full data
            # then need only two or three.
            step = data.n_rows // (WARM_START_ROWS // 4)
            sample = Histories(
                data.x[::step], data.t_x[::step], data.T[::step], data.weights[::step] * step
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                start = self._maximise(sample, start, shift, tol=1e-6).log_params
        result = self._maximise(data, start, shift, tol=self.tol)
        self._store(result, shift, float(data.weights.sum()))
        self.log_likelihood_ = result.log_likelihood
        return self

    # Predictions -------------------------------------------------------------------------

    def _palive(self, data: Histories) -> FloatArray:
        r, alpha, a, b = self._require_fitted().as_array()
        x = data.x
        log_t = np.log(alpha + data.time_values)
        log_odds = (
            np.log(a)
            - np.log(b + x - 1 + (x == 0))
            + (r + x) * (log_t[data.T_index] - log_t[data.rec_index])
        )
        return np.where(data.repeat, expit(-log_odds), 1.0)

    def _alive_purchases(self, data: Histories, t: float) -> FloatArray:
        """Expected purchases in (T, T + t] of a customer still active at T, per (x, T) pair.

        Equation (10) of the paper without its P(alive) denominator. The Euler transformation
        2F1(r+x, b+x; c; z) = (1-z)^(a-1-r-x) 2F1(a+b-1-r, a-1; c; z) cancels the
        ((alpha+T)/(alpha+T+t))^(r+x) factor, so nothing overflows for large x.
        """
        r, alpha, a, b = self._require_fitted().as_array()
        _, pair_x, pair_t = data.xT_pairs
        x = data.x_values[pair_x]
        age = data.time_values[pair_t]
        c = a + b + x - 1
        one_minus_z = (alpha + age) / (alpha + age + t)
        z = t / (alpha + age + t)
        hyp = hyp2f1(a + b - 1 - r, a - 1, c, z)
        return c / (a - 1) * (1 - one_minus_z ** (a - 1) * hyp)

    def conditional_probability_alive(
        self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """P(still active at T | x, t_x, T): Fader, Hardie & Lee (2005), equation (11).

        1 for customers without a repeat purchase (the model lets customers drop out only
        right after a repeat purchase).
        """
        return self._palive(Histories.from_arrays(frequency, recency, T))

    def conditional_expected_purchases(
        self, t: float, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """Expected repeat purchases in (T, T + t] given (x, t_x, T): equation (10)."""
        data = Histories.from_arrays(frequency, recency, T)
        pair_index = data.xT_pairs[0]
        return self._palive(data) * self._alive_purchases(data, float(t))[pair_index]

    def expected_purchases(self, t: ArrayLike) -> FloatArray:
        """Unconditional E[X(t)]: repeat purchases by t after a first purchase (equation (9))."""
        r, alpha, a, b = self._require_fitted().as_array()
        times = np.atleast_1d(np.asarray(t, dtype=np.float64))
        z = times / (alpha + times)
        hyp = hyp2f1(a + b - 1 - r, a - 1, a + b - 1, z)
        return (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + times)) ** (a - 1) * hyp)

    def customer_log_likelihood(
        self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """Each customer's log-likelihood under the fitted parameters."""
        return bgnbd_customer_log_likelihood(self._require_fitted(), frequency, recency, T)
