"""Drive the admin dashboard in headless Chromium for the Rust integration tests.

Standard library only: talks W3C WebDriver over HTTP to Debian's chromedriver.

  dashboard   --base URL --token T --screenshots DIR [--wait-moving METRIC] [--timeout 20]
  alarm       --base URL --token T --id ID --screenshots DIR
  statistics  --base URL --token T --tenant T1 --from-ms A --to-ms B --screenshots DIR
  login-fails --base URL --token WRONG

Each prints one JSON object on stdout. Errors go to stderr with a non-zero exit:
1 browser or WebDriver failure, 2 bad arguments (argparse), 3 timeout,
4 login refused or the page reported an error (no such alarm, not yours, ...).
Common options: --width (window width, 1280; 390 for a phone), --timeout (seconds).
VAKA_CHROMIUM and VAKA_CHROMEDRIVER override /usr/bin/chromium and /usr/bin/chromedriver.
"""
import argparse
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

CHROMIUM = os.environ.get("VAKA_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("VAKA_CHROMEDRIVER", "/usr/bin/chromedriver")
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"

# Never send the WebDriver calls to 127.0.0.1 through an HTTP proxy from the environment.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Failure(Exception):
    def __init__(self, message, code=1):
        super().__init__(message)
        self.code = code


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    """One chromedriver process and one session; `close` undoes both (also after errors)."""

    def __init__(self, width):
        self.proc = None
        self.session = None
        self.profile = tempfile.mkdtemp(prefix="vaka-chromium-")
        self.port = free_port()
        self.width = width
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, height=1600):
        width = self.width
        self.proc = subprocess.Popen(
            [CHROMEDRIVER, f"--port={self.port}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                if self._call("GET", "/status", timeout=2).get("ready"):
                    break
            except (OSError, Failure):
                pass
            if self.proc.poll() is not None:
                raise Failure(f"chromedriver exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise Failure("chromedriver did not become ready")
            time.sleep(0.1)
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--window-size={width},{height}", f"--user-data-dir={self.profile}"]
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
            "timeouts": {"pageLoad": 30000, "script": 30000},
        }}}
        self.session = self._call("POST", "/session", caps, timeout=60)["sessionId"]

    def _call(self, method, path, body=None, timeout=30):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json; charset=utf-8"})
        try:
            with OPENER.open(req, timeout=timeout) as r:
                payload = json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            try:
                value = json.loads(e.read()).get("value", {})
                message = f"{value.get('error')}: {value.get('message', '')[:500]}"
            except (ValueError, AttributeError):
                message = str(e)
            raise Failure(f"WebDriver {method} {path}: {message}") from None
        return payload.get("value", payload)

    def cmd(self, method, path, body=None, timeout=30):
        return self._call(method, f"/session/{self.session}{path}", body, timeout)

    def go(self, url):
        self.cmd("POST", "/url", {"url": url}, timeout=60)

    def js(self, script, *args):
        return self.cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css):
        return self.cmd("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def type(self, css, text):
        self.cmd("POST", f"/element/{self.find(css)}/value", {"text": text})

    def click(self, css):
        self.cmd("POST", f"/element/{self.find(css)}/click", {})

    def wait(self, script, timeout, what, *args):
        """Poll `script` (a function body returning a value) until it returns something truthy."""
        deadline = time.monotonic() + timeout
        last_error = ""
        while True:
            try:
                value = self.js(script, *args)
            except Failure as e:  # e.g. the page is being replaced by a navigation: poll again
                value, last_error = None, f" (last error: {e})"
            if value:
                return value
            if time.monotonic() > deadline:
                raise Failure(f"timed out after {timeout} s waiting for {what}{last_error}", 3)
            time.sleep(0.2)

    def screenshot(self, path):
        # The screenshot endpoint shows the viewport only: grow the window to the page first.
        # Twice, because a new width can re-flow the page (charts, wrapped tables).
        for _ in range(2):
            page, chrome = self.js("return [Math.ceil(document.body.scrollHeight),"
                                   " Math.max(0, window.outerHeight - window.innerHeight)]")
            self.cmd("POST", "/window/rect", {"width": self.width, "height": max(600, min(page + chrome, 12000))})
            time.sleep(0.3)  # let charts re-lay out
        png = base64.b64decode(self.cmd("GET", "/screenshot", timeout=60))
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "wb") as f:
            f.write(png)

    def close(self):
        if self.session:
            try:
                self._call("DELETE", f"/session/{self.session}", timeout=10)
            except (OSError, Failure):
                pass
            self.session = None
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        shutil.rmtree(self.profile, ignore_errors=True)


# Reads every figure: name -> float, or None when data-value is empty (no data yet).
READ_METRICS = """
const out = {};
for (const e of document.querySelectorAll('[data-metric]')) {
  const v = e.getAttribute('data-value');
  out[e.getAttribute('data-metric')] = (v === null || v === '') ? null : Number(v);
}
return out;
"""


def login(b, base, token, timeout):
    b.go(base + "/dashboard/login")
    b.wait("return !!document.getElementById('token')", timeout, "the login form")
    b.type("#token", token)
    b.click("#login")
    # Either the page we were sent to after login, or the login page again with ?failed=1.
    return b.wait(
        "const u = new URL(location.href);"
        "if (u.pathname === '/dashboard/login') return u.searchParams.get('failed') === '1' ? 'failed' : '';"
        "return document.readyState === 'complete' ? 'ok' : '';",
        timeout, "the answer to the login")


def must_login(b, args):
    if login(b, args.base, args.token, args.timeout) != "ok":
        raise Failure("login refused: unknown or revoked token", 4)


def cmd_dashboard(b, args):
    must_login(b, args)
    if urllib.parse.urlparse(b.js("return location.href")).path != "/dashboard":
        b.go(args.base + "/dashboard")
    b.wait("const e = document.getElementById('snapshot-at'); return !!(e && e.dataset.value)",
           args.timeout, "the first snapshot")
    first = b.js(READ_METRICS)
    b.screenshot(os.path.join(args.screenshots, "dashboard-1.png"))
    second = None
    if args.wait_moving:
        start = first.get(args.wait_moving)
        b.wait(READ_METRICS.replace("return out;", "return out[arguments[0]] !== undefined && out[arguments[0]] !== arguments[1];"),
               args.timeout, f"{args.wait_moving} to change from {start}", args.wait_moving, start)
        second = b.js(READ_METRICS)
        b.screenshot(os.path.join(args.screenshots, "dashboard-2.png"))
    info = b.js(
        "const at = document.getElementById('snapshot-at').dataset.value;"
        "return {scope: document.getElementById('scope').textContent,"
        " ids: [...document.querySelectorAll('#recent [data-alarm-id]')].map(e => e.dataset.alarmId),"
        " at: at ? Number(at) : null};")
    return {"first": first, "second": second, "scope": info["scope"],
            "recent_alarm_ids": info["ids"], "snapshot_at": info["at"]}


def cmd_alarm(b, args):
    shot = os.path.join(args.screenshots, "alarm-" + re.sub(r"[^A-Za-z0-9._-]", "_", args.id) + ".png")
    must_login(b, args)
    b.go(args.base + "/dashboard/alarms/" + urllib.parse.quote(args.id, safe=""))
    state = b.wait(
        "const s = document.getElementById('status');"
        "if (s && s.dataset.error) return 'error:' + s.dataset.error;"
        "return document.getElementById('timeline') && document.body.dataset.loaded === '1' ? 'ok' : '';",
        args.timeout, "#timeline")
    if state != "ok":
        b.screenshot(shot)
        raise Failure(state[len("error:"):], 4)
    out = b.js(
        "const rows = [...document.querySelectorAll('#timeline tr.audit-row')].map(r => ({"
        " actor: r.dataset.actor, action: r.dataset.action, reason: r.dataset.reason,"
        " at_ms: r.dataset.atMs === '' ? null : Number(r.dataset.atMs)}));"
        "const stages = {};"
        "for (const e of document.querySelectorAll('[data-stage]'))"
        "  stages[e.dataset.stage] = e.dataset.value === '' ? null : Number(e.dataset.value);"
        "const h1 = document.querySelector('h1');"
        "return {rows, stages, title: document.title, heading: h1 ? h1.textContent.trim() : null};")
    b.screenshot(shot)
    return out


def cmd_statistics(b, args):
    must_login(b, args)
    q = urllib.parse.urlencode({"tenant": args.tenant, "from_ms": args.from_ms, "to_ms": args.to_ms})
    b.go(args.base + "/dashboard/statistics?" + q)
    state = b.wait(
        "const s = document.getElementById('status');"
        "if (s && s.dataset.error) return 'error:' + s.dataset.error;"
        "const f = document.getElementById('figures'); return f && f.dataset.loaded === '1' ? 'ok' : '';",
        args.timeout, "the statistics figures")
    b.screenshot(os.path.join(args.screenshots, "statistics.png"))
    if state != "ok":
        raise Failure(state[len("error:"):], 4)
    return {k: v for k, v in b.js(READ_METRICS).items() if k.startswith("stats.")}


def cmd_login_fails(b, args):
    result = login(b, args.base, args.token, args.timeout)
    if result != "failed":
        return {"failed_shown": False}
    try:
        b.wait("const e = document.getElementById('failed');"
               "return !!e && !e.hidden && e.offsetParent !== null && /Unknown or revoked token/.test(e.textContent);",
               5, "the failure message")
    except Failure:
        return {"failed_shown": False}
    return {"failed_shown": True}


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, screenshots=True):
        sp.add_argument("--base", required=True, help="http://127.0.0.1:PORT")
        sp.add_argument("--token", required=True)
        sp.add_argument("--timeout", type=float, default=20.0)
        sp.add_argument("--width", type=int, default=1280, help="window width (390 for a phone)")
        if screenshots:
            sp.add_argument("--screenshots", required=True)

    d = sub.add_parser("dashboard")
    common(d)
    d.add_argument("--wait-moving", dest="wait_moving")
    a = sub.add_parser("alarm")
    common(a)
    a.add_argument("--id", required=True)
    s = sub.add_parser("statistics")
    common(s)
    s.add_argument("--tenant", required=True)
    s.add_argument("--from-ms", dest="from_ms", type=int, required=True)
    s.add_argument("--to-ms", dest="to_ms", type=int, required=True)
    lf = sub.add_parser("login-fails")
    common(lf, screenshots=False)
    args = p.parse_args(argv)
    args.base = args.base.rstrip("/")
    return args


def main(argv):
    args = parse(argv)
    # SIGTERM (e.g. the Rust test's timeout) must still run the clean-up below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    browser = None
    try:
        browser = Browser(args.width)
        browser.start()
        run = {"dashboard": cmd_dashboard, "alarm": cmd_alarm,
               "statistics": cmd_statistics, "login-fails": cmd_login_fails}[args.command]
        out = run(browser, args)
    except Failure as e:
        print(f"dashboard_browser: {e}", file=sys.stderr)
        return e.code
    except (OSError, ValueError, KeyError) as e:
        print(f"dashboard_browser: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    finally:
        if browser:
            browser.close()
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
