"""Just enough Django settings to run the sandbox command in test_command.py."""

SECRET_KEY = "sandbox-command-test"
INSTALLED_APPS = ["talon_sandbox"]
USE_TZ = True
