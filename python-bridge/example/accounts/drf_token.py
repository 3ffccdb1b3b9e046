"""Django REST framework's token receiver, the worker's ``drf-token`` receiver.

The Swift worker's token receiver is a port of this. Keep the logic verbatim:
it is DRF's own example (api-guide/authentication, "Generating Tokens"), only
without its ``@receiver(post_save, sender=settings.AUTH_USER_MODEL)``
decorator: ``accounts.in_process`` connects it when ``ACCOUNTS_RECEIVERS``
names ``drf-token``, after the profile receiver, as the worker's
``--receivers profile,drf-token`` does.
"""

from rest_framework.authtoken.models import Token


def create_auth_token(sender, instance=None, created=False, **kwargs):
    if created:
        Token.objects.create(user=instance)
