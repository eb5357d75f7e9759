"""Prepares the test IdP: schema, the test user, and the registered clients (a public app using
authorization code + PKCE, a confidential app behind django-oauth-toolkit's consent screen, a
confidential service using client credentials, a confidential app using
the password grant, and a public device using the device authorization grant).

Usage: python setup_idp.py <redirect-uri> [<redirect-uri> ...]
"""
import os
import sys

import django

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idp.settings")
django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Group  # noqa: E402
from django.core.management import call_command  # noqa: E402
from oauth2_provider.models import get_application_model  # noqa: E402

call_command("migrate", verbosity=0)
User = get_user_model()
user, _ = User.objects.get_or_create(username="alice")
user.set_password("wonderland")
user.email = "alice@example.com"
user.first_name, user.last_name = "Alice", "Liddell"
user.save()
sales, _ = Group.objects.get_or_create(name="sales")
user.groups.add(sales)
# A second person, who is no approver.
mallory, _ = User.objects.get_or_create(username="mallory")
mallory.set_password("looking-glass")
mallory.email = "mallory@example.com"
mallory.save()
Application = get_application_model()


def register(client_id, name, grant, secret=None, redirect_uris="", **extra):
    Application.objects.filter(client_id=client_id).delete()
    Application.objects.create(
        client_id=client_id,
        name=name,
        client_type=Application.CLIENT_CONFIDENTIAL if secret else Application.CLIENT_PUBLIC,
        **({"client_secret": secret} if secret else {}),
        authorization_grant_type=grant,
        redirect_uris=redirect_uris,
        algorithm=Application.RS256_ALGORITHM,
        user=user,
        **extra,
    )


secret = os.environ["E2E_SERVICE_SECRET"]
register("e2e-app", "E2E App", Application.GRANT_AUTHORIZATION_CODE, redirect_uris=" ".join(sys.argv[1:]),
         skip_authorization=True)
# As django-oauth-toolkit ships: a confidential client that shows the consent screen, which posts the
# authorization parameters back to /o/authorize/ with the query kept.
register("e2e-consent", "E2E Consent App", Application.GRANT_AUTHORIZATION_CODE, secret=secret,
         redirect_uris=" ".join(sys.argv[1:]))
register("e2e-service", "E2E Service", Application.GRANT_CLIENT_CREDENTIALS, secret=secret)
register("e2e-password", "E2E Password", Application.GRANT_PASSWORD, secret=secret)
register("e2e-device", "E2E Device", Application.GRANT_DEVICE_CODE)
# ScopeGate's own registration, through which approvers sign in to its approval page; an organisation's
# first-party client, so without a consent screen.
if os.environ.get("E2E_APPROVALS_REDIRECT"):
    register("e2e-approvals", "ScopeGate approvals", Application.GRANT_AUTHORIZATION_CODE, secret=secret,
             redirect_uris=os.environ["E2E_APPROVALS_REDIRECT"], skip_authorization=True)
print("idp ready")
