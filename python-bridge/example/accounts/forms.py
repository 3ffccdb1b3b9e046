"""Forms of the demo: sign-up (user + profile data) and profile edit.

Neither form saves a profile: the views put the data on ``user._profile_data``
and call ``user.save()``; the ``post_save`` receiver (the Swift worker through
``signal_bridge``, or the Python receiver in process) writes the profile.
"""

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.utils import timezone

from .models import UserProfile

# Keys of ``_profile_data`` the receiver reads (accounts/receivers.py).
PROFILE_KEYS = ("profile_type", "sex", "birthdate")


class ProfileFields(forms.Form):
    """The three profile fields, as the receiver expects them."""

    profile_type = forms.ChoiceField(
        choices=UserProfile.PROFILE_TYPES,
        initial=UserProfile._meta.get_field("profile_type").default,
    )
    sex = forms.ChoiceField(
        choices=[("", "—")] + UserProfile.SEX_CHOICES,
        required=False,
    )
    birthdate = forms.DateField(
        required=False,
        # <input type="date"> submits and shows YYYY-MM-DD. The browser checks
        # it before submitting (the forms do not say novalidate): a date it
        # cannot parse (02/30/1990 typed into the picker) would otherwise be
        # sent as an empty value, i.e. "no birthdate", without a word.
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Today, when the form is made: the browser refuses later dates too.
        self.fields["birthdate"].widget.attrs["max"] = timezone.localdate().isoformat()

    def clean_birthdate(self):
        birthdate = self.cleaned_data.get("birthdate")
        if birthdate is not None and birthdate > timezone.localdate():
            raise forms.ValidationError("A birthdate cannot be in the future.", code="future")
        return birthdate


class SignUpForm(ProfileFields):
    username = forms.CharField(
        max_length=150,
        validators=[UnicodeUsernameValidator()],
        help_text="Letters, digits and @/./+/-/_ only.",
        widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "username"}),
    )
    password = forms.CharField(
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    field_order = ["username", "password", "profile_type", "sex", "birthdate"]

    def clean_username(self):
        username = self.cleaned_data["username"]
        if get_user_model().objects.filter(username__iexact=username).exists():
            raise forms.ValidationError("This username is taken.")
        return username

    def profile_data(self):
        """``_profile_data`` for the new user: only the keys the user filled in.

        An empty optional field leaves its key out rather than sending None.
        On create the two give the same row (the receiver reads
        ``profile_data.get("sex", None)``), but they do not mean the same:
        the receiver's update branch reads ``get(key, current value)``, so a
        present None *clears* a value while an absent key *keeps* it, and the
        bridge carries that difference to the worker (docs/PROTOCOL.md,
        "null is not absent"). Sending only what the user typed keeps the
        message equal to the user's input and keeps None for an explicit
        "clear this" (see ``ProfileEditForm``). ``profile_type`` is always
        present: its select has no empty choice.
        """
        data = {"profile_type": self.cleaned_data["profile_type"]}
        for key in ("sex", "birthdate"):
            value = self.cleaned_data.get(key)
            if value not in (None, ""):
                data[key] = value
        return data


class ProfileEditForm(ProfileFields):
    """Edit an existing profile; built with ``initial`` = the stored values."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # A stored value outside ``choices`` (an older "O", or anything saved
        # without full_clean) stays selectable: otherwise the select would
        # show another option and saving the form would overwrite the value.
        for name in ("profile_type", "sex"):
            field = self.fields[name]
            value = self.initial.get(name)
            if value not in (None, "") and value not in dict(field.choices):
                field.choices = [*field.choices, (value, f"{value} (stored value)")]

    def profile_data(self):
        """``_profile_data`` for the update: only the fields that changed.

        An unchanged field is absent, so the receiver keeps the stored value;
        a field the user emptied is sent as None, so the receiver clears it.
        """
        data = {}
        for key in self.changed_data:
            value = self.cleaned_data.get(key)
            data[key] = None if value == "" else value
        return data
