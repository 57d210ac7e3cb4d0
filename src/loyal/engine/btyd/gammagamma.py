"""The Gamma-Gamma model of spend per purchase: Fader, Hardie & Lee (2005), "RFM and CLV".

Each purchase of a customer spends Gamma(p, nu); nu varies across customers as Gamma(q, gamma).
A customer is described by x repeat purchases with mean spend m (lifetimes' ``monetary_value``);
only repeat buyers (x > 0) carry information. The model assumes spend is independent of the
purchase process: check that frequency and monetary_value are not correlated.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import digamma, gammaln, polygamma

from loyal.engine.btyd._base import Model, Params
from loyal.engine.btyd._fitting import (
    WARM_START_ROWS,
    _codes,
    _ids,
    as_float_array,
    check_weights,
    one_blas_thread,
)

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class GammaGammaParams(Params):
    """Gamma-Gamma parameters: spend ~ Gamma(p, nu), nu ~ Gamma(q, gamma) across customers."""

    p: float
    q: float
    gamma: float


def _check_spend(
    frequency: ArrayLike, monetary_value: ArrayLike, *, fitting: bool
) -> tuple[FloatArray, FloatArray]:
    x = as_float_array(frequency, "frequency")
    m = as_float_array(monetary_value, "monetary_value")
    if x.shape != m.shape:
        raise ValueError(
            "frequency and monetary_value must have the same length, got {} and {}.".format(
                x.shape[0], m.shape[0]
            )
        )
    if np.any(x < 0):
        raise ValueError(
            "frequency is negative for {} customers ({}).".format(
                int((x < 0).sum()), _ids(frequency, x < 0)
            )
        )
    if fitting:
        if x.shape[0] == 0:
            raise ValueError("There are no customers to fit the Gamma-Gamma model on.")
        if np.any(x == 0):
            raise ValueError(
                "The Gamma-Gamma model is fitted on repeat buyers only, but {} customers have "
                "frequency 0 ({}): pass the rows with frequency > 0.".format(
                    int((x == 0).sum()), _ids(frequency, x == 0)
                )
            )
        bad = m <= 0
        if np.any(bad):
            raise ValueError(
                "monetary_value is not positive for {} repeat buyers ({}): the model needs "
                "positive spend; drop refunds-only customers or fit on gross "
                "revenue.".format(int(bad.sum()), _ids(monetary_value, bad))
            )
    return x, m


def gamma_gamma_customer_log_likelihood(
    params: GammaGammaParams, frequency: ArrayLike, monetary_value: ArrayLike
) -> FloatArray:
    """Each repeat buyer's log-likelihood of mean spend m over x purchases.

    Fader, Hardie & Lee (2005, "RFM and CLV", equation (4)); Fader & Hardie's note "The
    Gamma-Gamma Model of Monetary Value" (2013), equation (1a), as in lifetimes:

        ln G(px + q) - ln G(px) - ln G(q) + q ln gamma + (px - 1) ln m + px ln x
        - (px + q) ln(x m + gamma)
    """
    x, m = _check_spend(frequency, monetary_value, fitting=True)
    p, q, gamma = params.as_array()
    px = p * x
    return (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(gamma)
        + (px - 1) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(x * m + gamma)
    )


class _SpendData:
    """Repeat buyers' (x, m) with per-x tables, for fast likelihood evaluation."""

    def __init__(self, x: FloatArray, m: FloatArray, weights: FloatArray):
        self.x, self.m, self.weights = x, m, weights
        self.x_index, self.x_values = _codes(x)
        self.weight_by_x = np.bincount(self.x_index, weights, minlength=self.x_values.shape[0])
        self.wx = weights * x
        self.xm = x * m
        log_x, log_m = np.log(x), np.log(m)
        # Sums that do not depend on the parameters.
        self.sum_wx_logm_logx = float(self.wx @ (log_m + log_x))
        self.sum_w_logm = float(weights @ log_m)


def gamma_gamma_log_likelihood(
    log_params: FloatArray, data: _SpendData
) -> tuple[float, FloatArray]:
    """Weighted Gamma-Gamma log-likelihood and its exact gradient in (ln p, ln q, ln gamma).

    The terms of :func:`gamma_gamma_customer_log_likelihood`, with the gamma functions once per
    distinct x; only ln(x m + gamma) is computed per customer.
    """
    value, grad, _ = _gamma_gamma(log_params, data, with_hessian=False)
    return value, grad


def gamma_gamma_log_likelihood_hessian(
    log_params: FloatArray, data: _SpendData
) -> tuple[float, FloatArray, FloatArray]:
    """:func:`gamma_gamma_log_likelihood` with its exact Hessian (trigamma terms)."""
    value, grad, hess = _gamma_gamma(log_params, data, with_hessian=True)
    assert hess is not None
    return value, grad, hess


def _gamma_gamma(
    log_params: FloatArray, data: _SpendData, with_hessian: bool
) -> tuple[float, FloatArray, FloatArray | None]:
    params = np.exp(log_params)
    p, q, gamma = params
    xv = data.x_values
    w_x = data.weight_by_x
    pxv = p * xv
    total_w = float(w_x.sum())
    log_xm_g = np.log(data.xm + gamma)
    inv_xm_g = 1.0 / (data.xm + gamma)
    pxq = p * data.x + q
    w_pxq = data.weights * pxq
    value = (
        float(w_x @ (gammaln(pxv + q) - gammaln(pxv)))
        - total_w * (gammaln(q) - q * np.log(gamma))
        + p * data.sum_wx_logm_logx
        - data.sum_w_logm
        - float(w_pxq @ log_xm_g)
    )
    dig_pxq = digamma(pxv + q)
    grad = np.array(
        [
            float((w_x * xv) @ (dig_pxq - digamma(pxv)))
            + data.sum_wx_logm_logx
            - float(data.wx @ log_xm_g),
            float(w_x @ dig_pxq)
            - total_w * (digamma(q) - np.log(gamma))
            - float(data.weights @ log_xm_g),
            total_w * q / gamma - float(w_pxq @ inv_xm_g),
        ]
    )
    log_grad = grad * params
    if not with_hessian:
        return value, log_grad, None
    tri_pxq = polygamma(1, pxv + q)
    hess = np.empty((3, 3))
    hess[0, 0] = float((w_x * xv**2) @ (tri_pxq - polygamma(1, pxv)))
    hess[0, 1] = hess[1, 0] = float((w_x * xv) @ tri_pxq)
    hess[0, 2] = hess[2, 0] = -float(data.wx @ inv_xm_g)
    hess[1, 1] = float(w_x @ tri_pxq) - total_w * float(polygamma(1, q))
    hess[1, 2] = hess[2, 1] = total_w / gamma - float(data.weights @ inv_xm_g)
    hess[2, 2] = -total_w * q / gamma**2 + float(w_pxq @ inv_xm_g**2)
    log_hess = hess * np.outer(params, params) + np.diag(log_grad)
    return value, log_grad, log_hess


class GammaGammaModel(Model[GammaGammaParams]):
    """Gamma-Gamma spend model (Fader, Hardie & Lee 2005), fitted by maximum likelihood.

    ``GammaGammaModel().fit(frequency, monetary_value)`` on repeat buyers learns ``params_``
    (p, q, gamma), ``standard_errors_``, ``covariance_``, ``log_likelihood_`` and
    ``n_customers_``.
    """

    params_class = GammaGammaParams
    fit_signature = "fit(frequency, monetary_value)"
    log_likelihood_function = staticmethod(gamma_gamma_log_likelihood)
    log_likelihood_hessian_function = staticmethod(gamma_gamma_log_likelihood_hessian)

    def __init__(self, *, tol: float = 1e-9, max_iter: int = 500) -> None:
        self.tol = tol
        self.max_iter = max_iter

    def fit(
        self,
        frequency: ArrayLike,
        monetary_value: ArrayLike,
        weights: ArrayLike | None = None,
    ) -> GammaGammaModel:
        """Fit on repeat buyers (frequency > 0, monetary_value > 0)."""
        x, m = _check_spend(frequency, monetary_value, fitting=True)
        w = check_weights(weights, x.shape[0])
        with one_blas_thread():
            data = _SpendData(x, m, w)
            # The optimiser works in units of the mean spend (gamma = exp(theta) * scale),
            # which keeps every log-parameter near 0 whatever the currency. p x / (p x + q) is
            # the weight of a customer's own mean: start in the middle, with the population
            # mean gamma p / (q - 1) at the observed mean spend.
            shift = np.array([0.0, 0.0, np.log(float(w @ m / w.sum()))])
            start = np.log([1.0, 3.0, 2.0])
            if x.shape[0] > WARM_START_ROWS:
                # A few Newton steps on every k-th customer land close to the optimum, so the
                # full data then need only two or three.
                step = x.shape[0] // (WARM_START_ROWS // 4)
                sample = _SpendData(x[::step], m[::step], w[::step] * step)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    start = self._maximise(sample, start, shift, tol=1e-6).log_params
            result = self._maximise(data, start, shift, tol=self.tol)
        self._store(result, shift, float(w.sum()))
        self.log_likelihood_ = result.log_likelihood
        return self

    def conditional_expected_average_spend(
        self, frequency: ArrayLike, monetary_value: ArrayLike
    ) -> FloatArray:
        """E[spend per purchase | x, m]: FHL (2005, "RFM and CLV"), equation (5).

        A weighted mean of the customer's own mean m (weight p x / (p x + q - 1)) and the
        population mean gamma p / (q - 1); customers without a repeat purchase get the latter.
        """
        p, q, gamma = self._require_fitted().as_array()
        x, m = _check_spend(frequency, monetary_value, fitting=False)
        own = p * x / (p * x + q - 1)
        population = gamma * p / (q - 1)
        return (1 - own) * population + own * m

    def customer_log_likelihood(
        self, frequency: ArrayLike, monetary_value: ArrayLike
    ) -> FloatArray:
        """Each repeat buyer's log-likelihood under the fitted parameters."""
        return gamma_gamma_customer_log_likelihood(
            self._require_fitted(), frequency, monetary_value
        )
