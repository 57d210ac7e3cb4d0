"""User-defined segments (R14): a small, safe rule language as data, compiled to Ibis filters.

A rule is JSON-able data, never code::

    {"all": [{"field": "rfm_segment", "op": "in", "value": ["at_risk", "cant_lose"]},
             {"field": "city", "op": "=", "value": "上海"},
             {"not": {"field": "abc_class", "op": "=", "value": "C"}}]}

- groups: ``{"all": [rule, ...]}`` (and), ``{"any": [rule, ...]}`` (or), ``{"not": rule}``;
- leaves: ``{"field": column, "op": op, "value": v}`` with op one of ``=, !=, <, <=, >, >=``
  (v a scalar), ``in, not_in`` (v a non-empty list), ``between`` (v = [low, high], both
  inclusive), ``contains`` (text columns, v a substring), ``is_null, not_null`` (no value).

Leaves are two-valued: a missing (null) value satisfies only ``is_null``, ``!=``, ``not_in`` and
the ``not`` of another leaf, so ``not`` always means "every other customer". Dates and times are
written as ISO strings ("2024-06-01"; times without a zone are UTC).

Rules are validated against the columns of the per-customer table before anything runs; a
``RuleError`` says where (``all[1].value``) and what is wrong.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import ibis
import ibis.expr.datatypes as dt_
import ibis.expr.types as ir

from loyal.engine.common import utc

COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")
OPS = (*COMPARISONS, "in", "not_in", "between", "contains", "is_null", "not_null")
_NO_VALUE = ("is_null", "not_null")


def gettext_noop(message: str) -> str:
    """Marks a message for translation (makemessages finds it by this name; the engine does not
    import Django): the records' side shows ``RuleError`` in the user's language."""
    return message


class RuleError(ValueError):
    """A segment rule is malformed; ``path`` locates the offending part (e.g. ``all[1].op``).

    ``template`` is the English message with ``{name}`` placeholders filled from ``params``, so
    that it can be translated before it is filled.
    """

    def __init__(self, path: str, template: str, **params: Any) -> None:
        self.path = path
        self.template = template
        self.params = params
        super().__init__(f"{path}: {self.message}")

    @property
    def message(self) -> str:
        return self.template.format(**self.params)


def validate_rule(rule: Any, schema: ibis.Schema) -> None:
    """Raise ``RuleError`` unless ``rule`` is well-formed for a table with ``schema``."""
    _check(rule, schema, "rule")


def _check(rule: Any, schema: ibis.Schema, path: str) -> None:
    if not isinstance(rule, Mapping):
        raise RuleError(
            path,
            gettext_noop("a rule must be an object, got {kind} {rule}"),
            kind=type(rule).__name__,
            rule=repr(rule),
        )
    groups = [key for key in ("all", "any", "not") if key in rule]
    if groups:
        key = groups[0]
        if len(rule) != 1:
            raise RuleError(
                path,
                gettext_noop("a group has exactly one key ('all', 'any' or 'not'), got {keys}"),
                keys=sorted(rule),
            )
        if key == "not":
            _check(rule["not"], schema, f"{path}.not")
            return
        items = rule[key]
        if not isinstance(items, Sequence) or isinstance(items, str) or not items:
            raise RuleError(
                f"{path}.{key}",
                gettext_noop("must be a non-empty list of rules, got {items}"),
                items=repr(items),
            )
        for i, item in enumerate(items):
            _check(item, schema, f"{path}.{key}[{i}]")
        return
    unknown = set(rule) - {"field", "op", "value"}
    if unknown or "field" not in rule or "op" not in rule:
        raise RuleError(
            path,
            gettext_noop(
                "a condition is {{'field': ..., 'op': ..., 'value': ...}} and a group is "
                "{{'all'|'any'|'not': ...}}; got keys {keys}"
            ),
            keys=sorted(rule),
        )
    field, op = rule["field"], rule["op"]
    if field not in schema:
        raise RuleError(
            f"{path}.field",
            gettext_noop("unknown field {field}; available fields: {fields}"),
            field=repr(field),
            fields=", ".join(sorted(schema)),
        )
    if op not in OPS:
        raise RuleError(
            f"{path}.op",
            gettext_noop("unknown op {op}; use one of {ops}"),
            op=repr(op),
            ops=", ".join(OPS),
        )
    dtype = schema[field]
    if op in _NO_VALUE:
        if "value" in rule:
            raise RuleError(
                f"{path}.value",
                gettext_noop("op {op} takes no value, got {value}"),
                op=repr(op),
                value=repr(rule["value"]),
            )
        return
    if "value" not in rule:
        raise RuleError(f"{path}.value", gettext_noop("op {op} needs a value"), op=repr(op))
    value = rule["value"]
    vpath = f"{path}.value"
    if op == "contains":
        if not dtype.is_string():
            raise RuleError(
                f"{path}.op",
                gettext_noop("'contains' needs a text field; {field} is {dtype}"),
                field=repr(field),
                dtype=str(dtype),
            )
        if not isinstance(value, str):
            raise RuleError(
                vpath, gettext_noop("'contains' needs a text value, got {value}"), value=repr(value)
            )
        return
    if op in ("in", "not_in"):
        if not isinstance(value, Sequence) or isinstance(value, str) or not value:
            raise RuleError(
                vpath,
                gettext_noop("{op} needs a non-empty list, got {value}"),
                op=repr(op),
                value=repr(value),
            )
        for i, item in enumerate(value):
            _literal(item, dtype, field, f"{vpath}[{i}]")
        return
    if op == "between":
        if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
            raise RuleError(
                vpath, gettext_noop("'between' needs [low, high], got {value}"), value=repr(value)
            )
        low = _literal(value[0], dtype, field, f"{vpath}[0]")
        high = _literal(value[1], dtype, field, f"{vpath}[1]")
        if low > high:
            raise RuleError(
                vpath,
                gettext_noop("low {low} is above high {high}"),
                low=repr(value[0]),
                high=repr(value[1]),
            )
        return
    if op not in ("=", "!=") and dtype.is_boolean():
        raise RuleError(
            f"{path}.op",
            gettext_noop("{op} does not apply to the yes/no field {field}"),
            op=repr(op),
            field=repr(field),
        )
    _literal(value, dtype, field, vpath)


def _literal(value: Any, dtype: dt_.DataType, field: str, path: str) -> Any:
    """The Python value to compare column ``field`` of type ``dtype`` with."""
    if value is None:
        raise RuleError(path, gettext_noop("null is not a value; use op 'is_null' or 'not_null'"))
    bad = RuleError(
        path,
        gettext_noop("{value} is not a valid value for {field} ({dtype})"),
        value=repr(value),
        field=repr(field),
        dtype=str(dtype),
    )
    if dtype.is_boolean():
        if not isinstance(value, bool):
            raise bad
        return value
    if dtype.is_numeric():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad
        return value
    if dtype.is_string():
        if not isinstance(value, str):
            raise bad
        return value
    if dtype.is_date() or dtype.is_timestamp():
        parsed: dt.date
        try:
            if isinstance(value, dt.date):  # datetimes are dates too
                parsed = value
            elif isinstance(value, str):
                parsed = dt.datetime.fromisoformat(value)
            else:
                raise bad
        except ValueError as error:
            raise RuleError(
                path,
                gettext_noop("{value} is not an ISO date or time: {error}"),
                value=repr(value),
                error=str(error),
            ) from None
        if dtype.is_date():
            return parsed.date() if isinstance(parsed, dt.datetime) else parsed
        if not isinstance(parsed, dt.datetime):
            parsed = dt.datetime(parsed.year, parsed.month, parsed.day, tzinfo=dt.UTC)
        elif parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return utc(parsed, "value")
    raise RuleError(
        path,
        gettext_noop("field {field} of type {dtype} cannot be used in rules"),
        field=repr(field),
        dtype=str(dtype),
    )


def compile_rule(rule: Any, table: ir.Table) -> ir.BooleanValue:
    """The boolean Ibis expression of ``rule`` over ``table`` (validated first)."""
    schema = table.schema()
    validate_rule(rule, schema)
    return _compile(rule, table, schema)


def _compile(rule: Mapping[str, Any], table: ir.Table, schema: ibis.Schema) -> ir.BooleanValue:
    if "all" in rule or "any" in rule:
        parts = [_compile(item, table, schema) for item in rule.get("all", rule.get("any"))]
        out = parts[0]
        for part in parts[1:]:
            out = (out & part) if "all" in rule else (out | part)
        return out
    if "not" in rule:
        return ~_compile(rule["not"], table, schema)
    col, op, dtype = table[rule["field"]], rule["op"], schema[rule["field"]]
    if op == "is_null":
        return col.isnull()
    if op == "not_null":
        return col.notnull()
    value = rule["value"]
    if op in ("in", "not_in"):
        values = [_literal(v, dtype, rule["field"], "") for v in value]
        hit = col.isin(values).fill_null(False)
        return hit if op == "in" else ~hit
    if op == "between":
        low, high = (_literal(v, dtype, rule["field"], "") for v in value)
        return col.between(low, high).fill_null(False)
    if op == "contains":
        return col.contains(value).fill_null(False)
    v = _literal(value, dtype, rule["field"], "")
    if op == "!=":
        return ~(col == v).fill_null(False)
    cond = {"=": col == v, "<": col < v, "<=": col <= v, ">": col > v, ">=": col >= v}[op]
    return cond.fill_null(False)


def segment_members(table: ir.Table, rule: Any) -> ir.Table:
    """The rows (customers) of ``table`` that satisfy ``rule``."""
    return table.filter(compile_rule(rule, table))


def segment_counts(table: ir.Table, rules: Mapping[str, Any]) -> ir.Table:
    """One row per named rule: segment, members (customers satisfying it), customers (all)."""
    if not rules:
        raise ValueError("no segment rules given")
    schema = table.schema()
    for name, rule in rules.items():
        try:
            validate_rule(rule, schema)
        except RuleError as error:
            raise RuleError(
                f"segment {name!r}: {error.path}", error.template, **error.params
            ) from None
    parts = [
        table.aggregate(
            segment=ibis.literal(name),
            members=ibis.cases((_compile(rule, table, schema), 1), else_=0).sum().cast("int64"),
            customers=table.count(),
        )
        for name, rule in rules.items()
    ]
    return parts[0].union(*parts[1:], distinct=False) if len(parts) > 1 else parts[0]


def segment_counts_over_time(
    build: Callable[[dt.datetime], ir.Table],
    rules: Mapping[str, Any],
    as_of_dates: Iterable[dt.datetime],
) -> ir.Table:
    """Member counts of each segment at several dates: as_of, segment, members, customers.

    ``build(as_of)`` returns the per-customer table as of that date (e.g.
    ``lambda d: run.customer_table(sources, d, settings)``), so scores and stages are those the
    customers had then.
    """
    parts = []
    for as_of in as_of_dates:
        counts = segment_counts(build(utc(as_of)), rules)
        parts.append(counts.mutate(as_of=ibis.literal(utc(as_of).date())))
    if not parts:
        raise ValueError("as_of_dates is empty")
    out = parts[0].union(*parts[1:], distinct=False) if len(parts) > 1 else parts[0]
    return out.select("as_of", "segment", "members", "customers").order_by(["as_of", "segment"])
