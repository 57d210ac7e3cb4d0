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
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from scipy import special

from loyal.demo import catalogue as cat
from loyal.demo.tables import (
    MONTH_DAYS,
    Chunk,
    codes,
    consents_table,
    customers_table,
    events_table,
    interactions_table,
    norm,
    orders_table,
    subscriptions_table,
)

DEFAULT_AS_OF = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


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
        return codes(prefix, numbers, self.widths[prefix])


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
    c = Chunk(world, people, purchases, members, ids, counters, counters["orders"])
    yield "customers", customers_table(c, rng(_IDENTITY))
    steps = {
        "orders": lambda: orders_table(c, rng(_ORDERS)),
        "subscriptions": lambda: subscriptions_table(c),
        "events": lambda: events_table(c, rng(_EVENTS)),
        "interactions": lambda: interactions_table(c, rng(_INTERACTIONS)),
        "consents": lambda: consents_table(c, rng(_CONSENTS)),
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


def _draw_people(world: _World, rng: np.random.Generator, first: int, n: int) -> _People:
    plan, days = world.plan, world.days
    growth = plan.acquisition_growth
    u = rng.random(n)
    # Acquisition grows exponentially over the window: invert its cumulative distribution.
    joined = days * (np.log1p(u * (growth - 1)) / np.log(growth) if growth != 1 else u)
    buyer = rng.random(n) >= plan.prospect_share
    stage = np.where(buyer, 3, rng.choice(3, n, p=norm(plan.prospect_stage_shares)))
    channel = rng.choice(len(plan.channels), n, p=norm(plan.channel_shares))
    city = rng.choice(len(cat.CITIES), n, p=norm([c[1] for c in cat.CITIES]))
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
    favourite = rng.choice(category_share.size, n, p=norm(category_share))
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
    reason = rng.choice(len(cat.CANCELLATION_REASONS), m, p=norm((0.3, 0.25, 0.15, 0.1, 0.2)))
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
    plans = rng.choice(len(cat.PLANS), m, p=norm([p[2] for p in cat.PLANS]))
    return _Members(who, plans, start, np.where(ended, end, np.inf), np.where(ended, reason, -1))
