"""Webhook notification: POST the nightly summary as JSON. Never fails the run.

Bounded: `retries` extra attempts with exponential backoff, each with a timeout covering
connect and read. TLS is verified (system CAs, or the configured ca_bundle). The URL is never
logged whole: webhook URLs often carry a token in their path or query.
"""

from __future__ import annotations

import json
import logging
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from plumbing.redact import register_secret

log = logging.getLogger("okdbench.nightly.notify")


def safe_url(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/…"


def post_summary(
    url: str,
    summary: dict[str, Any],
    *,
    timeout: float = 10.0,
    retries: int = 3,
    backoff: float = 2.0,
    ca_bundle: Path | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """POST `summary`; True when the webhook answered 2xx. Logs a warning and returns False otherwise."""
    # The path/query of a webhook URL is a bearer secret (Slack, Teams, Mattermost).
    parts = urlsplit(url)
    if parts.path.strip("/") or parts.query:
        register_secret(parts.path + ("?" + parts.query if parts.query else ""))
    where = safe_url(url)
    body = json.dumps(summary, sort_keys=True, default=str).encode()
    context = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)
    attempts = retries + 1
    last_error = ""
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(
            url, data=body, method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "okdbench-nightly"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
                response.read(65536)
                log.info("notified %s (HTTP %d, attempt %d)", where, response.status, attempt)
                return True
        except urllib.error.HTTPError as exc:
            last_error = f"HTTP {exc.code}"
            if 400 <= exc.code < 500 and exc.code not in (408, 425, 429):
                break  # the request itself is wrong: retrying repeats the same answer
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            last_error = " ".join(str(reason).split()) or type(exc).__name__
        except Exception as exc:  # noqa: BLE001 - a notification must never take the run down
            last_error = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        if attempt < attempts:
            delay = backoff * 2 ** (attempt - 1)
            log.info("webhook %s failed (%s); retry %d/%d in %.1fs", where, last_error, attempt, retries, delay)
            sleep(delay)
    log.warning("webhook %s: notification not delivered after %d attempt(s): %s; the run result is unaffected",
                where, attempt, last_error)
    return False
