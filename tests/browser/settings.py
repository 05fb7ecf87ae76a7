"""The test settings, with the admin's stylesheets and scripts served from the
apps themselves: a browser needs them, and no `collectstatic` runs in tests."""

from tests.settings import *  # noqa: F403

WHITENOISE_USE_FINDERS = True
