from django.contrib.auth import authenticate, login
from django.http import HttpResponse, HttpResponseRedirect
from django.urls import include, path
from django.utils.html import escape
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def login_view(request):
    """A plain sign-in form, enough for a browser (or a test) to sign in as the test user."""
    next_url = request.POST.get("next") or request.GET.get("next") or "/"
    error = ""
    if request.method == "POST":
        user = authenticate(request, username=request.POST.get("username"), password=request.POST.get("password"))
        if user is not None:
            login(request, user)
            if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
                next_url = "/"
            return HttpResponseRedirect(next_url)
        error = "<p id='error'>Wrong username or password.</p>"
    return HttpResponse(
        f"""<!doctype html><html lang="en"><head><title>Sign in</title></head><body>
        <h1>Sign in to the test IdP</h1>{error}
        <form method="post" action="/accounts/login/">
        <input type="hidden" name="next" value="{escape(next_url)}">
        <label>Username <input id="username" name="username"></label>
        <label>Password <input id="password" name="password" type="password"></label>
        <button id="signin" type="submit">Sign in</button></form></body></html>"""
    )


urlpatterns = [
    path("accounts/login/", login_view),
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
]
