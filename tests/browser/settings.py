"""The test settings for the browser tests' server processes: the admin's
stylesheets and scripts served from the apps themselves (a browser needs them,
and no `collectstatic` runs in tests), and nothing cached kept from one test to
the next (tests/browser/caches.py)."""

import tests.browser.caches  # noqa: F401 (connects the worker's signal)
from tests.settings import *  # noqa: F403
from tests.settings import MIDDLEWARE

WHITENOISE_USE_FINDERS = True
MIDDLEWARE = ["tests.browser.caches.fresh_caches", *MIDDLEWARE]
