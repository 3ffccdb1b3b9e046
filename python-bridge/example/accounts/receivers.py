"""The reference receiver: the Swift ProfileReceiver is a port of this.

Keep the logic verbatim; the contract vectors run it as the oracle.
"""

from .models import UserProfile


def create_or_update_user_profile(sender, instance, created, **kwargs):
    if created:
        profile_data = getattr(instance, '_profile_data', {})
        UserProfile.objects.create(user=instance,
            profile_type=profile_data.get('profile_type', UserProfile._meta.get_field('profile_type').default),
            sex=profile_data.get('sex', None),
            birthdate=profile_data.get('birthdate', None))
    else:
        if hasattr(instance, 'profile'):
            profile_data = getattr(instance, '_profile_data', {})
            instance.profile.profile_type = profile_data.get('profile_type', instance.profile.profile_type)
            instance.profile.sex = profile_data.get('sex', instance.profile.sex)
            instance.profile.birthdate = profile_data.get('birthdate', instance.profile.birthdate)
            instance.profile.save()
