"""Settings for the test suite: production settings (DEBUG off) with test keys.

End-to-end tests start worker processes with these settings too; they inherit
the environment set here (the queue name keeps parallel runs apart).
"""

import os
from pathlib import Path

_root = Path(__file__).resolve().parent.parent
os.environ.setdefault(
    "DJANGO_SECRET_KEY", "tests-only-secret-key-not-for-production-use-0123456789"
)
# A fixed, valid Fernet key: tests only.
os.environ.setdefault("FIELD_ENCRYPTION_KEYS", "dGVzdHMtb25seS1rZXktMDEyMzQ1Njc4OWFiY2RlZjA=")
os.environ.setdefault("TALON_HTTP_ALLOWED_HOSTS", "127.0.0.1,localhost")
os.environ.setdefault("VAR_DIR", str(_root / "var" / "test"))
os.environ.setdefault("CELERY_QUEUE", f"tests-{os.getpid()}")
os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")

from integration_site.settings import *  # noqa: E402, F403
from integration_site.settings import DATABASES, INSTALLED_APPS, VAR_DIR  # noqa: E402

# The Talon.One stand-in: production settings leave it out.
INSTALLED_APPS = [*INSTALLED_APPS, "talon_sandbox"]

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# One test database per run, so runs side by side do not clobber each other.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory: worker processes in end-to-end tests share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_talon_segment_{os.getpid()}"}
    # make mutation: copied from a migrated database (bin/test_database_template.py),
    # which takes a fraction of the time the migrations take, once per mutant.
    if os.environ.get("TEST_DATABASE_TEMPLATE"):
        DATABASES["default"]["TEST"]["TEMPLATE"] = os.environ["TEST_DATABASE_TEMPLATE"]
