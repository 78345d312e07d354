"""Fail fast when the Hugging Face Hub cannot be used, before any library call that would retry.

`require_hub(resource, alternatives)` raises `UserError` at once when HF_HUB_OFFLINE or
HF_DATASETS_OFFLINE is set to a true value: 1, ON, YES or TRUE in any case, as huggingface_hub reads
them. Otherwise it raises when the hub host does not accept a TCP connection within `CONNECT_TIMEOUT_S`
seconds. The host is the one in HF_ENDPOINT, else huggingface.co, on the URL's port (443 for https).
Every hub-backed loader calls it first, so an offline run ends in seconds with a message that names the
offline alternatives.
"""

import logging
import os
import socket
import threading
from urllib.parse import urlsplit

from ..errors import UserError

log = logging.getLogger("idattn")

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
TRUE_VALUES = {"1", "ON", "YES", "TRUE"}
DEFAULT_ENDPOINT = "https://huggingface.co"
CONNECT_TIMEOUT_S = 3.0


def offline_variable() -> str | None:
    """Return `NAME=value` of the first offline variable set to a true value, or None."""
    for name in OFFLINE_VARIABLES:
        value = os.environ.get(name)
        if value is not None and value.strip().upper() in TRUE_VALUES:
            return f"{name}={value}"
    return None


def hub_address() -> tuple[str, int]:
    """Return (host, port) of the hub: HF_ENDPOINT if set, else huggingface.co on port 443."""
    url = urlsplit(os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT)
    port = url.port or (80 if url.scheme == "http" else 443)
    return url.hostname or "huggingface.co", port


def require_hub(resource: str, alternatives: str) -> None:
    """Raise UserError unless the hub is usable: offline mode is off and its host accepts a connection.

    `resource` names what needs the hub, e.g. "dataset HuggingFaceFW/fineweb-edu (sample-10BT)".
    `alternatives` is the rest of the message: what to do without the hub.
    """
    offline = offline_variable()
    if offline:
        raise UserError(f"cannot reach the Hugging Face Hub for {resource}: {offline} is set; {alternatives}")
    host, port = hub_address()
    error = connection_error(host, port, CONNECT_TIMEOUT_S)
    if error is not None:
        reason = f"no connection to {host}:{port} within {CONNECT_TIMEOUT_S:g} s ({error})"
        raise UserError(f"cannot reach the Hugging Face Hub for {resource}: {reason}; {alternatives}")
    log.debug("hub %s:%d is reachable for %s", host, port, resource)


def connection_error(host: str, port: int, timeout_s: float) -> str | None:
    """Open and close a TCP connection; return None on success, else the error as text.

    The attempt runs in a daemon thread because the socket timeout does not bound the DNS lookup, and a
    stalled resolver must not hold up the caller (or the interpreter's exit) beyond `timeout_s`.
    """
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                outcome.append(None)
        except OSError as error:
            outcome.append(str(error) or type(error).__name__)

    thread = threading.Thread(target=connect, name="idattn-hub-check", daemon=True)
    thread.start()
    thread.join(timeout_s)
    return outcome[0] if outcome else "timed out"
