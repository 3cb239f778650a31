"""The gate in front of every route of the console's web app (ASGI middleware): the token, cross-site
writes, declared body sizes, and the security headers of every answer.

    Starlette(..., middleware=[Middleware(RequestGate, token=token, max_body_bytes=65536)])

A request without the token gets 401 and reaches no route (the page's `/?token=` entrance checks it
itself); a write whose Origin names another host gets 403; a body declared over max_body_bytes gets
413 (a body without a length is cut off by Starlette's RequestBodyLimitMiddleware behind the gate).
No CORS header is ever sent, so other sites' scripts cannot read an answer.
"""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse

from rns_ros.console import security

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data: blob:; "
                                 b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
]
UNAUTHORIZED_PAGE = """<!doctype html><meta charset="utf-8"><title>rns console</title>
<p>This console needs its access token. Open the URL that <code>rns_console</code> printed when it
started (<code>http://HOST:PORT/?token=...</code>), or set the token with
<code>-p token:=...</code>.</p>"""


class RequestGate:
    """The gate (see the module's docstring). Cross-site writes are refused although the page's
    SameSite=Strict cookie already keeps browsers from sending it with them."""

    def __init__(self, app, token: str, max_body_bytes: int):
        self.app, self.token, self.max_body_bytes = app, token, max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + SECURITY_HEADERS
            await send(message)

        request = Request(scope)
        entrance = scope["path"] == "/" and "token" in request.query_params
        if not entrance and not security.token_matches(security.request_token(request.headers, request.cookies),
                                                       self.token):
            if scope["path"].startswith("/api/"):
                response = JSONResponse({"error": "missing or wrong token: send 'Authorization: Bearer <token>'"},
                                        401, headers={"www-authenticate": "Bearer"})
            else:
                response = HTMLResponse(UNAUTHORIZED_PAGE, 401)
            return await response(scope, receive, send_with_headers)
        origin = request.headers.get("origin")
        if origin and request.method not in ("GET", "HEAD") and origin.split("://", 1)[-1] != request.headers.get("host"):
            response = JSONResponse({"error": f"cross-site request from {origin} refused"}, 403)
            return await response(scope, receive, send_with_headers)
        length = request.headers.get("content-length", "0")
        if not length.isdigit() or int(length) > self.max_body_bytes:
            response = JSONResponse({"error": f"request body over {self.max_body_bytes} bytes (max_body_bytes)"}, 413)
            return await response(scope, receive, send_with_headers)
        await self.app(scope, receive, send_with_headers)
