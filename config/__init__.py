from core import __version__

from .celery import app as celery_app

__all__ = ("__version__", "celery_app")
