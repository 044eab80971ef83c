"""What keeps the explorer safe on a laptop: only the bound host names are answered (no DNS rebinding), state
changes need a form token from this server and a same-origin request, and remote binds need the run token.
Every value shown is escaped by the templates (Jinja2's autoescape); artifact files are read only from under the
pipeline root (``runs/artifacts.py``)."""

from __future__ import annotations

import hmac

from starlette.requests import Request

from ui.settings import UiSettings

# The answer's headers on every page: no framing, no sniffing; scripts and styles from this server
# only (the graph and chart data travel as JSON in non-executable <script type="application/json"> blocks). The
# referrer stays on this site: with "no-referrer", Chrome sends "Origin: null" with its own form posts.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def allowed_hosts(settings: UiSettings) -> list[str]:
    """Host names a request may name: the bound one, and this machine's names on a loopback bind."""
    hosts = {settings.host}
    if settings.loopback:
        hosts |= {"127.0.0.1", "localhost", "::1", "[::1]"}
    return sorted(hosts)


def csrf_token(settings: UiSettings, action: str) -> str:
    """The token a form for ``action`` carries; only this server (this start) can make it."""
    return hmac.new(settings.csrf_secret.encode(), action.encode(), "sha256").hexdigest()


def check_state_change(request: Request, settings: UiSettings, action: str, form: dict[str, str]) -> str:
    """Why this state-changing request is refused, or "" when it may proceed."""
    origin = request.headers.get("origin")
    if origin is not None and origin.split("://", 1)[-1] != request.headers.get("host", ""):
        return "refused: the request came from another site"
    if not hmac.compare_digest(form.get("csrf", ""), csrf_token(settings, action)):
        return "refused: the form is out of date or not from this page; reload the page and try again"
    if not settings.loopback:
        if not settings.run_token:
            return "starting and stopping runs is off on this address (start the explorer with --run-token)"
        if not hmac.compare_digest(form.get("token", ""), settings.run_token):
            return "refused: wrong run token"
    return ""
