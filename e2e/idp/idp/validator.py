"""django-oauth-toolkit's validator, with the standard claims its documentation shows how to add:
the user's name, email address and groups in the ID token when the `profile` scope is granted."""
from oauth2_provider.oauth2_validators import OAuth2Validator


class Validator(OAuth2Validator):
    oidc_claim_scope = dict(OAuth2Validator.oidc_claim_scope, email="profile", email_verified="profile", groups="profile")

    def get_additional_claims(self, request):
        user = request.user
        return {
            "name": user.get_full_name() or user.username,
            "preferred_username": user.username,
            "email": user.email,
            "email_verified": bool(user.email),
            "groups": sorted(group.name for group in user.groups.all()),
        }
