"""The demo's pages (accounts/views.py): home, sign-up, profile, edit."""

from django.urls import include, path

urlpatterns = [
    path("", include("accounts.urls")),
]
