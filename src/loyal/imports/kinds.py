"""The kinds of file Loyal imports and their canonical columns.

This module is the contract between every way records come in (users' CSV and Excel files, the
demo store, later the API's bulk endpoints) and the loader that writes them. A file's columns are
mapped onto these names (``--map 客户编号=external_id``); values are parsed to the column's type;
anything else is an error that names file, row, column, value and rule.

Columns whose name starts with ``attr.`` (customers only) are kept as free attributes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pyarrow as pa
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _


class ColumnType(StrEnum):
    TEXT = "text"
    INTEGER = "integer"
    DECIMAL = "decimal"  # money and quantities: parsed exactly, stored as decimal
    NUMBER = "number"  # measurements such as dwell seconds: parsed as float
    DATE = "date"
    DATETIME = "datetime"  # a date alone means midnight in the import's time zone
    BOOLEAN = "boolean"  # true/false, yes/no, 1/0, y/n, 是/否
    CHOICE = "choice"  # one of Column.choices (English code or its Chinese label)


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    required: bool = False
    help: str | Promise = ""  # translated: str() it in the active language
    choices: tuple[str, ...] = ()
    # Extra spellings accepted for a choice, e.g. {"流失": "churned"}.
    choice_aliases: tuple[tuple[str, str], ...] = ()
    minimum: float | None = None  # for numbers: the smallest allowed value
    max_length: int | None = None  # for text


@dataclass(frozen=True)
class Kind:
    name: str
    help: str | Promise
    columns: tuple[Column, ...]
    # Columns that together identify a row: importing a row with the same key updates it.
    key: tuple[str, ...]
    allows_attributes: bool = False

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns if column.required)


STAGES = ("prospect", "potential_intent", "intent", "customer", "at_risk", "churned", "won_back")
STAGE_ALIASES = (
    ("潜在客户", "prospect"),
    ("潛在客戶", "prospect"),
    ("潜在意向客户", "potential_intent"),
    ("潛在意向客戶", "potential_intent"),
    ("意向客户", "intent"),
    ("意向客戶", "intent"),
    ("现有客户", "customer"),
    ("現有客戶", "customer"),
    ("流失风险", "at_risk"),
    ("流失風險", "at_risk"),
    ("流失", "churned"),
    ("赢回", "won_back"),
    ("贏回", "won_back"),
)
ORDER_STATUSES = ("paid", "refunded", "cancelled")
ORDER_STATUS_ALIASES = (
    ("已付款", "paid"),
    ("已支付", "paid"),
    ("已退款", "refunded"),
    ("已取消", "cancelled"),
    ("canceled", "cancelled"),
)
BILLING_PERIODS = ("month", "quarter", "year")
BILLING_PERIOD_ALIASES = (
    ("月", "month"),
    ("季", "quarter"),
    ("年", "year"),
    ("monthly", "month"),
    ("quarterly", "quarter"),
    ("yearly", "year"),
    ("annual", "year"),
)
INTERACTION_KINDS = ("call", "email", "chat", "visit", "note", "complaint", "sms", "wechat")
INTERACTION_KIND_ALIASES = (
    ("电话", "call"),
    ("電話", "call"),
    ("邮件", "email"),
    ("郵件", "email"),
    ("聊天", "chat"),
    ("拜访", "visit"),
    ("拜訪", "visit"),
    ("备注", "note"),
    ("備註", "note"),
    ("投诉", "complaint"),
    ("投訴", "complaint"),
    ("短信", "sms"),
    ("微信", "wechat"),
)
DIRECTIONS = ("inbound", "outbound")
DIRECTION_ALIASES = (
    ("呼入", "inbound"),
    ("呼出", "outbound"),
    ("in", "inbound"),
    ("out", "outbound"),
)
CHANNELS = ("email", "sms", "wechat", "phone")
CHANNEL_ALIASES = (
    ("邮件", "email"),
    ("郵件", "email"),
    ("短信", "sms"),
    ("微信", "wechat"),
    ("电话", "phone"),
    ("電話", "phone"),
)

_T = ColumnType

CUSTOMERS = Kind(
    name="customers",
    help=_("One row per customer or prospect."),
    key=("external_id",),
    allows_attributes=True,
    columns=(
        Column(
            "external_id",
            _T.TEXT,
            required=True,
            max_length=100,
            help=_("The customer's id in your system; unique within the import source."),
        ),
        Column("name", _T.TEXT, max_length=200, help=_("Full name; Chinese names welcome.")),
        Column("email", _T.TEXT, max_length=254),
        Column("phone", _T.TEXT, max_length=50),
        Column("wechat", _T.TEXT, max_length=100),
        Column(
            "stage",
            _T.CHOICE,
            choices=STAGES,
            choice_aliases=STAGE_ALIASES,
            help=_("Lifecycle stage; a change is kept in the stage history."),
        ),
        Column(
            "owner",
            _T.TEXT,
            max_length=150,
            help=_("Username of the staff member who owns the customer."),
        ),
        Column("tags", _T.TEXT, help=_("Tags separated by ';' or ','.")),
        Column(
            "acquisition_source",
            _T.TEXT,
            max_length=100,
            help=_("Where the customer came from, e.g. a campaign."),
        ),
        Column(
            "acquisition_channel",
            _T.TEXT,
            max_length=100,
            help=_("e.g. web, store, referral, ads."),
        ),
        Column("joined_at", _T.DATETIME, help=_("First contact; defaults to the import time.")),
        Column("birthday", _T.DATE),
        Column("city", _T.TEXT, max_length=100),
    ),
)

ORDERS = Kind(
    name="orders",
    help=_("One row per order line; the order's fields repeat on each of its lines."),
    key=("order_id", "line_no"),
    columns=(
        Column("order_id", _T.TEXT, required=True, max_length=100),
        Column(
            "customer_id",
            _T.TEXT,
            required=True,
            max_length=100,
            help=_("The customer's external_id; unknown customers are created."),
        ),
        Column("ordered_at", _T.DATETIME, required=True),
        Column(
            "status",
            _T.CHOICE,
            choices=ORDER_STATUSES,
            choice_aliases=ORDER_STATUS_ALIASES,
            help=_("paid (default), refunded or cancelled."),
        ),
        Column("channel", _T.TEXT, max_length=100, help=_("Sales channel, e.g. web, store, app.")),
        Column(
            "line_no",
            _T.INTEGER,
            minimum=1,
            help=_("Line number within the order; defaults to the line's position in the file."),
        ),
        Column(
            "sku",
            _T.TEXT,
            required=True,
            max_length=100,
            help=_("Product code; unknown products are created."),
        ),
        Column("product_name", _T.TEXT, max_length=200),
        Column("category", _T.TEXT, max_length=100),
        Column("quantity", _T.DECIMAL, minimum=0, help=_("Defaults to 1.")),
        Column("unit_price", _T.DECIMAL, required=True, minimum=0),
        Column(
            "discount", _T.DECIMAL, minimum=0, help=_("Amount taken off the line; defaults to 0.")
        ),
        Column("unit_cost", _T.DECIMAL, minimum=0, help=_("Cost of one unit, so margin is known.")),
    ),
)

SUBSCRIPTIONS = Kind(
    name="subscriptions",
    help=_("One row per subscription, membership or card."),
    key=("subscription_id",),
    columns=(
        Column("subscription_id", _T.TEXT, required=True, max_length=100),
        Column("customer_id", _T.TEXT, required=True, max_length=100),
        Column("plan", _T.TEXT, required=True, max_length=100),
        Column(
            "amount",
            _T.DECIMAL,
            required=True,
            minimum=0,
            help=_("Recurring amount per billing period."),
        ),
        Column(
            "period",
            _T.CHOICE,
            choices=BILLING_PERIODS,
            choice_aliases=BILLING_PERIOD_ALIASES,
            help=_("Billing period: month (default), quarter or year."),
        ),
        Column("started_at", _T.DATETIME, required=True),
        Column("ended_at", _T.DATETIME, help=_("Empty while the subscription runs.")),
        Column("cancellation_reason", _T.TEXT, max_length=200),
    ),
)

EVENTS = Kind(
    name="events",
    help=_("One row per behaviour event (page view, click, ...) on your site or app."),
    key=("event_id",),
    columns=(
        Column(
            "event_id",
            _T.TEXT,
            max_length=100,
            help=_("Your event id; without one, identical rows count as one event."),
        ),
        Column("customer_id", _T.TEXT, required=True, max_length=100),
        Column("occurred_at", _T.DATETIME, required=True),
        Column("session_id", _T.TEXT, max_length=100),
        Column(
            "event_type", _T.TEXT, max_length=50, help=_("view (default), click, or your own type.")
        ),
        Column("page", _T.TEXT, max_length=200, help=_("Page or module.")),
        Column("dwell_seconds", _T.NUMBER, minimum=0),
    ),
)

INTERACTIONS = Kind(
    name="interactions",
    help=_("One row per call, email, chat, visit, note or complaint."),
    key=("interaction_id",),
    columns=(
        Column(
            "interaction_id",
            _T.TEXT,
            max_length=100,
            help=_("Your id; without one, identical rows count as one interaction."),
        ),
        Column("customer_id", _T.TEXT, required=True, max_length=100),
        Column("occurred_at", _T.DATETIME, required=True),
        Column(
            "kind",
            _T.CHOICE,
            required=True,
            choices=INTERACTION_KINDS,
            choice_aliases=INTERACTION_KIND_ALIASES,
        ),
        Column("direction", _T.CHOICE, choices=DIRECTIONS, choice_aliases=DIRECTION_ALIASES),
        Column("staff", _T.TEXT, max_length=150, help=_("Username of the staff member.")),
        Column("subject", _T.TEXT, max_length=200),
        Column("body", _T.TEXT, help=_("The full text; kept without expiry and searchable.")),
        Column(
            "outcome",
            _T.TEXT,
            max_length=50,
            help=_("e.g. resolved, unresolved, converted, no_answer."),
        ),
    ),
)

CONSENTS = Kind(
    name="consents",
    help=_("One row per opt-in or opt-out of a channel."),
    key=("customer_id", "channel", "recorded_at"),
    columns=(
        Column("customer_id", _T.TEXT, required=True, max_length=100),
        Column(
            "channel", _T.CHOICE, required=True, choices=CHANNELS, choice_aliases=CHANNEL_ALIASES
        ),
        Column("opted_in", _T.BOOLEAN, required=True),
        Column("recorded_at", _T.DATETIME, required=True),
        Column(
            "source", _T.TEXT, max_length=100, help=_("Where the consent was given, e.g. web form.")
        ),
    ),
)

KINDS: dict[str, Kind] = {
    kind.name: kind for kind in (CUSTOMERS, ORDERS, SUBSCRIPTIONS, EVENTS, INTERACTIONS, CONSENTS)
}


# How each column type is held in Arrow once parsed: readers and the demo produce these, the loader
# consumes them. A parsed table also carries "row_number" (int64: the row as a spreadsheet shows it,
# the header being row 1) and, for customers, "attributes" (a JSON object as text) when present.
ARROW_TYPES: dict[ColumnType, pa.DataType] = {
    ColumnType.TEXT: pa.string(),
    ColumnType.INTEGER: pa.int64(),
    ColumnType.DECIMAL: pa.decimal128(18, 4),
    ColumnType.NUMBER: pa.float64(),
    ColumnType.DATE: pa.date32(),
    ColumnType.DATETIME: pa.timestamp("us", tz="UTC"),
    ColumnType.BOOLEAN: pa.bool_(),
    ColumnType.CHOICE: pa.string(),
}
ROW_NUMBER = "row_number"
ATTRIBUTES = "attributes"


def arrow_field(column: Column) -> pa.Field:
    return pa.field(column.name, ARROW_TYPES[column.type])


def arrow_schema(kind: Kind) -> pa.Schema:
    """The full parsed schema of ``kind`` (every canonical column, in order)."""
    return pa.schema([arrow_field(column) for column in kind.columns])
