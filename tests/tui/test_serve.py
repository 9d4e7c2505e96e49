"""`rttui serve` is closed by default: token, Host and Origin checks, page URLs on the asked-for host, no asset
from another host, `--read-only`; and a real browser (Debian's chromium) drives the served app."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from rttui.tui.serve import SafeServer, _ScrubToken, tui_command
from tests.tui.conftest import DEMO_STUDY, write_demo_db

URL_IN_TEXT = re.compile(r"""\b(?:https?|wss?)://[^\s"'<>)]+""")


# ---- a real `rttui serve` process on a free port ---------------------------------------------------------------
@dataclass
class Served:
    proc: subprocess.Popen
    url: str  # the tokened URL the server printed
    token: str
    port: int
    root: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def run_serve(root: Path, *extra: str) -> Iterator[Served]:
    """Start `python -m rttui serve` on the demo database and wait for the URL it prints."""
    port = _free_port()
    cmd = [sys.executable, "-m", "rttui", "serve", "--db", "demo.db", "--studies", "studies"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), *extra]
    proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = ""
        deadline = time.monotonic() + 60
        while not url and time.monotonic() < deadline:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            if not line and proc.poll() is not None:
                break
            if line.startswith("open "):
                url = line.split()[1]
        assert url, f"rttui serve printed no URL (exit {proc.poll()})"
        token = url.split("token=", 1)[1]
        # Keep reading its output so a full pipe never blocks the server.
        import threading

        threading.Thread(target=proc.stdout.read, daemon=True).start()  # type: ignore[union-attr]
        yield Served(proc, url, token, port, root)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("serve")
    (root / "studies").mkdir()
    f = root / "studies" / "demo.toml"
    f.write_text(DEMO_STUDY)
    write_demo_db(root / "demo.db", f)
    return root


@pytest.fixture(scope="module")
def served(demo_root: Path) -> Iterator[Served]:
    with run_serve(demo_root) as s:
        yield s


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


# ---- HTTP -----------------------------------------------------------------------------------------------------
def test_serve_prints_a_tokened_url_and_the_page_needs_it(served: Served) -> None:
    assert served.url == f"http://127.0.0.1:{served.port}/?token={served.token}"
    assert len(served.token) >= 40  # secrets.token_urlsafe(32)
    status, headers, body = _get(served.url)
    assert status == 200 and 'id="terminal"' in body
    cookie = headers["Set-Cookie"]
    assert f"rttui-token-{served.port}={served.token}" in cookie
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    for bad in (f"{served.base}/", f"{served.base}/?token=wrong", f"{served.base}/?token={served.token[:-1]}"):
        status, _, body = _get(bad)
        assert status == 403 and "token" in body, bad
    # the page's own follow-up requests carry the cookie instead of the token
    assert _get(f"{served.base}/static/js/textual.js")[0] == 403
    cookie_header = {"Cookie": f"rttui-token-{served.port}={served.token}"}
    assert _get(f"{served.base}/static/js/textual.js", cookie_header)[0] == 200
    assert _get(f"{served.base}/static/js/textual.js", {"Cookie": f"rttui-token-{served.port}=x"})[0] == 403


def test_serve_refuses_a_foreign_host_header(served: Served) -> None:
    for host in ("evil.example.com", f"evil.example.com:{served.port}", "10.1.2.3"):
        status, _, body = _get(served.url, {"Host": host})
        assert status == 403 and "Host" in body, host
    # every name of the loopback interface it listens on is served
    for host in (f"localhost:{served.port}", f"127.0.0.1:{served.port}"):
        assert _get(served.url, {"Host": host})[0] == 200, host


def test_serve_page_names_no_other_host(served: Served) -> None:
    _, _, page = _get(served.url)
    urls = URL_IN_TEXT.findall(page)
    assert urls, "the page should name its scripts and websocket"
    assert {urlsplit(u).netloc for u in urls} == {f"127.0.0.1:{served.port}"}, urls
    assert f"ws://127.0.0.1:{served.port}/ws" in urls
    # the font textual-serve's template pulled from Google is served from here
    assert "googleapis" not in page and "/static/fonts/RobotoMono" in page
    # the URLs follow the Host the browser asked for
    _, _, page = _get(served.url, {"Host": f"localhost:{served.port}"})
    assert {urlsplit(u).netloc for u in URL_IN_TEXT.findall(page)} == {f"localhost:{served.port}"}


async def _ws(url: str, origin: str | None) -> str:
    """Open the websocket; 'refused NNN' on a failed handshake, else the first bytes the app sent."""
    async with aiohttp.ClientSession() as session:
        try:
            ws = await session.ws_connect(url, origin=origin, timeout=aiohttp.ClientWSTimeout(ws_close=5))
        except aiohttp.WSServerHandshakeError as exc:
            return f"refused {exc.status}"
        async with ws:
            msg = await ws.receive(timeout=60)  # the app process starts and draws its first frame
            return f"accepted {msg.type.name}"


async def test_serve_websocket_needs_token_and_own_origin(served: Served) -> None:
    ws = f"ws://127.0.0.1:{served.port}/ws?token={served.token}&width=80&height=24"
    own = f"http://127.0.0.1:{served.port}"
    assert await _ws(ws, "http://evil.example.com") == "refused 403"
    assert await _ws(ws, f"http://evil.example.com:{served.port}") == "refused 403"
    assert await _ws(ws, f"http://127.0.0.1:{served.port + 1}") == "refused 403"  # another local server's page
    assert await _ws(ws, None) == "refused 403"  # browsers always send Origin on a websocket
    assert await _ws(ws.replace(served.token, "wrong"), own) == "refused 403"
    assert (await _ws(ws, own)).startswith("accepted")


# ---- the checks in process: --host 0.0.0.0, --public-url, the log --------------------------------------------
@contextlib.asynccontextmanager
async def _client(server: SafeServer):
    client = TestClient(TestServer(await server._make_app(), host="127.0.0.1"))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def test_serve_on_every_interface_points_the_page_at_the_asked_host() -> None:
    server = SafeServer("true", host="0.0.0.0", port=8000, token="t0k")
    async with _client(server) as client:
        r = await client.get("/?token=t0k", headers={"Host": "192.168.1.20:8000"})
        page = await r.text()
        assert r.status == 200
        assert {urlsplit(u).netloc for u in URL_IN_TEXT.findall(page)} == {"192.168.1.20:8000"}
        assert "0.0.0.0" not in page
        assert (await client.get("/", headers={"Host": "192.168.1.20:8000"})).status == 200  # the cookie it set
        client.session.cookie_jar.clear()
        assert (await client.get("/", headers={"Host": "192.168.1.20:8000"})).status == 403
    assert server.urls()[1] == "http://127.0.0.1:8000/?token=t0k"


async def test_serve_public_url_is_used_and_allowed() -> None:
    server = SafeServer("true", host="127.0.0.1", port=8000, public_url="https://example.org/rttui/", token="t0k")
    async with _client(server) as client:
        r = await client.get("/?token=t0k", headers={"Host": "example.org"})
        page = await r.text()
        assert r.status == 200
        urls = URL_IN_TEXT.findall(page)
        assert "wss://example.org/rttui/ws" in urls
        assert all(u.startswith(("https://example.org/rttui/static/", "wss://example.org/rttui/ws")) for u in urls)
        cookie = r.headers["Set-Cookie"]
        assert "Secure" in cookie and "Path=/rttui" in cookie
        assert (await client.get("/?token=t0k", headers={"Host": "other.example.org"})).status == 403
    assert server.urls() == ["https://example.org/rttui/?token=t0k"]


def test_serve_rejects_a_public_url_that_is_not_http(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "rttui", "serve", "--port", str(_free_port()), "--public-url", "example.org"]
    res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.count("\n") == 1 and "--public-url 'example.org'" in res.stderr


def test_serve_on_a_busy_port_says_so_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cmd = [sys.executable, "-m", "rttui", "serve", "--host", "127.0.0.1", "--port", str(port)]
        res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "token=" not in res.stdout  # no URL printed for a server that never listened
    assert res.stderr.count("\n") == 1 and f"127.0.0.1:{port}" in res.stderr and "--port" in res.stderr


def test_serve_draws_a_new_token_each_start() -> None:
    a, b = SafeServer("true"), SafeServer("true")
    assert a.token != b.token and len(a.token) >= 40


def test_serve_access_log_hides_the_token() -> None:
    rec = logging.LogRecord("aiohttp.access", logging.INFO, "", 0, 'GET /ws?token=s3cret&width=80 HTTP/1.1"', (), None)
    _ScrubToken().filter(rec)
    assert "s3cret" not in rec.getMessage() and "width=80" in rec.getMessage()


def test_serve_command_runs_the_tui_read_only_when_asked(tmp_path: Path) -> None:
    cmd = tui_command(tmp_path / "x.db", Path("studies"), read_only=True)
    assert "-m rttui tui" in cmd and str(tmp_path / "x.db") in cmd and cmd.endswith("--read-only")
    assert "--read-only" not in tui_command(None, Path("studies"), read_only=False)


# ---- a real browser --------------------------------------------------------------------------------------------
CHROMIUM = "/usr/bin/chromium"
ANSI = re.compile(rb"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[()][A-Za-z0-9]|\x1b[=>]|\x1b\][^\x07]*\x07")


@pytest.fixture
def chromium() -> str:
    """Debian's chromium (playwright's own browser download is not reachable here), or a skip that says why."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright): the real-browser test of rttui serve")
    path = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if not path:
        pytest.skip("no chromium at /usr/bin/chromium (apt-get install chromium): the real-browser test cannot run")
    return path


@pytest.mark.slow
def test_serve_in_a_real_browser_shows_studies_then_results(chromium: str, served: Served, tmp_path: Path) -> None:
    """Open the tokened URL in headless chromium, wait for the Studies screen, open the study, press 4 and see
    the Results table. xterm.js draws on a canvas, so the text is read from the websocket frames the page
    received (what xterm drew), and a screenshot must not be blank."""
    from playwright.sync_api import sync_playwright

    frames: list[bytes] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            tmp_path / "profile",  # a fresh --user-data-dir
            executable_path=chromium,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
            viewport={"width": 1100, "height": 700},
        )
        try:
            page = browser.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.on(
                "websocket",
                lambda ws: ws.on("framereceived", lambda f: frames.append(f if isinstance(f, bytes) else f.encode())),
            )

            def screen_text() -> str:
                return ANSI.sub(b"", b"".join(frames)).decode("utf-8", "replace")

            def wait_text(*words: str, after: str = "", timeout: float = 60) -> None:
                """Wait until the app has drawn every word (after the text `after`, when given)."""
                deadline = time.monotonic() + timeout
                while True:
                    text = screen_text()
                    text = text[text.index(after) :] if after in text else ("" if after else text)
                    if all(w in text for w in words):
                        return
                    assert time.monotonic() < deadline, f"never saw {words}; last: {screen_text()[-400:]!r}"
                    page.wait_for_timeout(200)

            assert page.goto(served.url).status == 200
            wait_text("Studies", "demo", "Launch")
            page.click("#terminal")
            page.keyboard.press("Enter")  # open the study (its monitor)
            wait_text("Monitor")
            frames.clear()
            page.keyboard.press("4")
            # the Results screen's title, then its note and its table's rows (drawn after the title)
            wait_text("vs the baseline", "feature_extraction", "layer_freezing", after="rttui — Results")
            assert page.evaluate("document.body.classList.contains('-first-byte')")  # xterm drew the app
            png = page.screenshot(path=str(tmp_path / "results.png"))
        finally:
            browser.close()
    assert {urlsplit(u).netloc for u in requests} == {f"127.0.0.1:{served.port}"}, requests
    from PIL import Image

    colors = Image.open(io.BytesIO(png)).convert("RGB").getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 20  # text was drawn: a blank or splash page has a handful
