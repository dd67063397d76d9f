#!/usr/bin/env python3
"""Opens a responder link in headless Chromium (a phone-sized window) and presses Accept.

Standard library only; reuses dashboard_browser.py's WebDriver client.

  responder_browser.py --url URL --screenshot PATH [--accept] [--timeout 20]

Prints JSON: what the page showed before and after (heading, who, position, map link, state,
accepted by).
"""

import argparse
import json
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dashboard_browser import Browser, Failure  # noqa: E402

READ = """
const t = id => { const e = document.getElementById(id); return e ? e.textContent.trim() : null; };
const map = document.getElementById('map');
return {what: t('what'), state: t('state'), who: t('who'), position: t('position'),
        battery: t('battery'), heard: t('heard'), accepted_by: t('accepted-by'),
        map: map ? map.getAttribute('href') : null,
        accept_button: !!document.getElementById('accept'),
        close_button: !!document.getElementById('close')};
"""


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--screenshot", required=True)
    p.add_argument("--accept", action="store_true")
    p.add_argument("--timeout", type=float, default=20.0)
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    b = None
    try:
        b = Browser(390)
        b.start(height=844)
        b.go(args.url)
        b.wait("return document.getElementById('what')", args.timeout, "the alarm page")
        out = {"before": b.js(READ)}
        if args.accept:
            b.click("#accept")
            b.wait("return document.getElementById('accepted-by')", args.timeout, "the accept")
            out["after"] = b.js(READ)
        b.screenshot(args.screenshot)
    except Failure as e:
        print(f"responder_browser: {e}", file=sys.stderr)
        return e.code
    except (OSError, ValueError, KeyError) as e:
        print(f"responder_browser: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    finally:
        if b:
            b.close()
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
