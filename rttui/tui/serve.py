"""`rttui serve`: the app in a web browser, closed to everyone but the person holding the URL it prints.

textual-serve runs one `rttui tui` process per browser tab and relays its terminal over a websocket; as shipped
it answers anyone who can reach the port, accepts a websocket from any web page (any Origin), points the page's
scripts at the address it listens on (`http://0.0.0.0:PORT` with `--host 0.0.0.0`) and pulls a font from
Google. `SafeServer` wraps its aiohttp server, as Jupyter does:

- each start draws a token (`secrets.token_urlsafe`) and prints `http://HOST:PORT/?token=...`; every request
  must carry it, in the query string or in the HttpOnly, SameSite=Strict cookie the first tokened response sets
  (textual's page builds its websocket and download URLs itself, so the cookie is how they authenticate);
- the Host header must name the served host (any host when it listens on every interface) or the
  `--public-url` host, which closes DNS rebinding; the websocket must come from this server's own page
  (its Origin matches the Host it asked for, or `--public-url`), which closes cross-site websocket hijacking;
- the page's URLs use the host the browser asked for, or `--public-url` behind a reverse proxy;
- the page loads nothing from another host (the font textual-serve ships is served from here).

It must never start an app process for a request that failed a check, nor print or log the token anywhere but
the URL it shows at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import re
import secrets
import shlex
import signal
import socket
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import web
from textual_serve.server import Server, to_int

from rttui.errors import RttuiError

TEMPLATES = Path(__file__).parent / "templates"
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "*"})
_TOKEN_IN_TEXT = re.compile(r"(token=)[^&\s\"']+")


def _hostname(netloc: str) -> str:
    """The host part of `host[:port]` (or `[v6]:port`), lower case, without brackets."""
    return (urlsplit(f"//{netloc}").hostname or "").lower()


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _origin(scheme: str, netloc: str) -> tuple[str, int | None]:
    """(hostname, port) of an origin, the port filled in from the scheme; the scheme itself is left out so a
    TLS-terminating proxy that forwards the Host header still matches."""
    parts = urlsplit(f"{scheme}://{netloc}")
    default = {"http": 80, "ws": 80, "https": 443, "wss": 443}.get(scheme)
    try:
        port = parts.port or default
    except ValueError:
        port = None
    return ((parts.hostname or "").lower(), port)


def check_public_url(public_url: str | None) -> str | None:
    """`--public-url` without a trailing slash; one line naming the fix when it is not an http(s) URL."""
    if public_url is None:
        return None
    parts = urlsplit(public_url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise RttuiError(
            f"--public-url {public_url!r} is not an http(s) URL; give the address browsers use, "
            "e.g. https://example.org/rttui"
        )
    return public_url.rstrip("/")


class _ScrubToken(logging.Filter):
    """aiohttp's access log writes each request line, query string included: keep the token out of it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = _TOKEN_IN_TEXT.sub(r"\1[secret]", str(record.msg))
        return True


class SafeServer(Server):
    """textual-serve's server behind a token, a Host check and an Origin check, with a page that names only
    the host the browser asked for. `token` is for tests; `rttui serve` always draws a fresh one."""

    def __init__(
        self,
        command: str,
        host: str = "localhost",
        port: int = 8000,
        title: str = "rttui",
        public_url: str | None = None,
        token: str | None = None,
    ) -> None:
        self.given_public_url = check_public_url(public_url)
        # The parent's public_url (used by its own index page, which this class replaces) stays as it was.
        super().__init__(command, host=host, port=port, title=title, public_url=public_url, templates_path=TEMPLATES)
        self.token = token or secrets.token_urlsafe(32)
        # Cookies are per host, not per port: two servers on one machine must not overwrite each other's.
        self.cookie_name = f"rttui-token-{port}"
        names: set[str] | None = None
        if host not in WILDCARD_HOSTS:
            names = {_hostname(host) or host.lower()}
            if _is_loopback(host):
                names |= {"localhost", "127.0.0.1", "::1"}
        if names is not None and self.given_public_url:
            names.add((urlsplit(self.given_public_url).hostname or "").lower())
        self.allowed_hosts = names  # None: listening on every interface, any name that reaches it is served

    # ---- the URL people open ------------------------------------------------------------------------------
    def urls(self) -> list[str]:
        """The tokened URLs to print: the public one, else one per way of reaching this host."""
        if self.given_public_url:
            return [f"{self.given_public_url}/?token={self.token}"]
        hosts = [socket.gethostname(), "127.0.0.1"] if self.host in WILDCARD_HOSTS else [self.host]
        out = []
        for h in hosts:
            shown = f"[{h}]" if ":" in h else h
            out.append(f"http://{shown}:{self.port}/?token={self.token}")
        return out

    # ---- textual-serve hooks ----------------------------------------------------------------------------
    def initialize_logging(self) -> None:
        super().initialize_logging()
        logging.getLogger("aiohttp.access").addFilter(_ScrubToken())

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(self._guard)
        return app

    async def on_startup(self, app: web.Application) -> None:
        """textual-serve prints its banner here, before the port is bound; `serve` prints once it is."""

    def print_urls(self, *_: object) -> None:
        # Plain prints, flushed, one URL a line: people copy them and scripts (and the tests) parse them.
        print(f"rttui serve: {self.command}", flush=True)
        for url in self.urls():
            print(f"open {url}", flush=True)
        print("Press Ctrl+C to stop.", flush=True)

    def serve(self, debug: bool = False) -> None:
        """textual-serve 1.1.3's `Server.serve`, copied for two changes it has no hook for: the URL is printed once
        the port is bound (aiohttp's `print` hook, which textual-serve silences), and a port that cannot be bound
        is one line naming the fix instead of a traceback."""
        self.debug = debug
        self.initialize_logging()
        loop = asyncio.new_event_loop()
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGINT, self.request_exit)
            loop.add_signal_handler(signal.SIGTERM, self.request_exit)
        try:
            web.run_app(
                self._make_app(),
                host=self.host,
                port=self.port,
                handle_signals=False,
                loop=loop,
                print=self.print_urls,
            )
        except OSError as exc:
            raise RttuiError(
                f"rttui serve cannot listen on {self.host}:{self.port} ({exc.strerror or exc}); "
                "choose another --port or --host"
            ) from None

    @aiohttp_jinja2.template("serve.html")
    async def handle_index(self, request: web.Request) -> dict[str, Any]:
        """The page: textual-serve's, with its URLs on the host the browser asked for (or `--public-url`)."""
        base = self.given_public_url or f"{request.scheme}://{request.host}"
        ws_base = ("wss:" if base.startswith("https:") else "ws:") + base.split(":", 1)[1]
        return {
            "font_size": to_int(request.query.get("fontsize", "16"), 16),
            "app_websocket_url": f"{ws_base}/ws",
            "config": {"static": {"url": f"{base}/static/"}},
            "application": {"name": self.title},
            "ping_url": "",
        }

    # ---- the checks ------------------------------------------------------------------------------------
    def host_allowed(self, host_header: str) -> bool:
        return self.allowed_hosts is None or _hostname(host_header) in self.allowed_hosts

    def token_ok(self, request: web.Request) -> bool:
        given = request.query.get("token") or request.cookies.get(self.cookie_name) or ""
        return hmac.compare_digest(given.encode(), self.token.encode())

    def origin_ok(self, request: web.Request) -> bool:
        """A browser sends Origin with every websocket; it must be this server's own page. A missing Origin
        is refused too: only a non-browser client omits it, and it can send one."""
        origin = request.headers.get("Origin", "")
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False
        seen = _origin(parts.scheme, parts.netloc)
        allowed = {_origin(request.scheme, request.host)}
        if self.given_public_url:
            pub = urlsplit(self.given_public_url)
            allowed.add(_origin(pub.scheme, pub.netloc))
        return seen in allowed

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if not self.host_allowed(request.host):
            raise web.HTTPForbidden(
                text=f"rttui serve: Host {request.host!r} is not served here; open the URL rttui serve printed, "
                "or start it with --public-url for the address browsers use\n"
            )
        if not self.token_ok(request):
            raise web.HTTPForbidden(
                text="rttui serve: this needs the server's token; open the URL rttui serve printed (it ends in "
                "?token=...)\n"
            )
        websocket = request.headers.get("Upgrade", "").lower() == "websocket" or request.path.rstrip("/") == "/ws"
        if websocket and not self.origin_ok(request):
            origin = request.headers.get("Origin")
            came = f"from origin {origin!r}" if origin else "without an Origin header"
            raise web.HTTPForbidden(
                text=f"rttui serve: a websocket {came} is refused; only this server's own page may open one\n"
            )
        response = await handler(request)
        if response.prepared:  # a websocket, or a download already streaming
            return response
        given = request.query.get("token")
        if given and request.cookies.get(self.cookie_name) != given:
            public = urlsplit(self.given_public_url or "")
            response.set_cookie(
                self.cookie_name,
                given,
                path=public.path or "/",
                httponly=True,  # the page's scripts never see it
                samesite="Strict",  # another site's page never sends it
                secure=request.scheme == "https" or public.scheme == "https",
            )
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response


def tui_command(db: Path | None, studies: Path | None, read_only: bool) -> str:
    """The command each browser tab runs: this Python's `rttui tui` on the same database."""
    cmd = [sys.executable, "-m", "rttui", "tui"]
    if studies is not None:
        cmd += ["--studies", str(studies)]
    if db is not None:
        cmd += ["--db", str(db)]
    if read_only:
        cmd.append("--read-only")
    return shlex.join(cmd)


def serve_app(
    db: Path | None,
    studies: Path | None,
    host: str = "localhost",
    port: int = 8000,
    public_url: str | None = None,
    read_only: bool = False,
) -> None:
    """Serve the app until Ctrl+C (what `rttui serve` calls)."""
    title = "rttui (read-only)" if read_only else "rttui"
    SafeServer(tui_command(db, studies, read_only), host=host, port=port, title=title, public_url=public_url).serve()
