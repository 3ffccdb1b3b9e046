from django.apps import AppConfig
from django.conf import settings


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self):
        # Only registration here. The receiver runs in process only when asked
        # (ACCOUNTS_RECEIVER=in_process); with "bridge" the Swift worker plays it.
        if getattr(settings, "ACCOUNTS_RECEIVER", "none") == "in_process":
            from django.contrib.auth import get_user_model
            from django.db.models.signals import post_save

            from .receivers import create_or_update_user_profile

            post_save.connect(
                create_or_update_user_profile,
                sender=get_user_model(),
                dispatch_uid="accounts.create_or_update_user_profile",
            )
