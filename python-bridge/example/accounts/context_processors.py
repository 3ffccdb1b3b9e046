from django.conf import settings


def profile_receiver(request):
    """Who writes profiles in this process, for the page footer."""
    receiver = getattr(settings, "ACCOUNTS_RECEIVER", "none")
    bridge = getattr(settings, "SIGNAL_BRIDGE", {}) or {}
    if receiver == "bridge":
        mode = bridge.get("MODE", "sync")
        endpoint = bridge.get("ENDPOINT", "")
        description = f"signal-worker (Swift) via signal_bridge, {mode} mode, {endpoint}"
    elif receiver == "in_process":
        from . import in_process

        try:
            names = ", ".join(in_process.enabled())
        except ValueError:  # accounts.E001 reports it
            names = "?"
        description = f"the Python receivers ({names}), in process (accounts/in_process.py)"
    else:
        description = "nobody (ACCOUNTS_RECEIVER=none)"
    return {
        "profile_receiver": receiver,
        "profile_receiver_description": description,
        "profile_receiver_async": receiver == "bridge" and bridge.get("MODE") == "async",
    }
