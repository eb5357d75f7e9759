"""Prepares the test IdP: schema, the test user, and the registered clients (a public app using
authorization code + PKCE, a confidential service using client credentials, a confidential app using
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
from django.core.management import call_command  # noqa: E402
from oauth2_provider.models import get_application_model  # noqa: E402

call_command("migrate", verbosity=0)
User = get_user_model()
user, _ = User.objects.get_or_create(username="alice")
user.set_password("wonderland")
user.save()
Application = get_application_model()
Application.objects.filter(client_id="e2e-app").delete()
Application.objects.create(
    client_id="e2e-app",
    name="E2E App",
    client_type=Application.CLIENT_PUBLIC,
    authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
    redirect_uris=" ".join(sys.argv[1:]),
    skip_authorization=True,
    algorithm=Application.RS256_ALGORITHM,
    user=user,
)
Application.objects.filter(client_id="e2e-service").delete()
Application.objects.create(
    client_id="e2e-service",
    client_secret=os.environ["E2E_SERVICE_SECRET"],
    name="E2E Service",
    client_type=Application.CLIENT_CONFIDENTIAL,
    authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
    redirect_uris="",
    algorithm=Application.RS256_ALGORITHM,
    user=user,
)
Application.objects.filter(client_id="e2e-password").delete()
Application.objects.create(
    client_id="e2e-password",
    client_secret=os.environ["E2E_SERVICE_SECRET"],
    name="E2E Password",
    client_type=Application.CLIENT_CONFIDENTIAL,
    authorization_grant_type=Application.GRANT_PASSWORD,
    redirect_uris="",
    algorithm=Application.RS256_ALGORITHM,
    user=user,
)
Application.objects.filter(client_id="e2e-device").delete()
Application.objects.create(
    client_id="e2e-device",
    name="E2E Device",
    client_type=Application.CLIENT_PUBLIC,
    authorization_grant_type=Application.GRANT_DEVICE_CODE,
    redirect_uris="",
    algorithm=Application.RS256_ALGORITHM,
    user=user,
)
print("idp ready")
