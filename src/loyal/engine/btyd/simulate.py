"""Seeded simulation of buy-till-you-die populations.

Used by the tests (parameter recovery) and the benchmark (a large transaction log). Every draw is
vectorised over customers: a population of a million customers takes about a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class SimulatedSummary:
    """Per-customer sufficient statistics of a simulated population (continuous time)."""

    frequency: FloatArray
    recency: FloatArray
    T: FloatArray


def _ages(T: float | FloatArray, size: int) -> FloatArray:
    ages = np.broadcast_to(np.asarray(T, dtype=np.float64), (size,)).copy()
    if np.any(ages <= 0):
        raise ValueError("T must be positive, got a minimum of {}.".format(ages.min()))
    return ages


def simulate_bgnbd(
    size: int,
    T: float | FloatArray,
    r: float,
    alpha: float,
    a: float,
    b: float,
    *,
    seed: int,
) -> SimulatedSummary:
    """Draw (x, t_x, T) for ``size`` customers from the BG/NBD model (Fader, Hardie & Lee 2005).

    Each customer buys as a Poisson process with rate lambda ~ Gamma(r, alpha) and, after each
    repeat purchase, drops out with probability p ~ Beta(a, b). The number of repeat purchases
    is min(N, K) with N ~ Poisson(lambda T) the purchases an immortal customer would make in
    (0, T] and K ~ Geometric(p) the purchase after which the customer drops out; the x-th of N
    uniform arrival times is T * Beta(x, N - x + 1).
    """
    rng = np.random.default_rng(seed)
    ages = _ages(T, size)
    rate = rng.gamma(r, 1.0 / alpha, size)
    p = rng.beta(a, b, size)
    n_arrivals = rng.poisson(rate * ages)
    # Geometric draws overflow int64 for p near 0; such a customer never drops out in practice.
    k = rng.geometric(np.maximum(p, 1e-12))
    x = np.minimum(n_arrivals, k)
    recency = np.zeros(size)
    bought = x > 0
    recency[bought] = ages[bought] * rng.beta(x[bought], n_arrivals[bought] - x[bought] + 1)
    return SimulatedSummary(x.astype(np.float64), recency, ages)


def simulate_paretonbd(
    size: int,
    T: float | FloatArray,
    r: float,
    alpha: float,
    s: float,
    beta: float,
    *,
    seed: int,
) -> SimulatedSummary:
    """Draw (x, t_x, T) for ``size`` customers from the Pareto/NBD model (Schmittlein et al. 1987).

    Purchases are Poisson with rate lambda ~ Gamma(r, alpha) during an exponential lifetime with
    rate mu ~ Gamma(s, beta); the last of x uniform arrivals in the observed life w is w U^(1/x).
    """
    rng = np.random.default_rng(seed)
    ages = _ages(T, size)
    rate = rng.gamma(r, 1.0 / alpha, size)
    death_rate = rng.gamma(s, 1.0 / beta, size)
    lifetime = rng.exponential(1.0 / np.maximum(death_rate, 1e-300))
    observed = np.minimum(lifetime, ages)
    x = rng.poisson(rate * observed)
    recency = np.zeros(size)
    bought = x > 0
    recency[bought] = observed[bought] * rng.random(int(bought.sum())) ** (1.0 / x[bought])
    return SimulatedSummary(x.astype(np.float64), recency, ages)


def simulate_gamma_gamma(
    frequency: FloatArray, p: float, q: float, gamma: float, *, seed: int
) -> FloatArray:
    """Draw each customer's mean spend over ``frequency`` purchases from the Gamma-Gamma model.

    nu ~ Gamma(q, gamma) per customer and each spend ~ Gamma(p, nu), so the sum of x spends is
    Gamma(p x, nu) (Fader, Hardie & Lee 2005, "RFM and CLV", section 4).
    """
    freq = np.asarray(frequency, dtype=np.float64)
    if np.any(freq <= 0):
        raise ValueError("Gamma-Gamma spends need frequency > 0 for every customer.")
    rng = np.random.default_rng(seed)
    nu = rng.gamma(q, 1.0 / gamma, freq.shape[0])
    return rng.gamma(p * freq, 1.0 / nu) / freq


def simulate_transactions(
    n_customers: int,
    *,
    start: datetime,
    acquisition_days: int,
    as_of: datetime,
    bgnbd: tuple[float, float, float, float],
    gamma_gamma: tuple[float, float, float],
    seed: int,
) -> pa.Table:
    """A transaction log (customer_id, ordered_at, revenue) from a BG/NBD process with spend.

    Customers make their first purchase uniformly over ``acquisition_days`` after ``start`` and
    are observed until ``as_of``. ``bgnbd`` is (r, alpha, a, b) with alpha in days; every
    purchase, the first included, spends Gamma(p, nu) with nu ~ Gamma(q, gamma) per customer.
    The log is sorted by time, as an order table would be.
    """
    if start.tzinfo is None or as_of.tzinfo is None:
        raise ValueError("start and as_of must be timezone-aware, e.g. datetime(..., tzinfo=UTC).")
    r, alpha, a, b = bgnbd
    p, q, gamma = gamma_gamma
    rng = np.random.default_rng(seed)
    horizon = (as_of - start).total_seconds() / 86400.0
    first = rng.uniform(0.0, acquisition_days, n_customers)
    ages = horizon - first
    rate = rng.gamma(r, 1.0 / alpha, n_customers)
    dropout = rng.beta(a, b, n_customers)
    n_arrivals = rng.poisson(rate * ages)
    k = rng.geometric(np.maximum(dropout, 1e-12))
    x = np.minimum(n_arrivals, k)

    # The first x of N sorted uniforms on (0, age] are S_i / (S_x + G) with S the cumulative sums
    # of exponentials and G ~ Gamma(N - x + 1): exact, and it only draws the x we keep.
    owner = np.repeat(np.arange(n_customers), x)
    gaps = rng.exponential(1.0, owner.shape[0])
    cumulative = np.cumsum(gaps)
    offsets = np.concatenate(([0], np.cumsum(x)[:-1]))
    has = x > 0
    # Restart the running sum at each customer's first gap.
    base = np.zeros(n_customers)
    base[has] = cumulative[offsets[has]] - gaps[offsets[has]]
    cumulative -= base[owner]
    last = np.zeros(n_customers)
    last[has] = cumulative[offsets[has] + x[has] - 1]
    rest = rng.gamma(np.maximum(n_arrivals - x + 1, 1).astype(np.float64))
    scale = ages / (last + rest)
    repeat_day = first[owner] + cumulative * scale[owner]

    customer = np.concatenate((np.arange(n_customers), owner))
    day = np.concatenate((first, repeat_day))
    nu = rng.gamma(q, 1.0 / gamma, n_customers)
    revenue = np.round(rng.gamma(p, 1.0 / nu[customer]), 2)
    order = np.argsort(day, kind="stable")
    micros = np.round(day[order] * 86400e6).astype(np.int64)
    start_us = int(start.timestamp() * 1e6)
    return pa.table(
        {
            "customer_id": pa.array(customer[order] + 1, pa.int64()),
            "ordered_at": pa.array(micros + start_us, pa.timestamp("us", tz="UTC")),
            "revenue": pa.array(revenue[order], pa.float64()),
        }
    )


__all__ = [
    "SimulatedSummary",
    "simulate_bgnbd",
    "simulate_gamma_gamma",
    "simulate_paretonbd",
    "simulate_transactions",
]
