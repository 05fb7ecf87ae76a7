"""The Talon.One sandbox is a development and test tool: production settings
do not install it (so `run_talon_sandbox` does not exist there)."""

from tests.security.test_deploy_check import production_env, run_manage

__all__ = ["production_env"]


def test_production_settings_leave_out_the_sandbox(tmp_path, production_env):
    code = "from django.conf import settings as s; print('talon_sandbox' in s.INSTALLED_APPS)"
    result = run_manage(tmp_path, "shell", "-c", code, **production_env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"
    assert run_manage(tmp_path, "run_talon_sandbox", "--help", **production_env).returncode != 0


def test_debug_settings_offer_the_sandbox(tmp_path):
    result = run_manage(tmp_path, "run_talon_sandbox", "--help", DJANGO_DEBUG="true")

    assert result.returncode == 0, result.stderr
