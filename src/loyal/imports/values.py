"""Turning one column of raw text into its Arrow type, naming every value that does not fit.

Speed comes from trying a vectorised Arrow conversion first (it succeeds on clean, ISO-formatted
columns, the common case) and only falling back to Python for the values Arrow refuses, parsed once
per distinct value: dates, prices and codes repeat a lot, so the fallback stays cheap. The Python
side is also the source of every message about a bad value.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import timezone as fixed_timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from django.utils.translation import gettext as _

from loyal.imports.kinds import ARROW_TYPES, Column, ColumnType

_DECIMAL_TYPE = ARROW_TYPES[ColumnType.DECIMAL]
_TIMESTAMP_TYPE = ARROW_TYPES[ColumnType.DATETIME]
_DECIMAL_PLACES = _DECIMAL_TYPE.scale
_DECIMAL_QUANTUM = Decimal(1).scaleb(-_DECIMAL_PLACES)
_DECIMAL_LIMIT = Decimal(10) ** (_DECIMAL_TYPE.precision - _DECIMAL_TYPE.scale)
_SHOWN_CHARACTERS = 80  # longer values are cut in messages so one error stays one line


# --- Single values, in Python (the fallback and the source of every message) -------------------


class _BadValue(Exception):
    """A value that does not fit its column; the message is user-facing."""


def _show(value: str) -> str:
    return value if len(value) <= _SHOWN_CHARACTERS else value[: _SHOWN_CHARACTERS - 1] + "…"


def _normalized(text: str) -> str:
    # NFKC turns full-width digits, letters and signs (１２３, ￥, ：) into their ASCII forms.
    return text.strip() if text.isascii() else unicodedata.normalize("NFKC", text).strip()


_NUMBER_RE = re.compile(
    r"(?P<sign>[+-])?\s*[¥$€£]?\s*(?P<sign2>[+-])?\s*"
    r"(?P<digits>[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]*)?|[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?P<exponent>[eE][+-]?[0-9]+)?\s*元?"
)


def _number_text(text: str) -> str | None:
    """Plain number text from what people type: "¥1,234.50", "-$3", "１２元"; None if none."""
    match = _NUMBER_RE.fullmatch(_normalized(text))
    if match is None or (match["sign"] and match["sign2"]):
        return None
    sign = match["sign"] or match["sign2"] or ""
    return sign + match["digits"].replace(",", "") + (match["exponent"] or "")


def _not_a_number(text: str) -> _BadValue:
    return _BadValue(
        _('"{value}" is not a number (expected e.g. 12.50, 1,234.50 or ¥12.50)').format(
            value=_show(text)
        )
    )


def _too_large(text: str) -> _BadValue:
    return _BadValue(_('"{value}" is too large').format(value=_show(text)))


def _one_decimal(text: str) -> Decimal:
    number = _number_text(text)
    if number is None:
        raise _not_a_number(text)
    value = Decimal(number)
    if value.adjusted() >= _DECIMAL_TYPE.precision - _DECIMAL_PLACES:
        raise _too_large(text)
    rounded = value.quantize(_DECIMAL_QUANTUM)
    if rounded != value:
        raise _BadValue(
            _('"{value}" has more than {places} decimal places; round it to {places}').format(
                value=_show(text), places=_DECIMAL_PLACES
            )
        )
    return rounded


def _one_integer(text: str) -> int:
    number = _number_text(text)
    value = Decimal(number) if number is not None else None
    if value is None or value != value.to_integral_value():
        raise _BadValue(
            _('"{value}" is not a whole number (expected e.g. 3)').format(value=_show(text))
        )
    if value.adjusted() > 17:  # keeps clear of int64's limit before converting
        raise _too_large(text)
    return int(value)


def _one_number(text: str) -> float:
    number = _number_text(text)
    if number is None:
        raise _not_a_number(text)
    value = float(number)
    if not math.isfinite(value):
        raise _too_large(text)
    return value


_DATE_TIME_RE = re.compile(
    r"""
    (?:
        (?P<y>[0-9]{4})[-/.](?P<m>[0-9]{1,2})[-/.](?P<d>[0-9]{1,2})
      | (?P<cy>[0-9]{4})\s*年\s*(?P<cm>[0-9]{1,2})\s*月\s*(?P<cd>[0-9]{1,2})\s*[日号號]?
      | (?P<ky>[0-9]{4})(?P<km>[0-9]{2})(?P<kd>[0-9]{2})
    )
    (?:
        (?:\s*T\s*|\s+|(?<=[日号號]))
        (?P<H>[0-9]{1,2})
        (?:
            :(?P<M>[0-9]{2})(?::(?P<S>[0-9]{2})(?:[.,](?P<f>[0-9]{1,9}))?)?
          | \s*[时時点點]\s*(?:(?P<cM>[0-9]{1,2})\s*分?\s*(?:(?P<cS>[0-9]{1,2})\s*秒)?)?
        )
    )?
    \s*(?P<zone>Z|UTC|GMT|[+-][0-9]{2}(?::?[0-9]{2})?)?
    """,
    re.VERBOSE | re.IGNORECASE,
)
# What a date_format does not cover but must still be read: ISO 8601, which is how Excel's own
# date cells reach the parser.
_ISO_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[ T][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?)?"
)


def _zone_of(text: str | None) -> fixed_timezone | None:
    if not text:
        return None
    if text.upper() in ("Z", "UTC", "GMT"):
        return UTC
    digits = text[1:].replace(":", "")
    offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
    return fixed_timezone(-offset if text[0] == "-" else offset)


def _read_date_time(text: str, date_format: str | None) -> datetime:
    """A naive (local) or aware datetime from one value; raises ValueError when it is not one."""
    text = _normalized(text)
    if date_format:
        try:
            return datetime.strptime(text, date_format)
        except ValueError:
            if _ISO_RE.fullmatch(text) is None:
                raise
            return datetime.fromisoformat(text)
    match = _DATE_TIME_RE.fullmatch(text)
    if match is None:
        raise ValueError(text)
    year, month, day = (
        (match["y"], match["m"], match["d"])
        if match["y"]
        else (match["cy"], match["cm"], match["cd"])
        if match["cy"]
        else (match["ky"], match["km"], match["kd"])
    )
    fraction = (match["f"] or "")[:6].ljust(6, "0")
    return datetime(
        int(year),
        int(month),
        int(day),
        int(match["H"] or 0),
        int(match["M"] or match["cM"] or 0),
        int(match["S"] or match["cS"] or 0),
        int(fraction),
        tzinfo=_zone_of(match["zone"]),
    )


def _not_a_date(text: str, column_type: ColumnType, date_format: str | None) -> _BadValue:
    if date_format:
        return _BadValue(
            _('"{value}" does not match the date format "{format}"').format(
                value=_show(text), format=date_format
            )
        )
    if column_type is ColumnType.DATE:
        return _BadValue(
            _('"{value}" is not a date (expected e.g. 2024-03-05)').format(value=_show(text))
        )
    return _BadValue(
        _('"{value}" is not a date (expected e.g. 2024-03-05 or 2024-03-05 14:30)').format(
            value=_show(text)
        )
    )


# --- Whole columns -------------------------------------------------------------------------------

_Problems = dict[int, str]  # position in the batch -> message
_STRING_TYPES = (pa.string(), pa.large_string())


def _blank_to_null(values: pa.Array) -> pa.Array:
    """Empty strings become nulls: an empty cell means "no value"."""
    blank = pc.equal(values, "")
    if not pc.any(blank).as_py():
        return values
    return pc.if_else(blank, pa.scalar(None, values.type), values)


def _trimmed(values: pa.Array) -> pa.Array:
    return _blank_to_null(pc.utf8_trim_whitespace(values))


def true_positions(mask: pa.Array) -> np.ndarray:
    return pc.indices_nonzero(pc.fill_null(mask, False)).to_numpy()


def _attempt(fast: Callable[[pa.Array], pa.Array | None], values: pa.Array) -> pa.Array | None:
    try:
        return fast(values)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _in_python(
    values: pa.Array, one: Callable[[str], Any], arrow_type: pa.DataType
) -> tuple[pa.Array, _Problems]:
    """Parse each distinct value once in Python; nulls stay null."""
    encoded = values.dictionary_encode()
    results: list[Any] = []
    messages: list[str | None] = []
    for text in encoded.dictionary.to_pylist():
        try:
            results.append(one(text))
            messages.append(None)
        except _BadValue as error:
            results.append(None)
            messages.append(str(error))
    indices = encoded.indices
    typed = pa.array(results, arrow_type).take(indices)
    problems: _Problems = {}
    if any(message is not None for message in messages):
        bad = np.array([message is not None for message in messages] + [False])
        codes = pc.fill_null(indices, -1).to_numpy()  # -1 (null) picks the trailing False
        for position in np.flatnonzero(bad[codes]):
            problems[int(position)] = messages[codes[position]]  # type: ignore[assignment]
    return typed, problems


def _place(
    parts: Sequence[tuple[np.ndarray, pa.Array]], length: int, arrow_type: pa.DataType
) -> pa.Array:
    """One array of ``length`` from typed parts that each fill the given positions."""
    if not parts:
        return pa.nulls(length, arrow_type)
    order = np.full(length, -1, dtype=np.int64)
    start = 0
    for positions, _part in parts:
        order[positions] = np.arange(start, start + len(positions))
        start += len(positions)
    combined = pa.concat_arrays([part for _positions_, part in parts])
    return combined.take(pa.array(order, mask=order < 0))


@dataclass(frozen=True)
class Converter:
    """Turns one column of raw text into its Arrow type."""

    column: Column
    date_format: str | None
    zone: ZoneInfo

    @property
    def arrow_type(self) -> pa.DataType:
        return ARROW_TYPES[self.column.type]

    def convert(self, values: pa.Array) -> tuple[pa.Array, _Problems]:
        kind = self.column.type
        if kind is ColumnType.TEXT:
            typed, problems = self._text(values)
        elif kind in (ColumnType.CHOICE, ColumnType.BOOLEAN):
            typed, problems = self._lookup(values)
        else:
            typed, problems = self._parsed(values)
            if self.column.minimum is not None:
                self._check_minimum(typed, values, problems)
        return typed, problems

    # Text: trimmed, and no longer than max_length.
    def _text(self, values: pa.Array) -> tuple[pa.Array, _Problems]:
        typed = _trimmed(values)
        problems: _Problems = {}
        limit = self.column.max_length
        if limit is not None:
            for position in true_positions(pc.greater(pc.utf8_length(typed), limit)):
                text = typed[int(position)].as_py()
                problems[int(position)] = _(
                    '"{value}" is {length} characters long; at most {limit} are allowed'
                ).format(value=_show(text), length=len(text), limit=limit)
        return typed, problems

    # Choices and booleans: few distinct values, each looked up once.
    def _lookup(self, values: pa.Array) -> tuple[pa.Array, _Problems]:
        if self.column.type is ColumnType.BOOLEAN:
            table: dict[str, Any] = {word: True for word in _TRUE_WORDS}
            table.update({word: False for word in _FALSE_WORDS})
        else:
            table = {code.casefold(): code for code in self.column.choices}
            table.update({alias.casefold(): code for alias, code in self.column.choice_aliases})

        def one(text: str) -> Any:
            key = _normalized(text).casefold()
            if not key:
                return None
            if key not in table:
                raise _BadValue(self._not_allowed(text))
            return table[key]

        return _in_python(values, one, self.arrow_type)

    def _not_allowed(self, text: str) -> str:
        if self.column.type is ColumnType.BOOLEAN:
            return _(
                '"{value}" is not yes or no (use true/false, yes/no, y/n, 1/0 or 是/否)'
            ).format(value=_show(text))
        return _('"{value}" is not one of the allowed values: {allowed}').format(
            value=_show(text), allowed=", ".join(self.column.choices)
        )

    # Numbers and dates: Arrow first, Python for what Arrow refuses.
    def _parsed(self, values: pa.Array) -> tuple[pa.Array, _Problems]:
        arrow_type = self.arrow_type
        values = _blank_to_null(values)
        if values.null_count == len(values):
            return pa.nulls(len(values), arrow_type), {}
        shapes = self._shapes()
        if not shapes:
            return _in_python(values, self._one, arrow_type)
        # Arrow's casts are fast when they succeed but slow to fail value after value, so the
        # whole column is cast only when its first values have the right shape.
        sample = values.slice(0, 100).drop_null()
        for pattern, cast in shapes:
            if pc.all(pc.match_substring_regex(sample, pattern)).as_py():
                typed = _attempt(cast, values)
                if typed is not None:
                    return typed, {}
        return self._in_parts(_trimmed(values), shapes)

    def _in_parts(self, values: pa.Array, shapes: list[_Shape]) -> tuple[pa.Array, _Problems]:
        """Arrow for the values of each standard shape, Python for the others."""
        parts: list[tuple[np.ndarray, pa.Array]] = []
        positions = true_positions(pc.is_valid(values))
        rest = values.drop_null()

        def take_shapes(candidates: pa.Array) -> None:
            nonlocal positions, rest
            for pattern, cast in shapes:
                fits = pc.fill_null(pc.match_substring_regex(candidates, pattern), False)
                if not pc.any(fits).as_py():
                    continue
                # None when a value slips the pattern (2024-02-30): Python then tells which.
                typed = _attempt(cast, candidates.filter(fits))
                if typed is not None:
                    fitting = fits.to_numpy(zero_copy_only=False)
                    parts.append((positions[fitting], typed))
                    positions = positions[~fitting]
                    candidates = candidates.filter(pc.invert(fits))
                    rest = rest.filter(pc.invert(fits))

        take_shapes(rest)
        if self.column.type in (ColumnType.DATE, ColumnType.DATETIME) and len(rest) >= 100:
            # Dates like 2024/3/5 9:05 (what Excel writes in Chinese locales), padded into ISO
            # form, are read by Arrow too.
            take_shapes(_iso_shaped(rest))
        problems: _Problems = {}
        if len(rest):
            typed, rest_problems = _in_python(rest, self._one, self.arrow_type)
            parts.append((positions, typed))
            problems = {int(positions[row]): message for row, message in rest_problems.items()}
        return _place(parts, len(values), self.arrow_type), problems

    def _shapes(self) -> list[_Shape]:
        """Standard forms of the column's values, each with the Arrow cast that reads it."""
        kind = self.column.type
        if kind is ColumnType.DATE:
            if self.date_format:
                return []
            return [
                (_DATE_PATTERN, lambda values: values.cast(pa.date32())),
                (_NAIVE_PATTERN, _date_of_timestamp),
            ]
        if kind is ColumnType.DATETIME:
            if self.date_format:
                return []
            return [
                (_NAIVE_PATTERN, self._naive_to_utc),
                (_ZONED_PATTERN, lambda values: values.cast(_TIMESTAMP_TYPE)),
            ]
        if kind is ColumnType.NUMBER:
            return [(_NUMBER_PATTERN, _finite_numbers)]
        pattern = _INTEGER_PATTERN if kind is ColumnType.INTEGER else _DECIMAL_PATTERN
        return [(pattern, lambda values: values.cast(self.arrow_type))]

    def _naive_to_utc(self, values: pa.Array) -> pa.Array:
        naive = values.cast(pa.timestamp("us"))
        if self.zone.key != "UTC":
            naive = pc.assume_timezone(
                naive, self.zone.key, ambiguous="earliest", nonexistent="earliest"
            )
        return naive.cast(_TIMESTAMP_TYPE)

    def _one(self, text: str) -> Any:
        kind = self.column.type
        if kind is ColumnType.DECIMAL:
            return _one_decimal(text)
        if kind is ColumnType.INTEGER:
            return _one_integer(text)
        if kind is ColumnType.NUMBER:
            return _one_number(text)
        try:
            moment = _read_date_time(text, self.date_format)
        except ValueError:
            raise _not_a_date(text, kind, self.date_format) from None
        if kind is ColumnType.DATE:
            return moment.date()
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self.zone)
        return moment.astimezone(UTC)

    def _check_minimum(self, typed: pa.Array, raw: pa.Array, problems: _Problems) -> None:
        minimum = self.column.minimum
        assert minimum is not None
        if self.column.type is ColumnType.DECIMAL:
            bound = pa.scalar(Decimal(str(minimum)), _DECIMAL_TYPE)
        else:
            bound = pa.scalar(minimum)
        for position in true_positions(pc.less(typed, bound)):
            position = int(position)
            if position not in problems:
                problems[position] = _(
                    '"{value}" is less than {minimum}, the smallest value allowed'
                ).format(value=_show(raw[position].as_py().strip()), minimum=f"{minimum:g}")


def _iso_shaped(values: pa.Array) -> pa.Array:
    """Dates such as 2024/3/5 9:05, 2024.03.05 or 2024年3月5日 rewritten as 2024-03-05 09:05."""
    shaped = pc.replace_substring_regex(
        values,
        pattern=r"^([0-9]{4})[-/.年]([0-9]{1,2})[-/.月]([0-9]{1,2})(?:日\s*|\s*T\s*|\s+)?",
        replacement=r"\1-\2-\3 ",
    )
    for _twice in range(2):  # a match takes the separator after a digit, hiding the next one
        shaped = pc.replace_substring_regex(
            shaped, pattern=r"([- :])([0-9])([^0-9]|$)", replacement=r"\10\2\3"
        )
    return pc.utf8_rtrim_whitespace(shaped)


def _finite_numbers(values: pa.Array) -> pa.Array:
    typed = values.cast(pa.float64())
    if pc.all(pc.is_finite(typed)).as_py() is False:
        # Arrow reads "nan" and "inf"; they are not measurements.
        raise pa.ArrowInvalid("not finite")
    return typed


def _date_of_timestamp(values: pa.Array) -> pa.Array:
    return pc.cast(values.cast(pa.timestamp("us")), pa.date32(), safe=False)


_Shape = tuple[str, Callable[[pa.Array], pa.Array]]
_TRUE_WORDS = ("true", "yes", "y", "1", "t", "on", "是", "真", "对", "對")
_FALSE_WORDS = ("false", "no", "n", "0", "f", "off", "否", "假", "错", "錯")
# Values of these shapes are read by Arrow's casts (bar calendar slips such as 2024-02-30).
_INTEGER_PATTERN = r"^-?[0-9]{1,18}$"
_DECIMAL_PATTERN = r"^-?[0-9]{1,14}(\.[0-9]{0,4}0*)?$"
_NUMBER_PATTERN = r"^-?[0-9]{1,300}(\.[0-9]*)?$"
_DAY = r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
_TIME = r"([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?"
_DATE_PATTERN = f"^{_DAY}$"
_NAIVE_PATTERN = f"^{_DAY}([ T]{_TIME})?$"
_ZONED_PATTERN = f"^{_DAY}[ T]{_TIME}(Z|[+-][0-9]{{2}}(:?[0-9]{{2}})?)$"
