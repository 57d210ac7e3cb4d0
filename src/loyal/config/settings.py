"""Loyal's one settings module.

Everything is configured from environment variables with embedded defaults: with nothing set,
the records live in a SQLite file under ``./loyal-data/`` and nothing needs a server.

- ``LOYAL_DATA_DIR``: where Loyal keeps its files (default ``./loyal-data``).
- ``LOYAL_DATABASE_URL``: e.g. ``postgres://user@127.0.0.1:5432/loyal``; default SQLite in the data dir.
- ``LOYAL_SECRET_KEY``: required in production; a per-data-dir key is generated otherwise.
- ``LOYAL_DEBUG``: ``1`` to show debug pages.
- ``LOYAL_TIME_ZONE``: the business's time zone (default ``UTC``): naive times in imported files
  are read in it, and reports group days in it.
- ``LOYAL_ALLOWED_HOSTS``: comma-separated host names (default ``localhost,127.0.0.1``).
- ``LOYAL_LANGUAGE``: the language of the ``loyal`` command's messages and the default of reports:
  ``en`` (default), ``zh-hans`` (简体中文) or ``zh-hant`` (繁體中文).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _


def _language() -> str:
    code = os.environ.get("LOYAL_LANGUAGE", "en").strip().lower().replace("_", "-")
    # Common spellings of the two Chinese scripts, as in LANG or browsers' language tags.
    code = {"zh-cn": "zh-hans", "zh-sg": "zh-hans", "zh-tw": "zh-hant", "zh-hk": "zh-hant"}.get(
        code, code
    )
    if code not in ("en", "zh-hans", "zh-hant"):
        raise ImproperlyConfigured(
            "LOYAL_LANGUAGE={!r} is not a language Loyal speaks: use en, zh-hans or zh-hant.".format(
                os.environ["LOYAL_LANGUAGE"]
            )
        )
    return code


PACKAGE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("LOYAL_DATA_DIR", "loyal-data")).resolve()


def _secret_key() -> str:
    key = os.environ.get("LOYAL_SECRET_KEY")
    if key:
        return key
    key_file = DATA_DIR / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


def _database() -> dict:
    url = os.environ.get("LOYAL_DATABASE_URL")
    if not url:
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        url = "sqlite:///" + str(DATA_DIR / "loyal.sqlite3")
    database = dj_database_url.parse(url, conn_max_age=0)
    if database["ENGINE"] == "django.db.backends.sqlite3":
        database["OPTIONS"] = {
            # WAL lets the web server read while an import or analysis writes.
            "init_command": (
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
                " PRAGMA temp_store=MEMORY; PRAGMA cache_size=-200000;"
            ),
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        }
        database["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}
    else:
        # Room for an import's staging tables (temporary tables live in these session buffers,
        # taken only as needed; the default 8 MB sends a large import's staging to disk).
        database.setdefault("OPTIONS", {})["options"] = "-c temp_buffers=512MB"
    return database


SECRET_KEY = _secret_key()
DEBUG = os.environ.get("LOYAL_DEBUG", "") == "1"
ALLOWED_HOSTS = os.environ.get("LOYAL_ALLOWED_HOSTS", "localhost,127.0.0.1").split(",")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "loyal.accounts",
    "loyal.customers",
    "loyal.commerce",
    "loyal.imports",
    "loyal.insights",
    "loyal.demo",
    "loyal.web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "loyal.config.urls"
WSGI_APPLICATION = "loyal.config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
            ],
        },
    },
]

DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGES = [
    ("en", _("English")),
    ("zh-hans", _("Simplified Chinese")),
    ("zh-hant", _("Traditional Chinese")),
]
LANGUAGE_CODE = _language()
LOCALE_PATHS = [PACKAGE_DIR / "locale"]
USE_I18N = True
USE_TZ = True
TIME_ZONE = os.environ.get("LOYAL_TIME_ZONE", "UTC")

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
LOGIN_URL = "admin:login"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOYAL_LOG_LEVEL", "WARNING")},
}
