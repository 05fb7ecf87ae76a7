"""The production settings with the benchmark's URLs: the product's, plus a bare view
to measure the web stack alone (bench/urls.py). Used by the benchmark's web process."""

from integration_site.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
