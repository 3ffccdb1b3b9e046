from django.conf import settings
from django.db import models


class UserProfile(models.Model):
    PROFILE_TYPES = [("personal", "Personal"), ("business", "Business")]
    SEX_CHOICES = [("M", "Male"), ("F", "Female")]
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    profile_type = models.CharField(max_length=20, choices=PROFILE_TYPES, default="personal")
    sex = models.CharField(max_length=1, choices=SEX_CHOICES, null=True, blank=True)
    birthdate = models.DateField(null=True, blank=True)
