"""Prove the report page in headless Chromium, as `make web-check` proves a web bundle: it loads with
no console error, no page error and no request for anything outside its own folder (file: URLs beside
it), and its full-page screenshot lands beside it (``index.png``)."""
from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from edgeport.errors import EdgeportError

DRIVER = Path(__file__).with_name("page.mjs")
SCREENSHOT = "index.png"


def prove_page(index: Path, *, timeout: float = 120.0) -> dict[str, Any]:
    """``index`` opened in Chromium: its problems (empty when it passes), requests, failing rows, screenshot.

    EdgeportError when Chromium, node or puppeteer-core is missing (``make web-deps`` installs them)."""
    from edgeport.benchmarks.devices.web_check import chromium, puppeteer

    index = Path(index).resolve()
    shot = index.with_name(SCREENSHOT)
    with tempfile.TemporaryDirectory(prefix="edgeport-page-") as tmp:
        jp, rp = Path(tmp) / "job.json", Path(tmp) / "result.json"
        jp.write_text(json.dumps({"puppeteer": str(puppeteer()), "chromium": chromium(), "url": index.as_uri(),
                                  "screenshot": str(shot), "timeout_ms": int(timeout * 1000)}))
        try:
            done = subprocess.run(["node", str(DRIVER), str(jp), str(rp)], capture_output=True, text=True,
                                  timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EdgeportError(f"{index}: the browser did not open the page ({exc})") from None
        if not rp.is_file():
            raise EdgeportError(f"{index}: the page driver failed (exit {done.returncode}): "
                                + (done.stderr.strip().splitlines() or ["no output"])[-1])
        page = json.loads(rp.read_text())
    folder = index.parent.as_uri() + "/"
    outside = [u for u in page["requests"] if not u.startswith(folder)]
    problems = ([f"console {m['type']}: {m['text']}" for m in page["console"] if m["type"] in ("error", "warn")]
                + [f"page error: {e}" for e in page["page_errors"]]
                + [f"request outside the report folder: {u}" for u in outside]
                + [f"request failed: {e}" for e in page["failed_requests"]]
                + ([f"driver: {page['error'].splitlines()[0]}"] if page.get("error") else []))
    return {"browser": page.get("browser"), "requests": len(page["requests"]), "failing_rows": page.get("failing_rows"),
            "screenshot": str(shot) if shot.is_file() else None, "problems": problems, "ok": not problems}
