from config.runtime import restore_recursion_limit

restore_recursion_limit()  # before anything else of ours: see config/runtime.py

from .celery import app as celery_app  # noqa: E402

__all__ = ("celery_app",)
