"""Records every request the IdP receives, one JSON line each: the suite's oracle for "the IdP
received nothing" when ScopeGate blocks a request."""
import json
import os
import threading

_lock = threading.Lock()


class RecordingMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.path = os.environ.get("IDP_RECORD_FILE")

    def __call__(self, request):
        if self.path:
            entry = {
                "method": request.method,
                "path": request.path,
                "query": request.META.get("QUERY_STRING", ""),
                "body": request.body.decode("utf-8", "replace") if request.method == "POST" else "",
                "host": request.META.get("HTTP_HOST", ""),
                "x_forwarded_for": request.META.get("HTTP_X_FORWARDED_FOR", ""),
            }
            with _lock, open(self.path, "a", encoding="utf-8") as log:
                log.write(json.dumps(entry) + "\n")
        return self.get_response(request)
