from django.apps import AppConfig


class TalonSandboxConfig(AppConfig):
    name = "talon_sandbox"
    verbose_name = "Talon.One sandbox"
