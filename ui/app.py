"""The run explorer's web app: routes, templates, static files and the safety net around them.

Pages are rendered on the server (Jinja2, autoescaped) from what ``runs/`` reads; the browser gets HTML plus
small vendored scripts that draw graphs (dagre) and curves (uPlot) from JSON embedded in the page, and htmx that
refreshes a running run's graph. Handlers live in ``ui/pages.py``.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from markupsafe import Markup
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runs.catalog import RunCatalog
from runs.store import SharedReader, reader_for
from ui import security
from ui.explorer import Explorer
from ui.settings import UiSettings

UI_DIR = Path(__file__).resolve().parent


def templates() -> Jinja2Templates:
    """The page templates, with the filters they format numbers, times and states with."""
    result = Jinja2Templates(directory=str(UI_DIR / "templates"))
    env = result.env
    env.filters["seconds"] = _seconds
    env.filters["when"] = _when
    env.filters["number"] = _number
    env.filters["state_class"] = lambda state: "state-" + str(state).replace(" ", "-")
    env.filters["json_script"] = _json_script
    return result


def create_app(settings: UiSettings, store: SharedReader | None = None) -> Starlette:
    """The explorer for ``settings``; ``store`` defaults to the config's ML Metadata store, read-only."""
    from ui import evidence, pages

    store = store or reader_for(settings.config)
    explorer = Explorer(settings, store, RunCatalog(store, settings.config.pipeline.name))
    app = Starlette(
        routes=[
            Route("/", pages.runs_list, name="runs"),
            Route("/runs/{run_id}", pages.run_page, name="run"),
            Route("/runs/{run_id}/graph", pages.run_graph_fragment, name="run_graph"),
            Route("/runs/{run_id}/log", pages.run_log, name="run_log"),
            Route("/runs/{run_id}/stop", pages.stop_run, methods=["POST"], name="stop"),
            Route("/runs/{run_id}/nodes/{node_id}", pages.node_page, name="node"),
            Route("/runs/{run_id}/models", evidence.models_page, name="run_models"),
            Route("/runs/{run_id}/schemas", evidence.schemas_page, name="run_schemas"),
            Route("/artifacts/{artifact_id:int}", evidence.artifact_page, name="artifact"),
            Route("/artifacts/{artifact_id:int}/lineage", evidence.lineage_page, name="lineage"),
            Route("/compare", evidence.compare_page, name="compare"),
            Route("/new", pages.new_run, methods=["GET", "POST"], name="new_run"),
            Mount("/static", StaticFiles(directory=str(UI_DIR / "static")), name="static"),
        ],
        middleware=[
            Middleware(TrustedHostMiddleware, allowed_hosts=security.allowed_hosts(settings)),
            Middleware(_SecurityHeaders),
        ],
        exception_handlers={404: _not_found, 500: _server_error},
    )
    app.state.explorer = explorer
    app.state.templates = templates()
    return app


class _SecurityHeaders:
    """Adds ``security.SECURITY_HEADERS`` to every answer."""

    def __init__(self, app: ASGIApp):
        self.app = app
        self.headers = [(key.lower().encode(), value.encode()) for key, value in security.SECURITY_HEADERS.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *self.headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _not_found(request: Request, exc: Exception) -> Response:
    detail = getattr(exc, "detail", "") or "no such page"
    return _error_page(request, 404, "Not found", str(detail))


async def _server_error(request: Request, exc: Exception) -> Response:
    return _error_page(request, 500, "Something went wrong", f"{type(exc).__name__}: {exc}")


def _error_page(request: Request, status: int, title: str, detail: str) -> Response:
    page = request.app.state.templates.get_template("error.html")
    html = page.render(request=request, title=title, detail=detail, explorer=request.app.state.explorer)
    return HTMLResponse(html, status_code=status)


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    if value < 60:
        return f"{value:.1f} s"
    minutes, seconds = divmod(int(round(value)), 60)
    return f"{minutes} min {seconds:02d} s"


def _when(milliseconds: int | float | None) -> str:
    if not milliseconds:
        return ""
    return datetime.datetime.fromtimestamp(milliseconds / 1000).strftime("%Y-%m-%d %H:%M:%S")


def _number(value: Any, digits: int = 4) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        # Whole numbers (counts, ids such as census tracts) read better without decimals.
        return f"{value:.0f}" if value.is_integer() else f"{value:.{digits}f}"
    return str(value)


def _json_script(value: Any, element_id: str) -> Markup:
    """Data for the page's scripts, in a non-executable block that cannot end early (``<`` is escaped)."""
    text = json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(f'<script type="application/json" id="{element_id}">{text}</script>')
