"""WSGI config for mysite: `fastwsgi mysite.wsgi:application` (run from the directory of manage.py)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

application = get_wsgi_application()
