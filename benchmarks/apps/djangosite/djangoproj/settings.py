"""Settings of the minimal Django project the benchmark serves.

A startproject layout reduced to what a JSON API without a database keeps: production mode (DEBUG off),
the security and common middleware, one app with one view. No database, sessions or templates, so the
scenario measures request handling, not I/O the harness does not control.
"""

SECRET_KEY = "benchmark-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["api"]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]
ROOT_URLCONF = "djangoproj.urls"
WSGI_APPLICATION = "djangoproj.wsgi.application"
DATABASES = {}
USE_TZ = True
LOGGING_CONFIG = None
