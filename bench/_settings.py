"""Settings for the benchmark server only: the project's settings plus a bench URLconf (the
baseline endpoint), a Server-Timing middleware and a header authentication (auth is not what
is measured, and both endpoints pay the same one user look-up)."""

from config.settings import *  # noqa: F403
from config.settings import MIDDLEWARE, REST_FRAMEWORK

ROOT_URLCONF = "bench._urls"
MIDDLEWARE = ["bench._server.ServerTimingMiddleware", *MIDDLEWARE]
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_AUTHENTICATION_CLASSES": ["bench._auth.BenchUserAuthentication"],
}
LOGGING = {"version": 1, "disable_existing_loggers": True, "root": {"level": "ERROR"}}

# Under ASGI every request runs in its own thread, so thread-local persistent connections
# (CONN_MAX_AGE > 0) are opened per request and linger; a psycopg pool shares them instead.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
DATABASES["default"]["CONN_HEALTH_CHECKS"] = False  # noqa: F405
DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {"min_size": 2, "max_size": 4, "timeout": 10}  # noqa: F405
