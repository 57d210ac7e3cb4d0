"""The demo store: a seeded, reproducible business, generated as import-ready Arrow tables.

``generate()`` yields ``(kind, table)`` chunks whose columns and Arrow types are exactly those of
:mod:`loyal.imports.kinds` (customers also carry ``attributes``, a JSON object as text), so the
demo enters the records through the same import pipeline as users' files. Everything is
vectorised with NumPy over a chunk of customers; the only Python loop that scales with the data
runs over the purchase number (a few hundred rounds per chunk), never over customers.

The business, and the findings it was built to contain (parameters in :class:`DemoPlan`):

* **Buy till you die.** Each buyer purchases as a Poisson process with a rate drawn from a gamma
  distribution (``rate_shape``, ``rate_scale_days``) and, after each purchase, drops out with a
  probability drawn from a beta distribution (``dropout_a``, ``dropout_b``): BG/NBD. The dropout
  moment falls between the last purchase and the one that never happens.
* **Channels differ in quality.** Acquisition grows over the window (``acquisition_growth``);
  referral customers buy more often and leave less, ads customers the reverse
  (``channel_rate_factors``, ``channel_dropout_factors``).
* **The critical window.** A second purchase within ``early_window_days`` (60) of the first
  multiplies later dropout by ``early_repeat_dropout_factor``: early repeaters retain far better.
* **Five purchases make a loyal customer.** From the ``loyal_purchases``-th purchase on, dropout
  is multiplied by ``loyal_dropout_factor``.
* **Complaints.** Each order may draw a complaint (more often a refunded one). An unresolved one
  raises that moment's dropout to at least ``unresolved_dropout`` and scars later dropout
  (``unresolved_after_factor``); a resolved one barely moves it (``resolved_dropout_factor``).
  Customers with an owner get their complaints resolved more often.
* **Memberships and the six-month watershed.** About ``member_share`` of buyers hold a monthly
  membership; the monthly cancellation hazard is ``early_cancel_hazard`` for the first
  ``watershed_months`` months and ``late_cancel_hazard`` after, lower for heavy users. Members
  drop out of buying less (``member_dropout_factor``: breadth of services raises switching cost),
  and most members who stop buying cancel within a couple of months.
* **Activity thins out before leaving.** Sessions follow each customer's usage rate until the
  dropout moment, fading linearly over the last ``decline_days`` to ``decline_floor``.
* **Seasonality.** Orders peak at Singles' Day (11 November, with the presale before it), before
  Chinese New Year (and dip during it), on 18 June, at weekends and in the evening (UTC+8).
* **Baskets.** Products have affinities (coffee beans with filters, phones with cases):
  ``affinity_share`` of extra order lines come from the first line's companions.
* About ``prospect_share`` of records are prospects who never buy.

tests/demo/test_generator.py checks each finding on 5,000 customers.

Reproducibility: the same arguments and plan give byte-identical tables on the same NumPy
version. Each chunk of ``batch_customers`` customers draws from its own random streams, seeded
by ``(seed, chunk number, stream)``, so memory stays bounded; a different chunk size therefore
gives a different (equally valid) business.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import ArrayLike
from scipy import special

from loyal.demo import catalogue as cat
from loyal.imports import kinds

DEFAULT_AS_OF = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
MONTH_DAYS = 365.25 / 12


@dataclass(frozen=True)
class DemoPlan:
    """The knobs of the demo business; the defaults make the findings of the module docstring."""

    # Who comes, and when.
    prospect_share: float = 0.17  # records that never buy
    # Shares of the prospects' stages: prospect, potential_intent, intent.
    prospect_stage_shares: tuple[float, float, float] = (0.5, 0.3, 0.2)
    acquisition_growth: float = 2.5  # new records per day at the end / at the start of the window
    channels: tuple[str, ...] = ("web", "store", "referral", "ads", "wechat")
    channel_shares: tuple[float, ...] = (0.30, 0.18, 0.12, 0.25, 0.15)
    channel_rate_factors: tuple[float, ...] = (1.0, 1.15, 1.35, 0.8, 1.05)
    channel_dropout_factors: tuple[float, ...] = (1.0, 0.85, 0.55, 1.45, 0.9)
    # Buy till you die: purchase rate per day ~ Gamma(rate_shape, scale=1/rate_scale_days).
    rate_shape: float = 1.2
    rate_scale_days: float = 40.0
    max_rate_per_day: float = 0.25
    # Dropout probability after each purchase ~ Beta(dropout_a, dropout_b), then modified.
    dropout_a: float = 1.6
    dropout_b: float = 3.2
    first_purchase_delay_days: float = 10.0  # from first contact (store visitors buy at once)
    early_window_days: float = 60.0
    early_repeat_dropout_factor: float = 0.3
    loyal_purchases: int = 5
    loyal_dropout_factor: float = 0.35
    member_dropout_factor: float = 0.7
    # Orders.
    extra_lines_mean: float = 0.7  # Poisson mean of lines beyond the first
    favourite_category_share: float = 0.55  # first lines from the customer's favourite category
    affinity_share: float = 0.65  # extra lines taken from the first line's companions
    refund_share: float = 0.03
    cancel_share: float = 0.015
    discount_share: float = 0.12
    festival_discount_share: float = 0.6
    wholesale_share: float = 0.02
    # Memberships (monthly plans of catalogue.PLANS).
    member_share: float = 0.32
    watershed_months: int = 6
    early_cancel_hazard: float = 0.1  # per month, in the first watershed_months months
    late_cancel_hazard: float = 0.03
    usage_hazard_elasticity: float = 0.5  # hazard ~ (usage / mean usage) ** -elasticity
    follow_dropout_share: float = 0.7  # members who stop buying and then cancel
    # Complaints, per order.
    complaint_rate: float = 0.03
    refund_complaint_factor: float = 5.0
    unresolved_share: float = 0.45
    owned_unresolved_share: float = 0.25
    unresolved_dropout: float = 0.6
    unresolved_after_factor: float = 2.0
    resolved_dropout_factor: float = 1.1
    # Behaviour events.
    sessions_per_month: float = 1.5  # mean over customers, while active
    events_per_session: float = 3.0
    decline_days: float = 60.0
    decline_floor: float = 0.15
    prospect_interest_days: float = 45.0  # how long a prospect keeps visiting (longer if intent)
    # Interactions.
    owner_share: float = 0.5
    service_contacts_per_year: float = 0.8
    outreach_per_year: float = 1.0  # by owners, to the customers they own
    # Consents: opt-in shares for email, sms, wechat, phone at first contact.
    opt_in_shares: tuple[float, float, float, float] = (0.55, 0.45, 0.65, 0.3)
    opt_out_share: float = 0.05
    churn_opt_out_share: float = 0.25

    def __post_init__(self) -> None:
        n = len(self.channels)
        if not (len(self.channel_shares) == len(self.channel_rate_factors) == n) or (
            len(self.channel_dropout_factors) != n
        ):
            raise ValueError(
                f"DemoPlan has {n} channels but {len(self.channel_shares)} shares, "
                f"{len(self.channel_rate_factors)} rate factors and "
                f"{len(self.channel_dropout_factors)} dropout factors: give one of each per channel"
            )
        if not 0 <= self.prospect_share < 1:
            raise ValueError(f"prospect_share is {self.prospect_share}: use a share in [0, 1)")


def staff_usernames() -> list[str]:
    """The staff usernames used in ``owner`` and ``staff``; create these users before loading."""
    return list(cat.STAFF)


def generate(
    customers: int = 5000,
    *,
    seed: int = 7,
    as_of: dt.datetime | None = None,
    years: float = 2.0,
    batch_customers: int = 50_000,
    plan: DemoPlan | None = None,
) -> Iterator[tuple[str, pa.Table]]:
    """Yield ``(kind, table)`` for ``customers`` records over the ``years`` before ``as_of``.

    Per chunk of ``batch_customers`` records: customers, then their orders, subscriptions,
    events, interactions and consents (a kind is skipped when a chunk has none), so a loader
    always meets a customer before the rows that refer to it. Every timestamp lies between the
    customer's ``joined_at`` and ``as_of`` (UTC, default 2026-11-01). ``plan`` changes the
    business (see :class:`DemoPlan`); arguments are checked at once, not at the first chunk.
    """
    as_of = DEFAULT_AS_OF if as_of is None else as_of
    if as_of.tzinfo is None:
        raise ValueError(f"as_of {as_of.isoformat()} has no time zone: pass an aware datetime")
    if customers < 0 or batch_customers < 1 or years <= 0 or seed < 0:
        raise ValueError(
            f"customers={customers}, batch_customers={batch_customers}, years={years}, "
            f"seed={seed}: customers and seed must be >= 0, batch_customers >= 1 and years > 0"
        )
    world = _World.build(plan or DemoPlan(), as_of.astimezone(dt.UTC), years, customers)
    return _generate(world, customers, seed, batch_customers)


def _generate(
    world: _World, customers: int, seed: int, batch_customers: int
) -> Iterator[tuple[str, pa.Table]]:
    counters = {"orders": 0, "subscriptions": 0, "events": 0, "sessions": 0, "interactions": 0}
    for chunk, first in enumerate(range(0, customers, batch_customers)):
        size = min(batch_customers, customers - first)
        yield from _chunk(world, seed, chunk, first, size, counters)


# ---- the world: calendar and catalogue, shared by every chunk ---------------------------------


@dataclass(frozen=True, eq=False)
class _Clock:
    """A time change for an inhomogeneous Poisson process over hourly cells (time in days)."""

    rate: np.ndarray  # intensity of each hourly cell, mean 1 over the cells
    cum: np.ndarray  # integrated intensity (in days) at each cell edge
    festive: np.ndarray  # cells in a shopping festival

    @classmethod
    def build(cls, start: dt.datetime, days: float, power: float) -> _Clock:
        cells = int(math.ceil(days * 24)) + 48
        local = np.datetime64(start.replace(tzinfo=None), "h") + np.timedelta64(8, "h")
        hours = local + np.arange(cells).astype("timedelta64[h]")
        day = hours.astype("datetime64[D]")
        month_start = day.astype("datetime64[M]")
        month = month_start.astype(np.int64) % 12 + 1
        dom = (day - month_start.astype("datetime64[D]")).astype(np.int64) + 1
        season = np.ones(cells)
        season[(month == 11) & (dom <= 10)] = 1.6  # Singles' Day presale
        season[(month == 11) & (dom == 11)] = 4.5
        season[(month == 11) & ((dom == 12) | (dom == 13))] = 1.3
        season[(month == 6) & (dom < 18)] = 1.2
        season[(month == 6) & (dom == 18)] = 2.5
        season[(month == 12) & (dom == 12)] = 1.8
        cny = np.array(cat.CHINESE_NEW_YEAR, dtype="datetime64[D]")
        after = np.searchsorted(cny, day, side="right")
        until = (cny[np.minimum(after, cny.size - 1)] - day).astype(np.int64)
        since = (day - cny[np.maximum(after - 1, 0)]).astype(np.int64)
        season[(after < cny.size) & (until >= 1) & (until <= 21)] = 1.6  # New Year shopping
        season[(after > 0) & (since >= 0) & (since <= 6)] = 0.6  # holiday: shops and couriers rest
        weekday = (day.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
        hour = (hours - day).astype(np.int64)
        rate = (
            np.asarray(cat.HOUR_WEIGHTS)[hour]
            * np.asarray(cat.WEEKDAY_WEIGHTS)[weekday]
            * season**power
        )
        rate /= rate.mean()
        cum = np.concatenate([[0.0], np.cumsum(rate / 24)])
        return cls(rate, cum, season > 1.05)

    def integral(self, t: np.ndarray) -> np.ndarray:
        """Integrated intensity from the start to ``t`` (unit intensity past the last cell)."""
        h = np.asarray(t) * 24
        cell = np.clip(np.floor(h).astype(np.int64), 0, self.rate.size - 1)
        inside = self.cum[cell] + (h - cell) * self.rate[cell] / 24
        return np.where(h < self.rate.size, inside, self.cum[-1] + (h - self.rate.size) / 24)

    def invert(self, level: np.ndarray) -> np.ndarray:
        """The time at which the integrated intensity reaches ``level``."""
        cell = np.clip(np.searchsorted(self.cum, level, side="right") - 1, 0, self.rate.size - 1)
        h = cell + (level - self.cum[cell]) * 24 / self.rate[cell]
        beyond = self.rate.size + (level - self.cum[-1]) * 24
        return np.where(level < self.cum[-1], h, beyond) / 24

    def advance(self, t: np.ndarray, amount: np.ndarray) -> np.ndarray:
        return self.invert(self.integral(t) + amount)

    def is_festive(self, t: np.ndarray) -> np.ndarray:
        return self.festive[np.clip((t * 24).astype(np.int64), 0, self.festive.size - 1)]


@dataclass(frozen=True, eq=False)
class _World:
    """What every chunk shares: the window, the clocks, the catalogue as arrays, id widths."""

    plan: DemoPlan
    start_us: int
    days: float  # day 0 is the start of the window, day `days` is as_of
    as_of_day: int  # as_of's date, in days since 1970-01-01
    buy: _Clock
    browse: _Clock
    widths: dict[str, int]  # digits of each id, fixed by the run's size
    price: np.ndarray  # per product, in cents
    cost: np.ndarray
    consumable: np.ndarray
    popularity: np.ndarray  # cumulative, products grouped by category
    category_bounds: np.ndarray  # cumulative popularity at category boundaries
    partners: np.ndarray  # products x 4: companion products (-1 pads)
    partner_cum: np.ndarray  # products x 4: cumulative companion weights

    @classmethod
    def build(cls, plan: DemoPlan, as_of: dt.datetime, years: float, customers: int) -> _World:
        days = years * 365.25
        start = as_of - dt.timedelta(days=days)
        epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        sku = [p.sku for p in cat.PRODUCTS]
        codes = [c.code for c in cat.CATEGORIES]
        category = np.array([codes.index(p.category) for p in cat.PRODUCTS])
        if np.any(np.diff(category) < 0):
            raise ValueError("catalogue.PRODUCTS must be grouped by category, in CATEGORIES order")
        margin = np.array([cat.CATEGORIES[c].margin for c in category])
        price = np.array([round(p.price * 100) for p in cat.PRODUCTS], dtype=np.int64)
        # A fixed spread around the category margin, so products of a category differ a little.
        spread = 0.92 + 0.16 * ((np.arange(price.size) * 0.618034) % 1.0)
        popularity = np.array([p.popularity for p in cat.PRODUCTS])
        popularity = np.cumsum(popularity) / popularity.sum()
        ends = np.searchsorted(category, np.arange(len(codes)), side="right") - 1
        partners = np.full((price.size, 4), -1)
        partner_cum = np.ones((price.size, 4))
        for product, companions in cat.AFFINITIES.items():
            weights = np.array([1.0, 0.6, 0.45, 0.35][: len(companions)])
            partners[sku.index(product), : len(companions)] = [sku.index(c) for c in companions]
            partner_cum[sku.index(product), : len(companions)] = np.cumsum(weights) / weights.sum()
        scale = max(customers, 1)
        return cls(
            plan=plan,
            start_us=(start - epoch) // dt.timedelta(microseconds=1),
            days=days,
            as_of_day=(as_of.date() - epoch.date()).days,
            buy=_Clock.build(start, days, power=1.0),
            browse=_Clock.build(start, days, power=0.4),  # browsing swings less than buying
            widths={
                "C": max(7, len(str(scale))),
                "O": max(8, len(str(scale * 10))),
                "S": max(7, len(str(scale))),
                "E": max(9, len(str(scale * 100))),
                "V": max(9, len(str(scale * 30))),
                "I": max(8, len(str(scale * 10))),
            },
            price=price,
            cost=np.rint(price * (1 - margin) * spread).astype(np.int64),
            consumable=np.array([p.consumable for p in cat.PRODUCTS]),
            popularity=popularity,
            category_bounds=np.concatenate([[0.0], popularity[ends]]),
            partners=partners,
            partner_cum=partner_cum,
        )

    def product(self, level: np.ndarray) -> np.ndarray:
        """The product at cumulative popularity ``level`` in [0, 1)."""
        return np.minimum(
            np.searchsorted(self.popularity, level, side="right"), self.price.size - 1
        )

    def timestamps(self, days: np.ndarray) -> pa.Array:
        """Days into the window as UTC timestamps; infinite days (never) are nulls."""
        days = np.asarray(days)
        never = ~np.isfinite(days)
        us = self.start_us + np.rint(np.where(never, 0, days) * 86_400e6).astype(np.int64)
        as_of_us = self.start_us + round(self.days * 86_400e6)
        us = np.minimum(us, as_of_us)
        return pa.array(us, pa.timestamp("us", tz="UTC"), mask=never if never.any() else None)

    def codes(self, prefix: str, numbers: np.ndarray) -> pa.Array:
        return _codes(prefix, numbers, self.widths[prefix])


# ---- one chunk -------------------------------------------------------------------------------

_PEOPLE, _PURCHASES, _ORDERS, _MEMBERS, _EVENTS, _INTERACTIONS, _CONSENTS, _IDENTITY = range(8)


def _chunk(
    world: _World, seed: int, chunk: int, first: int, size: int, counters: dict[str, int]
) -> Iterator[tuple[str, pa.Table]]:
    def rng(stream: int) -> np.random.Generator:
        return np.random.default_rng([seed, chunk, stream])

    people = _draw_people(world, rng(_PEOPLE), first, size)
    purchases = _simulate_purchases(world, people, rng(_PURCHASES))
    members = _finish_memberships(world, people, purchases, rng(_MEMBERS))
    ids = world.codes("C", people.number + 1)
    c = _Chunk(world, people, purchases, members, ids, counters, counters["orders"])
    yield "customers", _customers(c, rng(_IDENTITY))
    steps = {
        "orders": lambda: _orders(c, rng(_ORDERS)),
        "subscriptions": lambda: _subscriptions(c),
        "events": lambda: _events(c, rng(_EVENTS)),
        "interactions": lambda: _interactions(c, rng(_INTERACTIONS)),
        "consents": lambda: _consents(c, rng(_CONSENTS)),
    }
    for kind, build in steps.items():
        table = build()  # one kind at a time, so only one kind's rows are held at once
        if table.num_rows:
            yield kind, table


@dataclass(frozen=True, eq=False)
class _People:
    """One chunk's records as arrays; days count from the start of the window."""

    number: np.ndarray  # 0-based record number in the run
    joined: np.ndarray
    stage: np.ndarray  # index into kinds.STAGES: 0-2 prospects, 3 customer
    channel: np.ndarray  # index into plan.channels
    city: np.ndarray  # index into catalogue.CITIES
    script: np.ndarray  # 0 simplified Chinese, 1 traditional, 2 English
    owner: np.ndarray  # index into catalogue.STAFF, -1 for none
    rank: np.ndarray  # percentile of the purchase rate before channel effects
    rate: np.ndarray  # purchases per day while alive
    dropout: np.ndarray  # base dropout probability after a purchase
    usage: np.ndarray  # sessions per month while active
    favourite: np.ndarray  # favourite category
    wholesale: np.ndarray
    first_buy: np.ndarray  # first purchase (buyers)
    interest_end: np.ndarray  # when a prospect stops visiting
    member: np.ndarray
    member_start: np.ndarray  # inf for non-members
    member_end: np.ndarray  # before the purchase process is known
    contact: np.ndarray  # n x 4: has email, sms, wechat, phone (kinds.CHANNELS order)
    opted_in: np.ndarray  # n x 4: opted in at first contact

    @property
    def buyer(self) -> np.ndarray:
        return self.stage == 3


def _norm(weights: tuple[float, ...] | np.ndarray) -> np.ndarray:
    weights = np.asarray(weights, dtype=float)
    return weights / weights.sum()


def _draw_people(world: _World, rng: np.random.Generator, first: int, n: int) -> _People:
    plan, days = world.plan, world.days
    growth = plan.acquisition_growth
    u = rng.random(n)
    # Acquisition grows exponentially over the window: invert its cumulative distribution.
    joined = days * (np.log1p(u * (growth - 1)) / np.log(growth) if growth != 1 else u)
    buyer = rng.random(n) >= plan.prospect_share
    stage = np.where(buyer, 3, rng.choice(3, n, p=_norm(plan.prospect_stage_shares)))
    channel = rng.choice(len(plan.channels), n, p=_norm(plan.channel_shares))
    city = rng.choice(len(cat.CITIES), n, p=_norm([c[1] for c in cat.CITIES]))
    region = cat.CITY_REGIONS[city]
    shares = np.cumsum([cat.REGIONS[code].script_shares for code in cat.REGION_CODES], axis=1)
    script = (rng.random(n)[:, None] >= shares[region][:, :2]).sum(axis=1)
    base = rng.gamma(plan.rate_shape, 1 / plan.rate_scale_days, n)
    rank = special.gammainc(plan.rate_shape, base * plan.rate_scale_days)
    rate = np.minimum(base * np.asarray(plan.channel_rate_factors)[channel], plan.max_rate_per_day)
    dropout = rng.beta(plan.dropout_a, plan.dropout_b, n)
    dropout = np.clip(dropout * np.asarray(plan.channel_dropout_factors)[channel], 0.005, 0.95)
    activity = np.where(buyer, 0.7 + 0.6 * rank, 0.5 + 0.4 * stage)
    usage = rng.gamma(2.0, 0.5, n) * plan.sessions_per_month * activity
    category_share = np.diff(world.category_bounds)
    favourite = rng.choice(category_share.size, n, p=_norm(category_share))
    wholesale = buyer & (rng.random(n) < plan.wholesale_share)
    owned_share = np.where(
        buyer, plan.owner_share * (0.5 + rank), np.array([0.2, 0.4, 0.8, 0.0])[stage]
    )
    # English-speaking customers get the English-speaking agents (the last three).
    agent = np.where(script == 2, rng.integers(5, 8, n), rng.integers(0, 5, n))
    owner = np.where(rng.random(n) < owned_share, agent, -1)
    store = plan.channels.index("store") if "store" in plan.channels else -1
    delay = rng.exponential(plan.first_purchase_delay_days, n)
    delay = np.where(channel == store, delay / 500, delay)  # store visitors buy on the spot
    first_buy = joined + delay
    late = first_buy > days
    first_buy[late] = joined[late] + rng.random(late.sum()) * (days - joined[late])
    interest_end = joined + rng.exponential(plan.prospect_interest_days * (1 + stage), n)
    # Memberships are drawn before the purchases because a running one lowers dropout.
    member = buyer & (rng.random(n) < plan.member_share * (0.4 + 1.2 * rank))
    lag = np.where(rng.random(n) < 0.5, 0.0, rng.exponential(60.0, n))
    member_start = np.where(member, first_buy + lag, np.inf)
    hazard_factor = np.clip(
        (usage / plan.sessions_per_month) ** -plan.usage_hazard_elasticity, 0.5, 2.0
    )
    early = rng.geometric(np.minimum(plan.early_cancel_hazard * hazard_factor, 0.95))
    later = rng.geometric(np.minimum(plan.late_cancel_hazard * hazard_factor, 0.95))
    months = np.where(early <= plan.watershed_months, early, plan.watershed_months + later)
    has_phone = rng.random(n) < 0.85
    wechat_share = np.array([cat.REGIONS[code].wechat_share for code in cat.REGION_CODES])
    contact = np.column_stack(
        [rng.random(n) < 0.82, has_phone, rng.random(n) < wechat_share[region], has_phone]
    )
    return _People(
        number=np.arange(first, first + n),
        joined=joined,
        stage=stage,
        channel=channel,
        city=city,
        script=script,
        owner=owner,
        rank=rank,
        rate=rate,
        dropout=dropout,
        usage=usage,
        favourite=favourite,
        wholesale=wholesale,
        first_buy=first_buy,
        interest_end=interest_end,
        member=member,
        member_start=member_start,
        member_end=member_start + months * MONTH_DAYS,
        contact=contact,
        opted_in=contact & (rng.random((n, 4)) < np.asarray(plan.opt_in_shares)),
    )


@dataclass(frozen=True, eq=False)
class _Purchases:
    """Orders sorted by customer then time, each customer's dropout moment, the complaints."""

    customer: np.ndarray
    time: np.ndarray
    status: np.ndarray  # index into kinds.ORDER_STATUSES
    offsets: np.ndarray  # customer i's orders are offsets[i]:offsets[i + 1]
    dropout: np.ndarray  # per customer: when they left, inf if still buying at the end
    complaint_customer: np.ndarray
    complaint_time: np.ndarray
    complaint_unresolved: np.ndarray
    complaint_order: np.ndarray  # index into the orders


def _simulate_purchases(world: _World, people: _People, rng: np.random.Generator) -> _Purchases:
    """Buy till you die, one round per purchase number over the buyers still buying."""
    plan, days = world.plan, world.days
    n = people.number.size
    who = np.flatnonzero(people.buyer)
    t, k = people.first_buy[who], np.ones(who.size, np.int64)
    early, scar = np.zeros(who.size, bool), np.ones(who.size)
    dropout = np.full(n, np.inf)
    none = (np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64))
    orders: list[tuple[np.ndarray, ...]] = [none]
    complaints: list[tuple[np.ndarray, ...]] = [(none[0], none[1], none[2] > 0, none[3])]
    while who.size:
        m = who.size
        u = rng.random(m)
        status = np.where(u < plan.refund_share, 1, 0)
        status[(u >= plan.refund_share) & (u < plan.refund_share + plan.cancel_share)] = 2
        orders.append((who, t, k, status))
        complaint_rate = plan.complaint_rate * np.where(
            status == 1, plan.refund_complaint_factor, 1
        )
        complaint = rng.random(m) < complaint_rate
        owned = people.owner[who] >= 0
        unresolved_share = np.where(owned, plan.owned_unresolved_share, plan.unresolved_share)
        unresolved = complaint & (rng.random(m) < unresolved_share)
        following = world.buy.advance(t, rng.standard_exponential(m) / people.rate[who])
        complained = t + np.minimum(rng.exponential(4.0, m), 0.8 * (following - t))
        p = people.dropout[who] * scar
        p = np.where(early & (k >= 2), p * plan.early_repeat_dropout_factor, p)
        p = np.where(k >= plan.loyal_purchases, p * plan.loyal_dropout_factor, p)
        membership = (people.member_start[who] <= t) & (t < people.member_end[who])
        p = np.where(membership, p * plan.member_dropout_factor, p)
        p = np.where(complaint & ~unresolved, p * plan.resolved_dropout_factor, p)
        p = np.where(unresolved, 1 - (1 - p) * (1 - plan.unresolved_dropout), p)
        drop = rng.random(m) < np.minimum(p, 0.98)
        seen = complaint & (complained <= days)
        complaints.append((who[seen], complained[seen], unresolved[seen], k[seen]))
        # They leave between this purchase (or the complaint) and the purchase that never comes.
        since = np.where(complaint, complained, t)[drop]
        dropout[who[drop]] = since + rng.random(since.size) * (following[drop] - since)
        go = ~drop & (following <= days)
        scar = np.where(unresolved, scar * plan.unresolved_after_factor, scar)[go]
        who, t, k, early = who[go], following[go], k[go] + 1, early[go]
        window = t - people.first_buy[who] <= plan.early_window_days
        early = np.where(k == 2, window, early)
    customer, time, _, status = (np.concatenate(part) for part in zip(*orders, strict=True))
    order = np.argsort(customer, kind="stable")  # rounds are in time order within a customer
    offsets = np.concatenate([[0], np.cumsum(np.bincount(customer, minlength=n))])
    c_customer, c_time, c_unresolved, c_number = (
        np.concatenate(part) for part in zip(*complaints, strict=True)
    )
    return _Purchases(
        customer=customer[order],
        time=time[order],
        status=status[order],
        offsets=offsets,
        dropout=dropout,
        complaint_customer=c_customer,
        complaint_time=c_time,
        complaint_unresolved=c_unresolved,
        complaint_order=offsets[c_customer] + c_number - 1,
    )


@dataclass(frozen=True, eq=False)
class _Members:
    customer: np.ndarray
    plan: np.ndarray  # index into catalogue.PLANS
    start: np.ndarray
    end: np.ndarray  # inf while running at as_of
    reason: np.ndarray  # index into catalogue.CANCELLATION_REASONS, -1 while running


def _finish_memberships(
    world: _World, people: _People, purchases: _Purchases, rng: np.random.Generator
) -> _Members:
    """Keep the memberships that start while the customer buys; most leavers then cancel."""
    plan, days = world.plan, world.days
    left = purchases.dropout
    who = np.flatnonzero(people.member & (people.member_start <= np.minimum(left, days)))
    start, end, gone, m = people.member_start[who], people.member_end[who], left[who], who.size
    follow = (end > gone) & (rng.random(m) < plan.follow_dropout_share)
    # A cancellation takes effect at the end of a paid month.
    months = np.maximum(np.ceil((gone - start + rng.exponential(45.0, m)) / MONTH_DAYS), 1)
    end = np.where(follow, np.minimum(end, start + months * MONTH_DAYS), end)
    reason = rng.choice(len(cat.CANCELLATION_REASONS), m, p=_norm((0.3, 0.25, 0.15, 0.1, 0.2)))
    reason = np.where(follow, rng.choice(3, m, p=(0.3, 0.4, 0.3)), reason)
    low_usage = people.usage[who] < 0.5 * plan.sessions_per_month
    reason = np.where(low_usage & (rng.random(m) < 0.5), 1, reason)  # not_using
    unresolved_at = np.full(people.number.size, np.inf)
    unresolved = purchases.complaint_unresolved
    np.minimum.at(
        unresolved_at,
        purchases.complaint_customer[unresolved],
        purchases.complaint_time[unresolved],
    )
    reason = np.where((unresolved_at[who] < end) & (rng.random(m) < 0.6), 3, reason)
    ended = end <= days
    plans = rng.choice(len(cat.PLANS), m, p=_norm([p[2] for p in cat.PLANS]))
    return _Members(who, plans, start, np.where(ended, end, np.inf), np.where(ended, reason, -1))


@dataclass(frozen=True, eq=False)
class _Chunk:
    """A chunk's simulated business, from which each kind's table is rendered."""

    world: _World
    people: _People
    purchases: _Purchases
    members: _Members
    ids: pa.Array  # the customers' external ids
    counters: dict[str, int]  # the last id number of each kind, running across chunks
    order_base: int  # orders numbered before this chunk

    def numbers(self, kind: str, count: int) -> np.ndarray:
        """The next ``count`` id numbers of ``kind``."""
        first = self.counters[kind] + 1
        self.counters[kind] += count
        return np.arange(first, first + count)


# ---- tables ----------------------------------------------------------------------------------


def _customers(c: _Chunk, rng: np.random.Generator) -> pa.Table:
    world, people = c.world, c.people
    n = people.number.size
    region = cat.CITY_REGIONS[people.city]
    name, email, phone, wechat = cat.identities(
        rng, people.number, region, people.script, people.contact
    )
    tags = (  # bits of catalogue.TAGS
        (people.buyer & (people.rank > 0.92)).astype(np.int64)
        | people.wholesale << 1
        | people.opted_in[:, 0] << 2  # newsletter: opted in to email
        | (people.buyer & (rng.random(n) < 0.08)) << 3
        | ((people.favourite == 0) & (rng.random(n) < 0.5)) << 4
    )
    sources = [cat.ACQUISITION_SOURCES.get(name, (name,)) for name in world.plan.channels]
    offsets = np.cumsum([0] + [len(group) for group in sources])
    spread = np.diff(offsets)[people.channel]
    source = offsets[people.channel] + (rng.random(n) * spread).astype(np.int64)
    age = 18 + 52 * rng.beta(2.0, 3.0, n)
    birthday = world.as_of_day - np.floor(age * 365.25).astype(np.int32)
    hint = rng.integers(0, len(cat.SEGMENT_HINTS), n)
    none = len(cat.INDUSTRIES)
    industry = np.where(rng.random(n) < 0.4, rng.integers(0, none, n), none)
    attributes = (hint * len(cat.SCRIPTS) + people.script) * (none + 1) + industry
    columns = {
        "external_id": c.ids,
        "name": name,
        "email": email,
        "phone": phone,
        "wechat": wechat,
        "stage": _take(kinds.STAGES, people.stage),
        "owner": _take(cat.STAFF, people.owner),
        "tags": pa.array(_TAG_TEXTS, pa.string()).take(tags),
        "acquisition_source": _take([s for group in sources for s in group], source),
        "acquisition_channel": _take(world.plan.channels, people.channel),
        "joined_at": world.timestamps(people.joined),
        "birthday": pa.array(birthday, pa.date32(), mask=rng.random(n) < 0.25),
        "city": _take(
            [city[0] for city in cat.CITIES], np.where(rng.random(n) < 0.03, -1, people.city)
        ),
        kinds.ATTRIBUTES: _take(_ATTRIBUTE_TEXTS, np.where(rng.random(n) < 0.7, attributes, -1)),
    }
    return _table(kinds.CUSTOMERS, columns)


_TAG_TEXTS = [
    ";".join(t for j, t in enumerate(cat.TAGS) if bits >> j & 1) or None for bits in range(32)
]
_ATTRIBUTE_TEXTS = [
    json.dumps({"segment_hint": hint, "language": language} | ({"industry": i} if i else {}))
    for hint in cat.SEGMENT_HINTS
    for language in cat.SCRIPTS
    for i in (*cat.INDUSTRIES, None)
]


def _orders(c: _Chunk, rng: np.random.Generator) -> pa.Table:
    world, people, purchases = c.world, c.people, c.purchases
    plan = world.plan
    count = purchases.customer.size
    numbers = c.numbers("orders", count)
    customer = purchases.customer
    lines = 1 + np.minimum(rng.poisson(plan.extra_lines_mean, count), 5)
    # The first line comes from the customer's favourite category, or from the whole catalogue.
    favourite = people.favourite[customer]
    low, high = world.category_bounds[favourite], world.category_bounds[favourite + 1]
    u = rng.random(count)
    in_favourite = rng.random(count) < plan.favourite_category_share
    first = world.product(np.where(in_favourite, low + u * (high - low), u))
    order = np.repeat(np.arange(count), lines)
    head = np.repeat(first, lines)
    # Later lines are the first line's companions (the affinities), or any product.
    pick = (rng.random(order.size)[:, None] >= world.partner_cum[head]).sum(axis=1)
    companion = world.partners[head, pick]
    affine = (companion >= 0) & (rng.random(order.size) < plan.affinity_share)
    product = np.where(affine, companion, world.product(rng.random(order.size)))
    product[np.cumsum(lines) - lines] = first
    # An order names each product once; its lines are then numbered 1, 2, ...
    _, keep = np.unique(order * world.price.size + product, return_index=True)
    keep.sort()
    order, product = order[keep], product[keep]
    starts = np.flatnonzero(np.r_[True, order[1:] != order[:-1]])
    line_no = np.arange(order.size) - np.repeat(starts, np.diff(np.r_[starts, order.size])) + 1
    consumable = world.consumable[product]
    quantity = 1 + np.where(consumable, rng.poisson(0.35, order.size), 0)
    bulk = people.wholesale[customer[order]] & consumable
    quantity = np.where(bulk, quantity * rng.integers(4, 13, order.size), quantity)
    festive = world.buy.is_festive(purchases.time)
    share = np.where(festive, plan.festival_discount_share, plan.discount_share)
    rate = np.where(rng.random(count) < share, rng.choice([0.05, 0.1, 0.15, 0.2], count), 0.0)
    discount = np.rint(world.price[product] * quantity * rate[order]).astype(np.int64)
    shares = [cat.ORDER_CHANNEL_SHARES.get(name, (0.5, 0.4, 0.05, 0.05)) for name in plan.channels]
    cum = np.cumsum(np.array(shares) / np.sum(shares, axis=1, keepdims=True), axis=1)
    channel = (rng.random(count)[:, None] >= cum[people.channel[customer]][:, :-1]).sum(axis=1)
    labels = {category.code: category.label for category in cat.CATEGORIES}
    columns = {
        "order_id": world.codes("O", numbers[order]),
        "customer_id": c.ids.take(customer[order]),
        "ordered_at": world.timestamps(purchases.time[order]),
        "status": _take(kinds.ORDER_STATUSES, purchases.status[order]),
        "channel": _take(cat.ORDER_CHANNELS, channel[order]),
        "line_no": pa.array(line_no, pa.int64()),
        "sku": _take([p.sku for p in cat.PRODUCTS], product),
        "product_name": _take([p.name for p in cat.PRODUCTS], product),
        "category": _take([labels[p.category] for p in cat.PRODUCTS], product),
        "quantity": _decimal(quantity * 10_000),
        "unit_price": _decimal(world.price[product] * 100),
        "discount": _decimal(discount * 100),
        "unit_cost": _decimal(world.cost[product] * 100),
    }
    return _table(kinds.ORDERS, columns)


def _subscriptions(c: _Chunk) -> pa.Table:
    members, m = c.members, c.members.customer.size
    amount = np.array([round(plan[1] * 10_000) for plan in cat.PLANS], np.int64)[members.plan]
    columns = {
        "subscription_id": c.world.codes("S", c.numbers("subscriptions", m)),
        "customer_id": c.ids.take(members.customer),
        "plan": _take([plan[0] for plan in cat.PLANS], members.plan),
        "amount": _decimal(amount),
        "period": _take(kinds.BILLING_PERIODS, np.zeros(m, np.int64)),  # monthly
        "started_at": c.world.timestamps(members.start),
        "ended_at": c.world.timestamps(members.end),
        "cancellation_reason": _take(cat.CANCELLATION_REASONS, members.reason),
    }
    return _table(kinds.SUBSCRIPTIONS, columns)


def _events(c: _Chunk, rng: np.random.Generator) -> pa.Table:
    world, people, members = c.world, c.people, c.members
    plan, days, n = world.plan, world.days, people.number.size
    leave = np.where(people.buyer, c.purchases.dropout, people.interest_end)
    low = world.browse.integral(people.joined)
    mass = np.maximum(world.browse.integral(np.minimum(leave, days)) - low, 0)
    who = np.repeat(np.arange(n), rng.poisson(people.usage / MONTH_DAYS * mass))
    start = world.browse.invert(low[who] + rng.random(who.size) * mass[who])
    start = np.maximum(start, people.joined[who])  # rounding must not move a visit before joining
    # Activity thins out over the decline_days before a customer leaves.
    fade = np.clip((leave[who] - start) / plan.decline_days, 0, 1)
    keep = rng.random(who.size) < plan.decline_floor + (1 - plan.decline_floor) * fade
    order = np.lexsort((start[keep], who[keep]))
    who, start = who[keep][order], start[keep][order]
    sessions = c.numbers("sessions", who.size)
    size = 1 + np.minimum(rng.poisson(plan.events_per_session - 1, who.size), 29)
    session = np.repeat(np.arange(who.size), size)
    opening = np.cumsum(size) - size
    e = session.size
    cum = np.cumsum(_norm(cat.PAGE_WEIGHTS))
    page = np.minimum(np.searchsorted(cum, rng.random(e), side="right"), cum.size - 1)
    at_home = np.zeros(e, bool)
    at_home[opening] = rng.random(opening.size) < 0.5  # many visits start at the home page
    page[at_home] = cat.PAGES.index("home")
    member_start, member_end = np.full(n, np.inf), np.full(n, np.inf)
    member_start[members.customer], member_end[members.customer] = members.start, members.end
    is_member = ((member_start[who] <= start) & (start < member_end[who]))[session]
    page[is_member & (rng.random(e) < 0.15)] = cat.PAGES.index("member-center")
    click = rng.random(e) < 0.3
    dwell = np.round(np.clip(rng.lognormal(np.log(25.0), 1.0, e), 1, 1800), 1)
    step = np.where(click, 2 + rng.exponential(6.0, e), dwell)  # seconds to the next event
    elapsed = np.cumsum(step) - step
    time = start[session] + (elapsed - elapsed[opening][session]) / 86_400
    kept = np.flatnonzero(time <= days)
    session, click = session[kept], click[kept]
    columns = {
        "event_id": world.codes("E", c.numbers("events", kept.size)),
        "customer_id": c.ids.take(who[session]),
        "occurred_at": world.timestamps(time[kept]),
        "session_id": world.codes("V", sessions[session]),
        "event_type": _take(cat.EVENT_TYPES, click.astype(np.int64)),
        "page": _take(cat.PAGES, page[kept]),
        "dwell_seconds": pa.array(dwell[kept], pa.float64(), mask=click),  # unknown for clicks
    }
    return _table(kinds.EVENTS, columns)


_KIND = {kind: i for i, kind in enumerate(kinds.INTERACTION_KINDS)}
_OUTCOME = {outcome: i for i, outcome in enumerate(cat.OUTCOMES)}
_INBOUND, _OUTBOUND = kinds.DIRECTIONS.index("inbound"), kinds.DIRECTIONS.index("outbound")
# What staff reach out about (catalogue.OUTREACH_TEXTS, then the win-back call) and how.
_OUTREACH_KINDS = np.array(
    [
        [_KIND[a], _KIND[b]]
        for a, b in (
            ("call", "call"),
            ("email", "wechat"),
            ("call", "wechat"),
            ("note", "note"),
            ("visit", "visit"),
            ("call", "email"),
            ("call", "call"),
        )
    ]
)


class _Rows:
    """Interaction rows from several sources, as parallel arrays of indices."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.parts: list[tuple[np.ndarray, ...]] = []

    def add(self, who: np.ndarray, time: np.ndarray, *codes: ArrayLike) -> None:
        """Rows for customers ``who`` at ``time``; then kind, direction, staff, text, outcome
        and order, each an index array or one index for all (the order defaults to none)."""
        columns = (who, time, *codes, *((-1,) if len(codes) == 5 else ()))
        self.parts.append(tuple(np.broadcast_to(np.asarray(x), who.shape) for x in columns))

    def pick(self, options: tuple[int, ...], size: int, p: tuple[float, ...]) -> np.ndarray:
        return np.asarray(options)[self.rng.choice(len(options), size, p=p)]

    def columns(self) -> tuple[np.ndarray, ...]:
        return tuple(np.concatenate(column) for column in zip(*self.parts, strict=True))


def _interactions(c: _Chunk, rng: np.random.Generator) -> pa.Table:
    world, people, purchases = c.world, c.people, c.purchases
    plan, days, n = world.plan, world.days, people.number.size
    # Who serves a customer: the owner, else any agent who speaks their language.
    anyone = np.where(people.script == 2, rng.integers(5, 8, n), rng.integers(0, 5, n))
    agent = np.where(people.owner >= 0, people.owner, anyone)
    rows = _Rows(rng)
    member = np.zeros(n, bool)
    member[c.members.customer] = True
    buyer = np.flatnonzero(people.buyer)
    until = np.minimum(purchases.dropout, days)
    # New customers get a check-in call from their owner.
    who = buyer[(people.owner[buyer] >= 0) & (rng.random(buyer.size) < 0.7)]
    time = people.first_buy[who] + 1 + 9 * rng.random(who.size)
    answered = rows.pick((_OUTCOME["answered"], _OUTCOME["no_answer"]), who.size, (0.8, 0.2))
    rows.add(who, time, _KIND["call"], _OUTBOUND, agent[who], cat.OUTREACH, answered)
    # Customers write in while they buy.
    span = np.maximum(until[buyer] - people.first_buy[buyer], 0) / 365.25
    who = np.repeat(buyer, rng.poisson(plan.service_contacts_per_year * span))
    kind = rows.pick(
        tuple(_KIND[k] for k in ("chat", "call", "email", "wechat")),
        who.size,
        (0.45, 0.25, 0.15, 0.15),
    )
    kind[(kind == _KIND["wechat"]) & ~people.contact[who, 2]] = _KIND["chat"]
    text = cat.SERVICE + rng.choice(
        len(cat.SERVICE_TEXTS), who.size, p=(0.25, 0.2, 0.15, 0.15, 0.15, 0.1)
    )
    time = people.first_buy[who] + rng.random(who.size) * (until[who] - people.first_buy[who])
    staff = np.where(rng.random(who.size) < 0.85, agent[who], -1)
    rows.add(who, time, kind, _INBOUND, staff, text, _OUTCOME["answered"])
    # Owners reach out to their customers, and try to win back those who stopped buying.
    owned = buyer[people.owner[buyer] >= 0]
    tenure = (days - people.joined[owned]) / 365.25
    who = np.repeat(owned, rng.poisson(plan.outreach_per_year * tenure))
    time = people.joined[who] + rng.random(who.size) * (days - people.joined[who])
    topic = rng.integers(1, len(cat.OUTREACH_TEXTS), who.size)  # offer, reorder, note, visit...
    topic[(topic == 5) & ~member[who]] = 2  # renewal reminders only for members
    win_back = time > purchases.dropout[who] + 30
    topic[win_back] = len(cat.OUTREACH_TEXTS)
    kind = _OUTREACH_KINDS[topic, rng.integers(0, 2, who.size)]
    direction = np.where(
        kind == _KIND["note"], -1, np.where(kind == _KIND["visit"], _INBOUND, _OUTBOUND)
    )
    outcome = np.where(kind == _KIND["call"], rows.pick((0, 1), who.size, (0.7, 0.3)), -1)
    reply = rows.pick(
        (_OUTCOME["no_answer"], _OUTCOME["interested"], _OUTCOME["declined"]),
        who.size,
        (0.4, 0.25, 0.35),
    )
    outcome = np.where(win_back, reply, outcome)
    text = np.where(win_back, cat.WIN_BACK, cat.OUTREACH + topic)
    rows.add(who, time, kind, direction, agent[who], text, outcome)
    # Complaints, each about an order; a resolved one is closed by a recovery call.
    who, time = purchases.complaint_customer, purchases.complaint_time
    unresolved, order = purchases.complaint_unresolved, purchases.complaint_order
    refunded = purchases.status[order] == kinds.ORDER_STATUSES.index("refunded")
    topic = np.where(refunded & (rng.random(who.size) < 0.6), 2, rng.integers(0, 6, who.size))
    topic[(topic == 3) & ~member[who]] = 0  # only members pay a fee twice
    outcome = np.where(unresolved, _OUTCOME["unresolved"], _OUTCOME["resolved"])
    staff = np.where(rng.random(who.size) < 0.9, agent[who], -1)
    rows.add(who, time, _KIND["complaint"], _INBOUND, staff, cat.COMPLAINT + topic, outcome, order)
    who, time = who[~unresolved], time[~unresolved] + 0.5 + 2.5 * rng.random((~unresolved).sum())
    rows.add(who, time, _KIND["call"], _OUTBOUND, agent[who], cat.RECOVERY, _OUTCOME["resolved"])
    # Prospects: the more intent, the more follow-up.
    prospects = np.flatnonzero(~people.buyer)
    who = np.repeat(prospects, rng.poisson(np.array([0.3, 0.8, 2.0, 0.0])[people.stage[prospects]]))
    kind = rows.pick((_KIND["call"], _KIND["wechat"], _KIND["visit"]), who.size, (0.6, 0.25, 0.15))
    time = people.joined[who] + rng.random(who.size) * np.minimum(90.0, days - people.joined[who])
    direction = np.where(kind == _KIND["visit"], _INBOUND, _OUTBOUND)
    outcome = rows.pick((4, 5, 1), who.size, (0.4, 0.3, 0.3))  # interested, callback, no answer
    rows.add(who, time, kind, direction, agent[who], cat.PROSPECT, outcome)

    who, time, kind, direction, staff, text, outcome, order = rows.columns()
    keep = np.flatnonzero(time <= days)
    keep = keep[np.lexsort((time[keep], who[keep]))]
    script = people.script[who[keep]]
    text = text[keep] * len(cat.SCRIPTS) + script
    order = order[keep]
    reference = _join(
        _take(cat.ORDER_REFERENCE, script), world.codes("O", c.order_base + order + 1)
    )
    body = cat.BODIES.take(text)
    columns = {
        "interaction_id": world.codes("I", c.numbers("interactions", keep.size)),
        "customer_id": c.ids.take(who[keep]),
        "occurred_at": world.timestamps(time[keep]),
        "kind": _take(kinds.INTERACTION_KINDS, kind[keep]),
        "direction": _take(kinds.DIRECTIONS, direction[keep]),
        "staff": _take(cat.STAFF, staff[keep]),
        "subject": cat.SUBJECTS.take(text),
        "body": pc.if_else(pa.array(order >= 0), _join(body, reference), body),
        "outcome": _take(cat.OUTCOMES, outcome[keep]),
    }
    return _table(kinds.INTERACTIONS, columns)


_SOURCES = ("unsubscribe_link", "customer_request", "preference_center")


def _consents(c: _Chunk, rng: np.random.Generator) -> pa.Table:
    world, people = c.world, c.people
    plan, days = world.plan, world.days
    who, channel = np.nonzero(people.contact)
    first = np.minimum(people.joined[who] + rng.random(who.size) * 600 / 86_400, days)
    opted = people.opted_in[who, channel]
    # Later changes: some opt out, more so around leaving; a few opt in after all.
    left = c.purchases.dropout[who]
    churned = left <= days
    share = np.where(opted, plan.opt_out_share + churned * plan.churn_opt_out_share, 0.05)
    change = np.flatnonzero((rng.random(who.size) < share) & (first + 1 < days))
    later = first + 1 + rng.random(who.size) * (days - first - 1)
    around = left + rng.normal(0, 20, who.size)
    later = np.clip(np.where(opted & churned, around, later), first + 1, days)[change]
    by_link = channel[change] <= 1  # email and sms carry an unsubscribe link
    later_source = np.where(opted[change], np.where(by_link, 0, 1), 2)
    sources = [cat.CONSENT_SOURCES.get(name, "signup_form") for name in plan.channels]
    source = np.concatenate([people.channel[who], len(sources) + later_source])
    who = np.concatenate([who, who[change]])
    order = np.lexsort((np.concatenate([first, later]), who))
    columns = {
        "customer_id": c.ids.take(who[order]),
        "channel": _take(kinds.CHANNELS, np.concatenate([channel, channel[change]])[order]),
        "opted_in": pa.array(np.concatenate([opted, ~opted[change]])[order]),
        "recorded_at": world.timestamps(np.concatenate([first, later])[order]),
        "source": _take(sources + list(_SOURCES), source[order]),
    }
    return _table(kinds.CONSENTS, columns)


# ---- Arrow helpers ---------------------------------------------------------------------------


def _table(kind: kinds.Kind, columns: dict[str, pa.Array]) -> pa.Table:
    schema = kinds.arrow_schema(kind)
    if kind.allows_attributes:
        schema = schema.append(pa.field(kinds.ATTRIBUTES, pa.string()))
    return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)


def _take(values: tuple[str, ...] | list[str | None], index: np.ndarray) -> pa.Array:
    """``values[index]`` as a string column; negative indices are nulls."""
    index = np.asarray(index, np.int64)
    return pa.array(list(values), pa.string()).take(pa.array(index, mask=index < 0))


def _join(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _decimal(units: np.ndarray) -> pa.Array:
    """decimal128(18, 4) from integers counting ten-thousandths, built from its 16-byte words."""
    units = np.asarray(units, np.int64)
    words = np.empty((units.size, 2), np.int64)
    words[:, 0], words[:, 1] = units, -(units < 0).astype(np.int64)
    return pa.Array.from_buffers(pa.decimal128(18, 4), units.size, [None, pa.py_buffer(words)])


def _codes(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """``prefix`` + zero-padded ``numbers``, written straight into an Arrow string buffer."""
    numbers = np.asarray(numbers, np.int64)
    if numbers.size and numbers.max() >= 10**width:
        width = len(str(numbers.max()))
    head = np.frombuffer(prefix.encode(), np.uint8)
    size = head.size + width
    out = np.empty((numbers.size, size), np.uint8)
    out[:, : head.size] = head
    rest = numbers.astype(np.uint64)
    for column in range(size - 1, head.size - 1, -1):
        quotient = rest // 10
        out[:, column] = rest - quotient * 10 + 48
        rest = quotient
    offsets = np.arange(0, (numbers.size + 1) * size, size, dtype=np.int32)
    return pa.StringArray.from_buffers(numbers.size, pa.py_buffer(offsets), pa.py_buffer(out))
