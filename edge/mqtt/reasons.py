"""``--mqtt``'s error texts: what TLS, the broker and the operating system said, in words,
with what to do about it (one line each; used by :mod:`edge.mqtt.config` and the sink)."""

from __future__ import annotations

import re
import socket
import ssl


def no_passphrase() -> bytes:
    """For ``load_cert_chain``: an encrypted key fails instead of prompting on a terminal."""
    return b""


def ssl_reason(e: BaseException) -> str:
    """``[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1000)`` -> the words."""
    if isinstance(e, ssl.SSLCertVerificationError) and e.verify_message:
        return f"certificate verify failed: {e.verify_message}"
    text = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
    text = re.sub(r"\s*\(_ssl\.c:\d+\)$", "", re.sub(r"^\[[^\]]*\]\s*", "", text))
    return text or type(e).__name__


def log_reason(text: str) -> str:
    """paho's ``failed to receive on socket: [SSL: X] what (_ssl.c:N)`` -> ``what``."""
    m = re.search(r"\[SSL: [A-Z0-9_]+\] (.*?)(?: \(_ssl\.c:\d+\))?$", text)
    if m:
        return m.group(1)
    return re.sub(r"^failed to receive on socket: ", "", text)


def alert_hint(reason: str) -> str:
    """What to do about a TLS alert from the broker."""
    if "certificate required" in reason:
        return "; the broker wants a client certificate: --mqtt-cert FILE (and --mqtt-key FILE)"
    if any(w in reason for w in ("unknown ca", "bad certificate", "certificate unknown",
                                 "certificate expired")):
        return "; the broker does not accept this client certificate (--mqtt-cert)"
    return ""


def tls_hint(e: BaseException, *, ca_file: str | None, host: str, port: int) -> str:
    """What to try after a TLS failure connecting to ``host:port`` (``--mqtt-ca ca_file``)."""
    if isinstance(e, ssl.SSLCertVerificationError):
        return ("; give the CA that signed the broker's certificate with --mqtt-ca FILE"
                if ca_file is None else
                f"; is --mqtt-ca {ca_file} the CA that signed the broker's certificate,"
                f" for the name {host!r}?")
    if "wrong version number" in ssl_reason(e):
        return f"; is {port} a TLS port? (plain MQTT is mqtt://)"
    return ""


def os_reason(e: BaseException) -> str:
    if isinstance(e, socket.gaierror):
        return f"unknown host: {e.strerror}"
    if isinstance(e, TimeoutError):
        return "timed out"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__
