"""The zh-hans and zh-hant catalogues: complete, compiled, and used by Django."""

from __future__ import annotations

import gettext
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.utils import translation

import loyal

LOCALE_DIR = Path(loyal.__file__).resolve().parent / "locale"
LANGUAGES = {"zh-hans": "zh_Hans", "zh-hant": "zh_Hant"}
PLACEHOLDER = re.compile(r"\{\{|\}\}|\{[^{}]*\}|%\([^)]+\)[-#0 +]*\d*(?:\.\d+)?[a-zA-Z]")


@dataclass
class Entry:
    msgid: str = ""
    msgid_plural: str | None = None
    msgctxt: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    line: int = 0


def _unquote(text: str) -> str:
    text = text.strip()
    assert text.startswith('"') and text.endswith('"'), text
    escapes = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}
    return re.sub(r"\\(.)", lambda m: escapes.get(m.group(1), m.group(1)), text[1:-1])


def parse_po(path: Path) -> list[Entry]:
    """Every entry of a .po file (obsolete #~ entries left out), the header included."""
    entries: list[Entry] = []
    entry: Entry | None = None
    target: tuple[str, int | None] | None = None
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#~"):
            continue
        if line.startswith("#"):
            if entry is not None and target is not None:  # comments start the next entry
                entries.append(entry)
                entry, target = None, None
            if line.startswith("#,"):
                entry = entry or Entry(line=number)
                entry.flags |= {flag.strip() for flag in line[2:].split(",")}
            continue
        keyword, _, rest = line.partition(" ")
        if line.startswith('"'):
            assert entry is not None and target is not None, f"{path}:{number}"
            name, index = target
            if name == "msgstr":
                entry.msgstr[index or 0] += _unquote(line)
            else:
                setattr(entry, name, getattr(entry, name) + _unquote(line))
            continue
        if (
            entry is not None
            and target
            and target[0] == "msgstr"
            and keyword in ("msgctxt", "msgid")
        ):
            entries.append(entry)  # a new entry that has no comments
            entry = None
        entry = entry or Entry(line=number)
        match = re.fullmatch(r"msgstr\[(\d+)\]", keyword)
        if match:
            entry.msgstr[int(match.group(1))] = _unquote(rest)
            target = ("msgstr", int(match.group(1)))
        elif keyword == "msgstr":
            entry.msgstr[0] = _unquote(rest)
            target = ("msgstr", 0)
        elif keyword in ("msgid", "msgid_plural", "msgctxt"):
            setattr(entry, keyword, _unquote(rest))
            target = (keyword, None)
        else:
            raise AssertionError(f"{path}:{number}: cannot parse {raw!r}")
    if entry is not None:
        entries.append(entry)
    return entries


def _po(language: str) -> Path:
    return LOCALE_DIR / LANGUAGES[language] / "LC_MESSAGES" / "django.po"


def _messages(language: str) -> list[Entry]:
    return [entry for entry in parse_po(_po(language)) if entry.msgid]


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalogue_is_complete(language):
    entries = _messages(language)
    assert len(entries) > 300, "the catalogue looks truncated"
    untranslated = [
        "line {}: {!r}".format(entry.line, entry.msgid)
        for entry in entries
        if not entry.msgstr or not all(text.strip() for text in entry.msgstr.values())
    ]
    fuzzy = [
        "line {}: {!r}".format(entry.line, entry.msgid)
        for entry in parse_po(_po(language))
        if "fuzzy" in entry.flags
    ]
    assert not untranslated, "untranslated:\n" + "\n".join(untranslated)
    assert not fuzzy, "fuzzy (check the translation, then drop the flag):\n" + "\n".join(fuzzy)


@pytest.mark.parametrize("language", LANGUAGES)
def test_translations_keep_placeholders_and_commands(language):
    wrong = []
    for entry in _messages(language):
        for text in entry.msgstr.values():
            for pattern in (PLACEHOLDER, re.compile(r"`[^`]*`")):
                if Counter(pattern.findall(entry.msgid)) != Counter(pattern.findall(text)):
                    wrong.append("line {}: {!r} -> {!r}".format(entry.line, entry.msgid, text))
                    break
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("language", LANGUAGES)
def test_compiled_catalogue_matches_po(language):
    """The committed .mo holds exactly the .po's translations (run compilemessages if not)."""
    po = _po(language)
    with po.with_suffix(".mo").open("rb") as stream:
        compiled = gettext.GNUTranslations(stream)._catalog  # type: ignore[attr-defined]
    expected = {}
    for entry in _messages(language):
        key = entry.msgid if entry.msgctxt is None else f"{entry.msgctxt}\x04{entry.msgid}"
        if entry.msgid_plural is None:
            expected[key] = entry.msgstr[0]
        else:
            expected.update({(key, n): text for n, text in entry.msgstr.items()})
    assert {key: value for key, value in compiled.items() if key != ""} == expected


@pytest.mark.parametrize("language", LANGUAGES)
def test_po_passes_msgfmt_check(language, tmp_path):
    msgfmt = shutil.which("msgfmt")
    if msgfmt is None:
        pytest.skip("GNU gettext (msgfmt) is not installed")
    result = subprocess.run(
        [msgfmt, "--check", "-o", str(tmp_path / "django.mo"), str(_po(language))],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_django_uses_simplified_chinese():
    from loyal.customers.models import Stage
    from loyal.insights import labels

    with translation.override("zh-hans"):
        assert "流失" in str(Stage.CHURNED.label)
        assert str(labels.RFM_SEGMENTS["champions"]) == "重要价值客户"
        assert str(labels.RFM_SEGMENTS["hibernating"]) == "沉睡客户"
        assert str(labels.KPIS["repeat_purchase_rate"]) == "二次购买率"
        assert translation.gettext("Customers") == "客户"
        assert translation.gettext("Import") == "导入"


def test_django_uses_traditional_chinese():
    from loyal.customers.models import Stage
    from loyal.insights import labels

    with translation.override("zh-hant"):
        assert translation.gettext("Customers") == "客戶"
        assert "流失" in str(Stage.CHURNED.label)
        assert str(labels.RFM_SEGMENTS["champions"]) == "重要價值客戶"
        assert translation.gettext("Import") == "匯入"
        assert "客户" not in str(labels.KPIS["active_customers"])
        assert "客戶" in str(labels.KPIS["active_customers"])


@pytest.mark.parametrize("language", LANGUAGES)
def test_label_tables_are_all_translated(language):
    """Catches labels added in the source but not yet extracted into the catalogues."""
    from loyal.accounts.models import Role
    from loyal.customers.models import Stage
    from loyal.insights import labels

    names = [
        *labels.RFM_SEGMENTS.values(),
        *labels.ABC_CLASSES.values(),
        *labels.RETURN_CLASSES.values(),
        *labels.KPIS.values(),
        *Stage.labels,
        *Role.labels,
    ]
    with translation.override(language):
        english = [name for name in names if not re.search(r"[\u4e00-\u9fff]", str(name))]
    assert not english, "not translated into {}: {}".format(language, english)


def test_the_command_line_speaks_the_language_of_loyal_language(tmp_path):
    """LOYAL_LANGUAGE=zh-hans: the help of a command and its errors are in simplified Chinese."""
    if os.environ.get("LOYAL_DATABASE_URL"):
        pytest.skip("runs once, on its own SQLite file")
    env = {**os.environ, "LOYAL_DATA_DIR": str(tmp_path / "data"), "LOYAL_LANGUAGE": "zh_CN"}
    loyal = [sys.executable, "-m", "loyal"]
    shown = subprocess.run([*loyal, "import", "--help"], env=env, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert "从 CSV 或 Excel（.xlsx）文件导入记录" in shown.stdout
    assert "导入有效的行" in shown.stdout  # --skip-invalid
    subprocess.run([*loyal, "migrate", "-v", "0"], env=env, check=True)
    path = tmp_path / "orders.csv"
    path.write_text(
        "order_id,customer_id,ordered_at,sku,unit_price\nO1,C1,2024-13-45,S1,9.9\n",
        encoding="utf-8",
    )
    refused = subprocess.run(
        [*loyal, "import", "orders", str(path)], env=env, capture_output=True, text=True
    )
    assert refused.returncode == 1
    assert "第 2 行" in refused.stderr and "Traceback" not in refused.stderr
    assert "错误：" in refused.stderr and "CommandError" not in refused.stderr


def test_an_unknown_loyal_language_is_named(tmp_path):
    env = {**os.environ, "LOYAL_DATA_DIR": str(tmp_path / "data"), "LOYAL_LANGUAGE": "fr"}
    result = subprocess.run(
        [sys.executable, "-m", "loyal", "check"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "LOYAL_LANGUAGE='fr'" in result.stderr and "zh-hans" in result.stderr
    assert "Traceback" not in result.stderr


def test_template_help_sheet_is_translated(tmp_path):
    from openpyxl import load_workbook

    from loyal.imports import kinds
    from loyal.imports.writing import write_template

    path = tmp_path / "orders.xlsx"
    with translation.override("zh-hant"):
        write_template(kinds.ORDERS, path)
    sheet = load_workbook(path)["help"]
    texts = [row[4] for row in sheet.iter_rows(values_only=True) if len(row) > 4]
    assert "商品代碼；不存在的商品會自動建立。" in texts
