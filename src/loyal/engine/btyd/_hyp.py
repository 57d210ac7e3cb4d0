"""The incomplete-beta-type integral behind the Pareto/NBD likelihood, with exact derivatives.

    J(m, q, z) = integral_0^1 t^(m-1) (1 - z t)^(-q) dt = 2F1(m, q; m + 1; z) / m,

for m > 0, q > 0 and 0 <= z < 1. The Pareto/NBD likelihood needs ln J and its derivatives in
m, q and z; scipy's ``hyp2f1`` has no parameter derivatives, so both come from one of two
representations, each summed to machine precision:

- z <= 0.9: Euler's transformation 2F1(m, q; m+1; z) = (1-z)^(1-q) 2F1(1, m+1-q; m+1; z)
  gives a series of positive terms whose ratio is below z, differentiated term by term;
- z > 0.9 (one customer group's rates far apart): double-exponential (tanh-sinh) quadrature of
  the integral itself, differentiated under the integral sign. The nodes cluster doubly
  exponentially at both ends, where t^(m-1) and (1 - z t)^(-q) concentrate.

Everything is on the log scale, so large x (m and q in the hundreds) never overflows.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.special import logsumexp

FloatArray = NDArray[np.float64]

SERIES_LIMIT = 0.9
_MAX_TERMS = 600  # 0.9^600 ~ 1e-28: the series has always converged by then
_HALF_WIDTH = 8.0  # nodes on [-8, 8]: the end weights are below exp(-pi sinh 8 * min m)
_CHUNK = 4096
# Above this m or q the integrand is a spike of width ~1/m at t = 1, which needs finer steps:
# checked against adaptive quadrature up to m = q = 140,000. (With coarse steps there, the
# optimiser found and climbed the quadrature error on data without repeat purchases.)
_SHARP = 30.0

Nodes = tuple[FloatArray, FloatArray, FloatArray, FloatArray]


def _tanh_sinh_nodes(step: float) -> Nodes:
    """Nodes t_k and 1 - t_k (both accurate), ln t_k and ln w_k on [0, 1].

    The error falls like exp(-2 pi d / step), d the distance of the nearest singularity in
    the transformed variable.
    """
    u = np.arange(-_HALF_WIDTH, _HALF_WIDTH + step / 2, step)
    v = np.pi * np.sinh(u)
    log_t = -np.logaddexp(0.0, -v)
    log_1mt = -np.logaddexp(0.0, v)
    log_w = np.log(step * np.pi * np.cosh(u)) + log_t + log_1mt
    return np.exp(log_t), np.exp(log_1mt), log_t, log_w


_NODES = _tanh_sinh_nodes(1.0 / 32)
_FINE_NODES = _tanh_sinh_nodes(1.0 / 128)


def _series(
    m: FloatArray, q: FloatArray, z: FloatArray, omz: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    n_all = m.shape[0]
    sums = [np.empty(n_all) for _ in range(4)]  # S, dS/dm, dS/dq, dS/dz
    active = np.arange(n_all)
    m_a, z_a, omz_a = m, z, omz
    c = m + 1 - q  # > 0 for the Pareto/NBD's arguments (r + x or s + 1)
    total = 1.0 / m
    d_m = -1.0 / m**2
    d_q = np.zeros(n_all)
    d_z = np.zeros(n_all)
    h1 = np.zeros(n_all)  # sum_{k<n} 1/(c + k)
    h2 = 1.0 / m  # sum_{k<=n} 1/(m + k)
    term = c / (m * (m + 1))  # u_n / z for n = 1, where u_n = (c)_n / (m)_{n+1} z^n
    for n in range(1, _MAX_TERMS + 1):
        h1 = h1 + 1.0 / (c + n - 1)
        h2 = h2 + 1.0 / (m_a + n)
        u = term * z_a
        total = total + u
        d_m = d_m + u * (h1 - h2)
        d_q = d_q - u * h1
        d_z = d_z + n * term
        term = term * z_a * (c + n) / (m_a + 1 + n)
        if n % 8 == 0 or n == _MAX_TERMS:
            # Terms fall faster than z^n: the rest is below term * n / (1 - z).
            done = (term * (n + 1) <= 1e-17 * total * omz_a) | (n == _MAX_TERMS)
            if done.any():
                for out, val in zip(sums, (total, d_m, d_q, d_z), strict=True):
                    out[active[done]] = val[done]
                keep = ~done
                if not keep.any():
                    break
                active = active[keep]
                m_a, z_a, omz_a, c = m_a[keep], z_a[keep], omz_a[keep], c[keep]
                total, d_m, d_q, d_z = total[keep], d_m[keep], d_q[keep], d_z[keep]
                h1, h2, term = h1[keep], h2[keep], term[keep]
    total, d_m, d_q, d_z = sums
    log_j = (1 - q) * np.log(omz) + np.log(total)
    return (
        log_j,
        d_m / total,
        -np.log(omz) + d_q / total,
        (q - 1) / omz + d_z / total,
    )


def _quadrature(
    m: FloatArray, q: FloatArray, z: FloatArray, omz: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    out = [np.empty_like(m) for _ in range(4)]
    sharp = np.maximum(m, q) > _SHARP
    for nodes, mask in ((_NODES, ~sharp), (_FINE_NODES, sharp)):
        rows = np.flatnonzero(mask)
        for lo in range(0, rows.shape[0], _CHUNK):
            sel = rows[lo : lo + _CHUNK]
            res = _tanh_sinh(m[sel], q[sel], z[sel], omz[sel], nodes)
            for target, value in zip(out, res, strict=True):
                target[sel] = value
    return out[0], out[1], out[2], out[3]


def _tanh_sinh(
    m: FloatArray, q: FloatArray, z: FloatArray, omz: FloatArray, nodes: Nodes
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    t, one_minus_t, log_t, log_w = nodes
    mm, qq, zz = m[:, None], q[:, None], z[:, None]
    # 1 - z t from 1 - t, so that it stays accurate when z and t are both near 1.
    one_minus_zt = omz[:, None] + zz * one_minus_t
    log_1mzt = np.log(one_minus_zt)
    log_f = (mm - 1) * log_t - qq * log_1mzt + log_w
    log_j = logsumexp(log_f, axis=1)
    share = np.exp(log_f - log_j[:, None])
    return (
        log_j,
        share @ log_t,
        -(share * log_1mzt).sum(axis=1),
        q * (share * (t / one_minus_zt)).sum(axis=1),
    )


def log_beta_integral(
    m: FloatArray, q: FloatArray, z: FloatArray, omz: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """ln J(m, q, z) and its partial derivatives in m, q and z (see the module docstring).

    ``omz`` is 1 - z computed by the caller without cancellation (z is a ratio of
    differences that can lie within 1e-17 of 1).
    """
    m, q, z, omz = (np.asarray(v, dtype=np.float64) for v in (m, q, z, omz))
    log_j = np.empty_like(m)
    d_m, d_q, d_z = np.empty_like(m), np.empty_like(m), np.empty_like(m)
    near_one = z > SERIES_LIMIT
    for mask, method in ((~near_one, _series), (near_one, _quadrature)):
        if mask.any():
            res = method(m[mask], q[mask], z[mask], omz[mask])
            log_j[mask], d_m[mask], d_q[mask], d_z[mask] = res
    return log_j, d_m, d_q, d_z
