"""Settings, all from the environment (see the README's configuration table).

With nothing set the portal runs on embedded defaults: SQLite and an embedded Redis under
``VAR_DIR``, with a secret key and voucher keys generated there once. With ``DEBUG`` off it is
production: the secrets must be given, and the process refuses to start without them.
"""

import sys
from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from common import money
from portal import embedded_redis, local_secrets
from portal.paths import BASE_DIR, VAR_DIR, owner_only_dir, owner_only_file

env = environ.Env()
if (BASE_DIR / ".env").exists():
    env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=True)
owner_only_dir(VAR_DIR)


def _secret(name: str, filename: str, make) -> str:
    value = env.str(name, default="")
    if value:
        return value
    if not DEBUG:
        sys.stderr.write(f"{name} must be set when DEBUG is off; refusing to start.\n")
        raise ImproperlyConfigured(f"{name} must be set when DEBUG is off")
    return local_secrets.read_or_create(VAR_DIR / filename, make)


SECRET_KEY = _secret("SECRET_KEY", "secret_key", local_secrets.new_secret_key)
VOUCHER_KEYS = _secret("VOUCHER_KEYS", "voucher_keys", local_secrets.new_voucher_keys)
VOUCHER_INDEX_KEY = _secret(
    "VOUCHER_INDEX_KEY", "voucher_index_key", local_secrets.new_index_key
)

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_rq",
    "django_htmx",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "csp",
    "portal.apps.PortalConfig",
    "vendors.apps.VendorsConfig",
    "orders.apps.OrdersConfig",
    "audit.apps.AuditConfig",
]

MIDDLEWARE = [
    "portal.request_size.RequestSizeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "portal.idle.SessionIdleMiddleware",
    "portal.twofactor.TwoFactorMiddleware",
    "axes.middleware.AxesMiddleware",
    # After axes: signing a user out goes through axes' logout signal, which needs it.
    "portal.access.StaffOnlyMiddleware",
    "audit.actor.ActorMiddleware",
    "portal.admin_params.AdminDateLookupMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'portal.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    if DATABASES["default"]["NAME"] not in ("", ":memory:"):
        owner_only_file(Path(DATABASES["default"]["NAME"]))
    # A web server and a worker write at once: WAL, a busy timeout and IMMEDIATE
    # transactions keep SQLite from answering "database is locked". The test database is a
    # file too, so that worker processes started by tests can reach it.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

EMBEDDED_REDIS = not env.str("REDIS_URL", default="")
REDIS_URL = env.str("REDIS_URL", default="") or embedded_redis.url()

RQ_QUEUES = {
    name: {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 300}
    for name in ("default", "orders", "polling", "sync")
}
RQ_SHOW_ADMIN_LINK = True
# Workers are portal.worker.PortalWorker: they beat every WORKER_HEARTBEAT_INTERVAL seconds,
# idle or busy, into a key a Redis flush does not silence. A worker whose last beat is older
# than WORKER_HEARTBEAT_MAX_AGE is dead to /healthz and to the sweep (which then gives back the
# supplier order its job held).
RQ = {"WORKER_CLASS": "portal.worker.PortalWorker"}
WORKER_HEARTBEAT_INTERVAL = env.int("WORKER_HEARTBEAT_INTERVAL", default=5)
WORKER_HEARTBEAT_MAX_AGE = env.int("WORKER_HEARTBEAT_MAX_AGE", default=20)

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=0.25)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"
LOGIN_REDIRECT_URL = "/"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
STATICFILES_DIRS = [BASE_DIR / "static"]
if DEBUG:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns about a missing root
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# Production hardening; each switch can be turned off behind a proxy that does the same job.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# Joining the browsers' HSTS preload list is the operator's decision (SECURE_HSTS_PRELOAD).
SILENCED_SYSTEM_CHECKS = ["security.W021"]
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 3600)
# Logged out after this many seconds without a page the user asked for (htmx polling does not
# count); SESSION_COOKIE_AGE caps a session however active.
SESSION_IDLE_TIMEOUT = env.int("SESSION_IDLE_TIMEOUT", default=30 * 60)

# Two-factor authentication (portal.twofactor). Revealing or exporting codes needs the
# password and an authenticator code proved within REAUTHENTICATION_MAX_AGE seconds. Each
# wrong code doubles the wait before the next (OTP_THROTTLE_FACTOR seconds after the first).
REAUTHENTICATION_MAX_AGE = env.int("REAUTHENTICATION_MAX_AGE", default=15 * 60)
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="Voucher portal")
OTP_TOTP_THROTTLE_FACTOR = OTP_STATIC_THROTTLE_FACTOR = env.int("OTP_THROTTLE_FACTOR", default=1)
# The admin lists and deletes devices but never shows a secret, a QR code or recovery codes.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

# Content security policy (django-csp): everything from this origin, nothing inline.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
X_FRAME_OPTIONS = "DENY"

# Supplier URLs may be http and reach loopback or private addresses (the sandboxes): on in
# development, off in production, where only https to public addresses is called
# (common.addresses).
SUPPLIER_URLS_ALLOW_LOCAL = env.bool("SUPPLIER_URLS_ALLOW_LOCAL", default=DEBUG)
# Supplier HTTP: connect and read timeouts in seconds, used by common.http for every call.
SUPPLIER_CONNECT_TIMEOUT = env.float("SUPPLIER_CONNECT_TIMEOUT", default=5.0)
SUPPLIER_READ_TIMEOUT = env.float("SUPPLIER_READ_TIMEOUT", default=30.0)

# Ordering: the largest quantity of one line, the order total (in its currency) above which a
# second person must approve, how long a job may hold a supplier order before the sweep gives it
# back whatever RQ says (a lost job is found sooner from RQ and the heartbeats), and how often
# a submission is retried before a person is asked.
ORDER_MAX_QUANTITY = env.int("ORDER_MAX_QUANTITY", default=1000)
ORDER_APPROVAL_THRESHOLD = env.str("ORDER_APPROVAL_THRESHOLD", default="") or None
# How long one supplier quote serves a user's new-order form, confirmation and placing.
SUPPLIER_QUOTE_SECONDS = env.int("SUPPLIER_QUOTE_SECONDS", default=60)


def _amounts(name: str) -> dict:
    try:
        return money.parse_amounts(env.str(name, default=""))
    except money.MoneyError as exc:
        sys.stderr.write(f"{name} is malformed ({exc}); refusing to start.\n")
        raise ImproperlyConfigured(f"{name} is malformed: {exc}") from None


# Spend controls (orders.spend): portal-wide limits per currency, "GBP:500,EUR:580", each
# overridable per user (orders.SpendLimit). Empty: no limit of that kind. When a kind of limit
# is in force but names no amount in an order's currency, that order waits for approval.
# A non-empty ORDER_LIMIT_PER_ORDER replaces the older ORDER_APPROVAL_THRESHOLD.
ORDER_LIMIT_PER_ORDER = _amounts("ORDER_LIMIT_PER_ORDER")
ORDER_DAILY_CAP_PER_USER = _amounts("ORDER_DAILY_CAP_PER_USER")
# A confirmation page warns of the same user's same order placed within these minutes.
ORDER_REPEAT_WARNING_MINUTES = env.int("ORDER_REPEAT_WARNING_MINUTES", default=10)
# Bulk orders from a file (orders.bulk): the most rows and bytes one file may have, and how
# many days back a file placed before (the same bytes, by the same user) is warned of.
BULK_MAX_ROWS = env.int("BULK_MAX_ROWS", default=5000)
BULK_MAX_BYTES = env.int("BULK_MAX_BYTES", default=2 * 1024 * 1024)
# An XLSX is a zip: the most its parts may hold once unpacked, and the most seconds reading
# one may take, so a small file cannot cost gigabytes or minutes.
BULK_MAX_XLSX_BYTES = env.int("BULK_MAX_XLSX_BYTES", default=10 * 1024 * 1024)
BULK_READ_SECONDS = env.int("BULK_READ_SECONDS", default=10)
# The largest request body any page takes (the bulk file and its form): refused before
# anything reads it.
REQUEST_MAX_BYTES = env.int("REQUEST_MAX_BYTES", default=BULK_MAX_BYTES + 256 * 1024)
BULK_DUPLICATE_DAYS = env.int("BULK_DUPLICATE_DAYS", default=30)
ORDER_CLAIM_TIMEOUT = env.int("ORDER_CLAIM_TIMEOUT", default=600)
# How often the sweep looks for lost jobs (seconds), and how late a due supplier order may be
# (or how long a job may hold one) before /healthz says orders are not moving.
ORDER_SWEEP_INTERVAL = env.int("ORDER_SWEEP_INTERVAL", default=10)
HEALTH_ORDER_MAX_LAG = env.int("HEALTH_ORDER_MAX_LAG", default=120)
ORDER_SUBMIT_ATTEMPTS = env.int("ORDER_SUBMIT_ATTEMPTS", default=8)
# Transient faults on a supplier order's reads (429, 5xx, timeouts): the first retry after about
# this many seconds (growing by half of it per fault in a row, jittered, at most 15 s; a
# Retry-After wins), for at most this many faults in a row before the ordinary back-off.
ORDER_FAULT_RETRY_SECONDS = env.float("ORDER_FAULT_RETRY_SECONDS", default=2.0)
ORDER_FAULT_RETRIES = env.int("ORDER_FAULT_RETRIES", default=6)
# Catalog and balance syncs: attempts of a read after a retryable error, and the longest
# wait between two (a longer Retry-After is cut to it).
SYNC_ATTEMPTS = env.int("SYNC_ATTEMPTS", default=3)
SYNC_RETRY_MAX_WAIT = env.float("SYNC_RETRY_MAX_WAIT", default=5.0)

# Alerts (orders.alerts): a balance is low below its vendor's low_balance_threshold or when
# it lasts fewer than ALERT_LOW_BALANCE_DAYS (0: that rule off) at the average daily debits of
# the last ALERT_SPEND_WINDOW_DAYS days. Emails link to PORTAL_URL; they go through Django's
# mail: printed to the console in debug unless EMAIL_BACKEND says otherwise, SMTP in production.
ALERT_LOW_BALANCE_DAYS = env.int("ALERT_LOW_BALANCE_DAYS", default=3)
ALERT_SPEND_WINDOW_DAYS = env.int("ALERT_SPEND_WINDOW_DAYS", default=7)
PORTAL_URL = env.str("PORTAL_URL", default="http://127.0.0.1:8000").rstrip("/")
EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.console.EmailBackend" if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Voucher portal <portal@localhost>")

# Where the run command's sandbox suppliers listen; demo vendors point here.
SANDBOX_URL = env.str("SANDBOX_URL", default="http://127.0.0.1:8001")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"axes": {"level": "WARNING"}},
}

# Shared by every process: supplier access tokens, rate-limit windows, login throttling.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "portal",
    }
}
