"""App configuration: ``ready()`` only registers (receivers, checks, settings hook)."""

from django.apps import AppConfig
from django.core.signals import setting_changed


class SignalBridgeConfig(AppConfig):
    name = "signal_bridge"
    verbose_name = "Signal bridge"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import checks  # noqa: F401  (registers the system checks)
        from .publisher import connect_receivers

        connect_receivers()
        setting_changed.connect(_on_setting_changed, dispatch_uid="signal_bridge.setting_changed")


def _on_setting_changed(setting, **kwargs):
    """``override_settings(SIGNAL_BRIDGE=...)``: re-read settings, reconnect receivers."""
    if setting != "SIGNAL_BRIDGE":
        return
    from . import conf, transport
    from .publisher import connect_receivers

    conf.reset()
    transport.reset_cooldown()
    connect_receivers()
