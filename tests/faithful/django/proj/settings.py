import os

SECRET_KEY = "not a secret"
INSTALLED_APPS = ["app"]
USE_TZ = True
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "app",
        "USER": "postgres",
        "HOST": os.environ["PGHOST"],
    }
}
