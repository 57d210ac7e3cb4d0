"""The demo store's tables: each kind rendered from a chunk's simulated business.

:mod:`loyal.demo.generator` simulates the people, their purchases and memberships; this module
turns one chunk of that simulation into import-ready Arrow tables, one kind at a time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import ArrayLike

from loyal.demo import catalogue as cat
from loyal.imports import kinds

MONTH_DAYS = 365.25 / 12

if TYPE_CHECKING:
    from loyal.demo.generator import _Members, _People, _Purchases, _World


@dataclass(frozen=True, eq=False)
class Chunk:
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


def customers_table(c: Chunk, rng: np.random.Generator) -> pa.Table:
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


def orders_table(c: Chunk, rng: np.random.Generator) -> pa.Table:
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


def subscriptions_table(c: Chunk) -> pa.Table:
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


def events_table(c: Chunk, rng: np.random.Generator) -> pa.Table:
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
    cum = np.cumsum(norm(cat.PAGE_WEIGHTS))
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


def interactions_table(c: Chunk, rng: np.random.Generator) -> pa.Table:
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


def consents_table(c: Chunk, rng: np.random.Generator) -> pa.Table:
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


def codes(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
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


def norm(weights: tuple[float, ...] | np.ndarray) -> np.ndarray:
    weights = np.asarray(weights, dtype=float)
    return weights / weights.sum()
