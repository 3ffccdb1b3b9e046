"""The demo's pages: sign up, see and edit a profile.

The views never write ``UserProfile``. They do what the original project's
sign-up did: put the profile data on ``user._profile_data`` and call
``user.save()``; the ``post_save`` receiver writes the profile. With
``ACCOUNTS_RECEIVER=bridge`` that is the Swift worker, reached through
``signal_bridge`` after the request's transaction commits (ATOMIC_REQUESTS).
"""

from django.contrib.auth import get_user_model
from django.shortcuts import redirect, render

from .forms import ProfileEditForm, SignUpForm
from .models import UserProfile

RECENT_USERS = 20


def _not_found(request, username):
    """The styled 404 page (templates/404.html) for an unknown username.

    Rendered here rather than raised as ``Http404``: with ``DEBUG`` on, as in
    ``scripts/demo``, Django answers ``Http404`` with its debug page. Other
    unknown URLs get the same template from Django's own handler when
    ``DEBUG`` is off.
    """
    return render(request, "404.html", {"username": username}, status=404)


def _user_or_none(username):
    return get_user_model().objects.filter(username=username).first()


def _profile_or_none(user):
    try:
        return user.profile
    except UserProfile.DoesNotExist:
        return None


def home(request):
    users = (
        get_user_model()
        .objects.select_related("profile")
        .order_by("-date_joined", "-pk")[:RECENT_USERS]
    )
    rows = [(user, _profile_or_none(user)) for user in users]
    return render(request, "accounts/home.html", {"rows": rows})


def signup(request):
    if request.method == "POST":
        form = SignUpForm(request.POST)
        if form.is_valid():
            user = get_user_model()(username=form.cleaned_data["username"])
            user.set_password(form.cleaned_data["password"])
            user._profile_data = form.profile_data()
            user.save()  # post_save, created=True: the receiver creates the profile
            return redirect("accounts:profile", username=user.username)
    else:
        form = SignUpForm()
    return render(request, "accounts/signup.html", {"form": form})


def profile(request, username):
    user = _user_or_none(username)
    if user is None:
        return _not_found(request, username)
    return render(
        request,
        "accounts/profile.html",
        {"profile_user": user, "profile": _profile_or_none(user)},
    )


def profile_edit(request, username):
    user = _user_or_none(username)
    if user is None:
        return _not_found(request, username)
    current = _profile_or_none(user)
    if current is None:
        # The receiver's update branch skips users without a profile: say so
        # instead of offering a form whose data would be dropped.
        return render(
            request, "accounts/profile_edit.html", {"profile_user": user, "form": None}, status=409
        )
    initial = {key: getattr(current, key) for key in ("profile_type", "sex", "birthdate")}
    if request.method == "POST":
        form = ProfileEditForm(request.POST, initial=initial)
        if form.is_valid():
            data = form.profile_data()
            if data:
                user._profile_data = data
                user.save()  # post_save, created=False: the receiver's update branch
            return redirect("accounts:profile", username=user.username)
    else:
        form = ProfileEditForm(initial=initial)
    return render(request, "accounts/profile_edit.html", {"profile_user": user, "form": form})
