"""Publish ``listen``'s results to an MQTT broker (``edge-ser listen --mqtt URL``).

A sink beside the terminal / JSON Lines view: :meth:`MqttSink.publish` is called with every
:class:`~edge.recognizer.Result` in the audio worker thread and only appends to a bounded
in-memory queue (it never touches the network, never waits); a sender thread hands the queue
to paho-mqtt, whose own thread does the network and reconnects with backoff.

Topics, under ``PREFIX/DEVICE/`` (default ``edge-ser/<host name>/``):

* ``emotion``: every final result, QoS 1, in order: the ``listen --json`` line plus
  ``device``, ``session`` (random per run) and ``time`` (Unix seconds when it was decided);
* ``state``: retained, QoS 1: the last emotion (label, confidence, probs, ...);
* ``availability``: retained ``online`` / ``offline`` (``offline`` is also the last will);
* ``interim`` (``--mqtt-interim``, QoS 0, newest only) and ``heartbeat``
  (``--mqtt-heartbeat``, QoS 0) while connected;
* ``summary``: the session's summary at the end, QoS 1;
* with ``--mqtt-homeassistant``: retained discovery configs under
  ``homeassistant/sensor/DEVICE/{emotion,confidence}/config``.

Delivery: finals wait in a queue of ``queue_size`` (oldest dropped and counted when full)
while the broker is unreachable; one QoS 1 message is in flight at a time, so they arrive in
order, also across reconnects (at least once: a message in flight when the connection broke
is sent again). ``paho-mqtt`` is imported only when a sink is made; without it the error
names ``pip install 'edge-ser[mqtt]'``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import socket
import ssl
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from edge import __version__
from edge.errors import EXIT_BAD_INPUT, EdgeSerError
from edge.recognizer import Result

INSTALL_HINT = "pip install 'edge-ser[mqtt]'"
USERNAME_ENV = "EDGE_SER_MQTT_USERNAME"
PASSWORD_ENV = "EDGE_SER_MQTT_PASSWORD"
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
DEFAULT_PREFIX = "edge-ser"
DEFAULT_DISCOVERY_PREFIX = "homeassistant"
QUEUE_SIZE = 1000
"""Final results kept while the broker is unreachable (about 1 KB each)."""
DRAIN_SECONDS = 5.0
"""How long :meth:`MqttSink.close` waits for the queue to reach the broker."""
CONNECT_WAIT_SECONDS = 5.0
"""How long :meth:`MqttSink.start` waits for the broker's answer before listening anyway."""
RECONNECT_MIN_SECONDS = 1
RECONNECT_MAX_SECONDS = 30
"""paho's reconnect backoff: 1 s after a loss, doubling to at most 30 s between tries."""
KEEPALIVE_SECONDS = 30
"""MQTT keepalive: a broker that vanishes without closing the connection is noticed within
1.5 x this."""
AUTH_REFUSALS = ("bad user name or password", "not authorized")
"""CONNACK reasons (paho's names, lower case) that mean wrong or missing credentials."""
TRANSIENT_REFUSALS = ("server unavailable",)
"""CONNACK reasons that retrying may cure; any other refusal at the start is an error."""

_ID = re.compile(r"^[A-Za-z0-9_-]+$")


class MqttError(EdgeSerError):
    """``--mqtt`` cannot work as given: a bad URL or option, unreadable credentials or
    certificates, refused credentials, a TLS failure, or paho-mqtt not installed."""

    exit_code = EXIT_BAD_INPUT


# --------------------------------------------------------------------------------------
# Configuration (standard library only: checked before paho is imported)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MqttConfig:
    """Where and how to publish. Build it with :func:`config_from_options`."""

    scheme: str
    """``mqtt`` (plain TCP) or ``mqtts`` (TLS)."""
    host: str
    port: int
    prefix: str = DEFAULT_PREFIX
    """Topic prefix: topics are ``PREFIX/DEVICE/...``; levels separated by ``/``."""
    device: str = "edge-ser"
    """Device id, one topic level of ``[A-Za-z0-9_-]``."""
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    """PEM CA certificate(s) for ``mqtts``; None: the system's CAs."""
    cert_file: str | None = None
    key_file: str | None = None
    interim: bool = False
    heartbeat_seconds: float | None = None
    homeassistant: bool = False
    discovery_prefix: str = DEFAULT_DISCOVERY_PREFIX
    queue_size: int = QUEUE_SIZE
    drain_seconds: float = DRAIN_SECONDS
    tls_context: ssl.SSLContext | None = field(default=None, repr=False, compare=False)
    """For ``mqtts``: made from the CA and client certificate files (:func:`tls_context`)."""

    @property
    def tls(self) -> bool:
        return self.scheme == "mqtts"

    @property
    def url(self) -> str:
        """The broker as shown in messages: never a user name or password."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.device}"

    def topic(self, name: str) -> str:
        """``PREFIX/DEVICE/name``."""
        return f"{self.base}/{name}"

    def __repr__(self) -> str:  # never the password
        return f"MqttConfig({self.url}, base={self.base!r}, user={self.username!r})"


def parse_url(url: str) -> tuple[str, str, int, str | None]:
    """``mqtt://[USER@]HOST[:PORT]`` or ``mqtts://...`` -> (scheme, host, port, user).

    A password in the URL is refused (it would sit in the shell history and the process
    list): the message says where to put it, without repeating it.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as e:
        raise MqttError(f"--mqtt {_shown(url)}: not a broker URL ({e}); use"
                        " mqtt://HOST[:PORT] or mqtts://HOST[:PORT]") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise MqttError(f"--mqtt {_shown(url)}: unknown scheme {parts.scheme + ':' !r}; use"
                        " mqtt://HOST[:1883] (plain) or mqtts://HOST[:8883] (TLS)")
    if parts.password is not None:
        raise MqttError(f"--mqtt {_shown(url)}: a password does not belong on the command"
                        f" line; put it in ${PASSWORD_ENV} or a file given with"
                        " --mqtt-password-file")
    if not parts.hostname:
        raise MqttError(f"--mqtt {_shown(url)}: no host; use {scheme}://HOST[:PORT]")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise MqttError(f"--mqtt {_shown(url)}: only {scheme}://HOST[:PORT] (for the topics"
                        " use --mqtt-prefix and --mqtt-device)")
    if port == 0:
        raise MqttError(f"--mqtt {_shown(url)}: port 0 is not a broker port")
    return scheme, parts.hostname, port or DEFAULT_PORTS[scheme], parts.username or None


def _shown(url: str) -> str:
    """``url`` with any ``user:password@`` removed, for messages."""
    return re.sub(r"//[^/@]*@", "//", url)


def check_prefix(prefix: str, option: str) -> str:
    """A topic prefix: levels of ``/``, none empty, no wildcards; not starting with ``$``."""
    levels = prefix.split("/")
    if (not prefix or any(not level for level in levels) or prefix.startswith("$")
            or any(c in prefix for c in "+#\0")):
        raise MqttError(f"{option} {prefix!r}: need topic levels separated by '/', none"
                        " empty, without '+', '#' or a leading '$' (e.g. edge-ser or"
                        " home/edge-ser)")
    return prefix


def default_device() -> str:
    """The host name (up to its first dot), with characters a topic level or a Home
    Assistant id cannot take replaced by ``_``."""
    name = socket.gethostname().split(".")[0]
    return re.sub(r"[^A-Za-z0-9_-]", "_", name) or "edge-ser"


def is_local(host: str) -> bool:
    """Is ``host`` this machine (``localhost``, 127.0.0.0/8, ``::1``)?"""
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _readable(path: str, option: str) -> str:
    p = Path(path)
    if not p.exists():
        raise MqttError(f"{option} {path}: no such file")
    if not p.is_file():
        raise MqttError(f"{option} {path}: not a file")
    try:
        with open(p, "rb") as f:
            f.read(1)
    except OSError as e:
        raise MqttError(f"{option} {path}: cannot read it ({e.strerror})") from None
    return str(p)


def read_password_file(path: str) -> str:
    """The first line of ``path``, without its line ending (the rest is ignored)."""
    _readable(path, "--mqtt-password-file")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise MqttError(f"--mqtt-password-file {path}: not UTF-8 text") from None
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise MqttError(f"--mqtt-password-file {path}: empty (the password is its first"
                        " line)")
    return lines[0]


def config_from_options(*, mqtt_url: str | None, mqtt_prefix: str | None = None,
                        mqtt_device: str | None = None, mqtt_username: str | None = None,
                        mqtt_password_file: str | None = None, mqtt_ca: str | None = None,
                        mqtt_cert: str | None = None, mqtt_key: str | None = None,
                        mqtt_interim: bool = False, mqtt_heartbeat: float | None = None,
                        mqtt_homeassistant: bool = False,
                        mqtt_discovery_prefix: str | None = None,
                        mqtt_queue: int | None = None, mqtt_drain: float | None = None,
                        environ: dict[str, str] | None = None) -> MqttConfig | None:
    """The ``listen --mqtt*`` options (and ``$EDGE_SER_MQTT_USERNAME``,
    ``$EDGE_SER_MQTT_PASSWORD``) as a :class:`MqttConfig`; None without ``--mqtt``.

    Raises :class:`MqttError` (exit 2) for anything wrong, naming the option."""
    env = os.environ if environ is None else environ
    if mqtt_url is None:
        given = {"--mqtt-prefix": mqtt_prefix, "--mqtt-device": mqtt_device,
                 "--mqtt-username": mqtt_username, "--mqtt-password-file": mqtt_password_file,
                 "--mqtt-ca": mqtt_ca, "--mqtt-cert": mqtt_cert, "--mqtt-key": mqtt_key,
                 "--mqtt-interim": mqtt_interim or None, "--mqtt-heartbeat": mqtt_heartbeat,
                 "--mqtt-homeassistant": mqtt_homeassistant or None,
                 "--mqtt-discovery-prefix": mqtt_discovery_prefix, "--mqtt-queue": mqtt_queue,
                 "--mqtt-drain": mqtt_drain}
        option = next((name for name, value in given.items() if value is not None), None)
        if option is not None:
            raise MqttError(f"{option} needs --mqtt URL (the broker to publish to)")
        return None
    scheme, host, port, url_user = parse_url(mqtt_url)
    prefix = check_prefix(mqtt_prefix or DEFAULT_PREFIX, "--mqtt-prefix")
    if mqtt_device is not None and not _ID.match(mqtt_device):
        raise MqttError(f"--mqtt-device {mqtt_device!r}: use letters, digits, '_' and '-'"
                        " only (one topic level, and a Home Assistant id)")
    device = mqtt_device or default_device()
    discovery = check_prefix(mqtt_discovery_prefix or DEFAULT_DISCOVERY_PREFIX,
                             "--mqtt-discovery-prefix")
    username = mqtt_username or url_user or env.get(USERNAME_ENV) or None
    if mqtt_password_file is not None:
        password = read_password_file(mqtt_password_file)
    else:
        password = env.get(PASSWORD_ENV) or None
    if password is not None and username is None:
        source = "--mqtt-password-file" if mqtt_password_file else f"${PASSWORD_ENV}"
        raise MqttError(f"a password ({source}) needs a user name: --mqtt-username NAME,"
                        f" {scheme}://NAME@{host}, or ${USERNAME_ENV}")
    if scheme != "mqtts" and (mqtt_ca or mqtt_cert or mqtt_key):
        option = "--mqtt-ca" if mqtt_ca else "--mqtt-cert" if mqtt_cert else "--mqtt-key"
        raise MqttError(f"{option} needs an mqtts:// URL (TLS); mqtt:// is plain TCP")
    if mqtt_key and not mqtt_cert:
        raise MqttError("--mqtt-key needs --mqtt-cert (the client certificate it belongs to)")
    ca = _readable(mqtt_ca, "--mqtt-ca") if mqtt_ca else None
    cert = _readable(mqtt_cert, "--mqtt-cert") if mqtt_cert else None
    key = _readable(mqtt_key, "--mqtt-key") if mqtt_key else None
    return MqttConfig(
        scheme=scheme, host=host, port=port, prefix=prefix, device=device,
        username=username, password=password,
        ca_file=ca, cert_file=cert, key_file=key,
        tls_context=tls_context(ca, cert, key) if scheme == "mqtts" else None,
        interim=mqtt_interim, heartbeat_seconds=mqtt_heartbeat,
        homeassistant=mqtt_homeassistant, discovery_prefix=discovery,
        queue_size=QUEUE_SIZE if mqtt_queue is None else int(mqtt_queue),
        drain_seconds=DRAIN_SECONDS if mqtt_drain is None else float(mqtt_drain),
    )


def tls_context(ca_file: str | None = None, cert_file: str | None = None,
                key_file: str | None = None) -> ssl.SSLContext:
    """A client TLS context: the broker's certificate must chain to ``ca_file`` (None: the
    system's CAs) and name the host; optionally a client certificate. An encrypted key is
    refused (no prompt on a terminal)."""
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (ssl.SSLError, OSError) as e:
        raise MqttError(f"--mqtt-ca {ca_file}: not a PEM CA certificate"
                        f" ({_ssl_reason(e)})") from None
    if cert_file:
        try:
            context.load_cert_chain(cert_file, key_file, password=_no_passphrase)
        except (ssl.SSLError, OSError) as e:
            what = f"--mqtt-cert {cert_file}" + (f" / --mqtt-key {key_file}" if key_file
                                                 else "")
            raise MqttError(f"{what}: cannot load the client certificate and its private key"
                            f" ({_ssl_reason(e)}): both PEM, the key unencrypted, and"
                            " --mqtt-key FILE unless the key is in the certificate's file"
                            ) from None
    return context


def import_paho() -> Any:
    """``paho.mqtt.client`` (2.x), or an :class:`MqttError` naming the extra to install."""
    try:
        import paho.mqtt.client as mqtt_client
    except ImportError:
        raise MqttError(f"--mqtt needs paho-mqtt: {INSTALL_HINT}") from None
    if not hasattr(mqtt_client, "CallbackAPIVersion"):
        raise MqttError("--mqtt needs paho-mqtt 2.0 or later (this is an older one):"
                        f" {INSTALL_HINT.replace('pip install', 'pip install -U')}")
    return mqtt_client


# --------------------------------------------------------------------------------------
# Payloads
# --------------------------------------------------------------------------------------


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def result_payload(result: Result, *, device: str, session: str, at: float) -> dict[str, Any]:
    """The ``emotion`` / ``interim`` message: the ``--json`` line plus who and when."""
    return {"device": device, "session": session, "time": round(at, 3), **result.to_dict()}


def state_payload(result: Result, *, device: str, session: str, at: float) -> dict[str, Any]:
    """The retained ``state`` message: the last emotion."""
    d = result.to_dict()
    return {"device": device, "session": session, "time": round(at, 3),
            "label": d["label"], "confidence": d["confidence"], "uncertain": d["uncertain"],
            "probs": d["probs"], "utterance": d["utterance"], "start": d["start"],
            "end": d["end"]}


def discovery_configs(config: MqttConfig, *, labels: tuple[str, ...],
                      model: str) -> list[tuple[str, dict[str, Any]]]:
    """Home Assistant MQTT discovery: (topic, config) of the two sensors of the device,
    ``emotion`` (the label, an enum of the model's labels) and ``confidence`` (%), both read
    from the retained ``state`` topic, available while ``availability`` says ``online``."""
    device = config.device
    common = {
        "state_topic": config.topic("state"),
        "availability_topic": config.topic("availability"),
        "payload_available": "online", "payload_not_available": "offline",
        "device": {"identifiers": [f"edge-ser_{device}"], "name": f"edge-ser {device}",
                   "manufacturer": "edge-ser", "model": model, "sw_version": __version__},
        "origin": {"name": "edge-ser", "sw_version": __version__},
    }
    emotion = {
        "name": "Emotion", "unique_id": f"edge-ser_{device}_emotion",
        "value_template": "{{ value_json.label }}", "device_class": "enum",
        "options": list(labels), "json_attributes_topic": config.topic("state"),
        "icon": "mdi:emoticon-outline", **common,
    }
    confidence = {
        "name": "Emotion confidence", "unique_id": f"edge-ser_{device}_confidence",
        "value_template": "{{ (value_json.confidence * 100) | round(1) }}",
        "unit_of_measurement": "%", "state_class": "measurement", "icon": "mdi:gauge",
        **common,
    }
    root = f"{config.discovery_prefix}/sensor/{device}"
    return [(f"{root}/emotion/config", emotion), (f"{root}/confidence/config", confidence)]


# --------------------------------------------------------------------------------------
# The sink
# --------------------------------------------------------------------------------------


_PENDING = -1
"""``_inflight`` while the sender is inside ``client.publish`` (the mid not known yet)."""


class MqttSink:
    """Publishes results to the broker of ``config`` (see the module docstring).

    Parameters
    ----------
    config : MqttConfig
    labels : tuple of str
        The model's labels (the Home Assistant emotion sensor's options).
    model : str
        The model's name, shown as the Home Assistant device's model.
    warn : callable
        Takes one line for stderr (connection lost / back, the unencrypted warning).
    """

    def __init__(self, config: MqttConfig, *, labels: tuple[str, ...], model: str,
                 warn: Callable[[str], None]) -> None:
        self.config = config
        self.labels = tuple(labels)
        self.model = model
        self._warn = warn
        self._mqtt = import_paho()
        self.session = uuid.uuid4().hex[:12]
        self._cond = threading.Condition()
        self._queue: deque[tuple[Result, float]] = deque()
        self._interim: tuple[Result, float] | None = None
        self._last_final: tuple[Result, float] | None = None
        self._state_due = False
        self._summary: dict[str, Any] | None = None
        self._inflight: int | None = None  # mid of the QoS 1 message awaiting its PUBACK
        self._inflight_final = False
        self._early_acks: set[int] = set()
        self._connected = False
        self._closing = False
        self._abandon = False
        self._outcome = threading.Event()  # the first CONNACK (or failure) arrived
        self._refusal: str | None = None
        self._last_error: str | None = None  # paho's last error log line, since connecting
        self._tls_failure: str | None = None  # a TLS alert before the first CONNACK
        self._ever_connected = False
        self._start_done = False
        self._started = time.monotonic()
        self._last_t = 0.0
        # counts
        self.finals = 0
        self.published = 0
        self.dropped = 0
        self.disconnects = 0
        self.reconnects = 0
        self.undelivered = 0
        self.max_queued = 0
        self.client = self._make_client()
        self._sender = threading.Thread(target=self._send_loop, name="edge-ser-mqtt",
                                        daemon=True)

    # -- set-up ------------------------------------------------------------------------

    def _make_client(self) -> Any:
        mqtt, c = self._mqtt, self.config
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                             client_id=f"edge-ser-{c.device}-{self.session[:6]}",
                             protocol=mqtt.MQTTv311, clean_session=True)
        if c.username is not None:
            client.username_pw_set(c.username, c.password)
        if c.tls:
            client.tls_set_context(c.tls_context or tls_context())
        client.will_set(c.topic("availability"), "offline", qos=1, retain=True)
        client.reconnect_delay_set(RECONNECT_MIN_SECONDS, RECONNECT_MAX_SECONDS)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_log = self._on_log
        return client

    def start(self, *, wait: float = CONNECT_WAIT_SECONDS) -> bool:
        """Connect (waiting up to ``wait`` s for the broker's answer) and start publishing.

        Returns True when connected. A broker that cannot be reached is not an error: one
        warning, and the results are queued while paho retries with backoff. Refused
        credentials and TLS failures raise :class:`MqttError` (exit 2): retrying cannot
        fix those."""
        c = self.config
        if not c.tls and not is_local(c.host):
            self._warn(f"warning: {c.url} is not encrypted: the results"
                       f"{' and the password' if c.password else ''} cross the network in"
                       " the clear; use mqtts:// (with --mqtt-ca for your own CA)")
        reachable = True
        try:
            self.client.connect(c.host, c.port, keepalive=KEEPALIVE_SECONDS)
        except ssl.SSLError as e:
            raise MqttError(f"{c.url}: TLS failed: {_ssl_reason(e)}{_tls_hint(e, c)}") from None
        except (OSError, ValueError) as e:  # refused, unreachable, unknown host, timeout
            reachable = False
            hint = (f"; is {c.port} a TLS port? plain MQTT is mqtt://"
                    if c.tls and isinstance(e, ConnectionResetError) else "")
            self._warn(f"mqtt: cannot reach {c.url} ({_os_reason(e)}{hint}); listening anyway:"
                       f" final results are queued (up to {c.queue_size}) and sent once it"
                       f" answers (retrying every {RECONNECT_MIN_SECONDS}-"
                       f"{RECONNECT_MAX_SECONDS} s)")
        self.client.loop_start()
        if reachable and not self._outcome.wait(wait):
            with self._cond:
                why = f" ({self._last_error})" if self._last_error else ""
            self._warn(f"mqtt: no answer from {c.url} within {wait:g} s{why}; listening"
                       f" anyway: final results are queued (up to {c.queue_size}) and sent"
                       " once it answers")
        with self._cond:
            refusal = None if self._ever_connected else self._refusal
            tls_failure = None if self._ever_connected else self._tls_failure
            self._start_done = True
        if refusal in TRANSIENT_REFUSALS:
            self._warn(f"mqtt: {self._refusal_message(refusal)}; listening anyway: final"
                       f" results are queued (up to {c.queue_size}), retrying")
            refusal = None
        if refusal is not None or tls_failure is not None:
            self._shutdown_client()
            raise MqttError(self._refusal_message(refusal) if refusal is not None
                            else f"{c.url}: TLS failed: {tls_failure}{_alert_hint(tls_failure)}")
        self._sender.start()
        return self._connected

    def _refusal_message(self, reason: str) -> str:
        c = self.config
        if reason.lower() in AUTH_REFUSALS:
            who = f"user {c.username!r}" if c.username else "no user name"
            return (f"{c.url}: the broker refused the connection: {reason} ({who}; set the"
                    f" user with --mqtt-username and the password in ${PASSWORD_ENV} or"
                    " --mqtt-password-file)")
        return f"{c.url}: the broker refused the connection: {reason}"

    # -- paho callbacks (paho's thread) ------------------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            name = str(reason).lower()
            with self._cond:
                tell = self._start_done and self._refusal != name
                self._refusal = name
            if tell:  # before that, start() reports it
                self._warn(f"mqtt: {self._refusal_message(name)}; retrying")
            self._outcome.set()
            return
        c = self.config
        client.publish(c.topic("availability"), "online", qos=1, retain=True)
        if c.homeassistant:
            for topic, payload in discovery_configs(c, labels=self.labels, model=self.model):
                client.publish(topic, _json(payload), qos=1, retain=True)
            client.subscribe(f"{c.discovery_prefix}/status", qos=1)
        with self._cond:
            again = self._ever_connected
            self._ever_connected = True
            self._connected = True
            self._refusal = None
            self._last_error = None
            if again:
                self.reconnects += 1
            # the broker may have lost the retained state (restarted without persistence)
            self._state_due = self._last_final is not None
            queued = len(self._queue)
            self._cond.notify_all()
        if again or self._start_done:  # back, or there at last after start() gave up waiting
            self._warn(f"mqtt: {'re' if again else ''}connected to {c.url}; sending {queued}"
                       " queued results")
        self._outcome.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        with self._cond:
            was = self._connected
            self._connected = False
            closing = self._closing
            if was and not closing:
                self.disconnects += 1
            error, self._last_error = self._last_error, None
            self._cond.notify_all()
        if was and not closing:
            why = (f" ({error})" if error else "" if str(reason) == "Unspecified error"
                   else f" ({str(reason).lower()})")
            self._warn(f"mqtt: connection to {self.config.url} lost{why}; listening on,"
                       f" results queued (up to {self.config.queue_size}), reconnecting")

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any,
                    properties: Any) -> None:
        with self._cond:
            if mid == self._inflight:
                self._complete_locked()
            elif self._inflight == _PENDING:
                self._early_acks.add(mid)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        # Home Assistant's birth message: it (re)started and wants the configs again
        c = self.config
        if message.topic == f"{c.discovery_prefix}/status" and message.payload == b"online":
            for topic, payload in discovery_configs(c, labels=self.labels, model=self.model):
                client.publish(topic, _json(payload), qos=1, retain=True)
            with self._cond:
                self._state_due = self._last_final is not None
                self._cond.notify_all()

    def _on_log(self, client: Any, userdata: Any, level: int, text: str) -> None:
        if level != self._mqtt.MQTT_LOG_ERR:
            return
        error = _log_reason(text)
        with self._cond:
            self._last_error = error
            tls = "[SSL" in text and not self._ever_connected
            if tls:
                self._tls_failure = error
        if tls:
            self._outcome.set()

    def _complete_locked(self) -> None:
        if self._inflight_final:
            self.published += 1
        self._inflight = None
        self._inflight_final = False
        self._early_acks.clear()
        self._cond.notify_all()

    # -- the audio worker's side -------------------------------------------------------

    def publish(self, result: Result) -> None:
        """Queue ``result`` for the broker (finals; interims with ``interim``). Returns at
        once: never waits for the network. A full queue drops its oldest final (counted)."""
        now = time.time()
        with self._cond:
            self._last_t = result.t
            if result.event == "final":
                self.finals += 1
                if len(self._queue) >= self.config.queue_size:
                    self._queue.popleft()
                    self.dropped += 1
                self._queue.append((result, now))
                self.max_queued = max(self.max_queued, len(self._queue))
                self._last_final = (result, now)
                self._state_due = True
                self._interim = None
            elif result.event == "interim" and self.config.interim:
                self._interim = (result, now)
            else:
                return
            self._cond.notify_all()

    # -- the sender thread -------------------------------------------------------------

    def _next_locked(self, beat_due: bool) -> tuple[str, Any] | None:
        """What to send now, or None. Called with the lock held."""
        if not self._connected:
            return None
        if self._inflight is None:
            if self._queue:
                return "final", self._queue.popleft()
            if self._state_due and self._last_final is not None:
                self._state_due = False
                return "state", self._last_final
            if self._summary is not None:
                summary, self._summary = self._summary, None
                return "summary", summary
        if self._interim is not None:
            interim, self._interim = self._interim, None
            return "interim", interim
        if beat_due:
            return "heartbeat", None
        return None

    def _drained_locked(self) -> bool:
        return (self._inflight is None and not self._queue and self._summary is None
                and not (self._state_due and self._last_final is not None))

    def _send_loop(self) -> None:
        c = self.config
        beat = c.heartbeat_seconds
        next_beat = time.monotonic() + beat if beat else None
        while True:
            with self._cond:
                while True:
                    if self._abandon or (self._closing and self._drained_locked()):
                        return
                    now = time.monotonic()
                    beat_due = next_beat is not None and now >= next_beat
                    item = self._next_locked(beat_due)
                    if beat_due and (item is None or item[0] == "heartbeat"):
                        next_beat = now + beat
                    if item is not None:
                        break
                    self._cond.wait(1.0 if next_beat is None
                                    else max(0.01, min(1.0, next_beat - now)))
                kind, value = item
                qos1 = kind in ("final", "state", "summary")
                if qos1:
                    self._inflight = _PENDING
                    self._inflight_final = kind == "final"
                    self._early_acks.clear()
            topic, payload, retain = self._message(kind, value)
            try:
                info = self.client.publish(topic, payload, qos=1 if qos1 else 0,
                                           retain=retain)
            except Exception as e:  # never let the sender die silently
                self._warn(f"mqtt: cannot publish to {topic} ({e}); message skipped")
                with self._cond:
                    if qos1:
                        self._inflight = None
                        self._inflight_final = False
                        self._cond.notify_all()
                continue
            if qos1:
                with self._cond:
                    if info.mid in self._early_acks:
                        self._inflight = info.mid
                        self._complete_locked()
                    else:
                        self._inflight = info.mid

    def _message(self, kind: str, value: Any) -> tuple[str, bytes, bool]:
        c = self.config
        meta = {"device": c.device, "session": self.session}
        if kind == "final":
            result, at = value
            return c.topic("emotion"), _json(result_payload(result, at=at, **meta)), False
        if kind == "interim":
            result, at = value
            return c.topic("interim"), _json(result_payload(result, at=at, **meta)), False
        if kind == "state":
            result, at = value
            return c.topic("state"), _json(state_payload(result, at=at, **meta)), True
        if kind == "summary":
            return (c.topic("summary"),
                    _json({**meta, "time": round(time.time(), 3), "summary": value}), False)
        with self._cond:
            beat = {**meta, "time": round(time.time(), 3),
                    "uptime_seconds": round(time.monotonic() - self._started, 1),
                    "audio_seconds": round(self._last_t, 3), "utterances": self.finals,
                    "published": self.published, "queued": len(self._queue),
                    "dropped": self.dropped}
        return c.topic("heartbeat"), _json(beat), False

    # -- the end -----------------------------------------------------------------------

    def close(self, summary: dict[str, Any] | None = None, *,
              timeout: float | None = None) -> dict[str, Any]:
        """Send what is queued (and ``summary`` to ``summary``), waiting up to ``timeout``
        seconds (default: the config's ``drain_seconds``); then ``offline`` and disconnect.
        Returns :meth:`stats`; what could not be sent is counted as ``undelivered``."""
        timeout = self.config.drain_seconds if timeout is None else timeout
        with self._cond:
            self._summary = summary
            self._closing = True
            self._cond.notify_all()
        try:
            if self._sender.is_alive():
                self._sender.join(timeout)
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting
            pass
        with self._cond:
            self._abandon = True
            self._cond.notify_all()
            self.undelivered = len(self._queue) + (1 if self._inflight_final else 0)
            connected = self._connected
        if connected:
            with contextlib.suppress(ValueError, RuntimeError, KeyboardInterrupt):
                self.client.publish(self.config.topic("availability"), "offline", qos=1,
                                    retain=True).wait_for_publish(1.0)
        self._shutdown_client()
        return self.stats()

    def _shutdown_client(self) -> None:
        with self._cond:
            self._closing = True
        try:
            self.client.disconnect()
            self.client.loop_stop()
        except KeyboardInterrupt:
            pass

    def stats(self) -> dict[str, Any]:
        """Counts for the summary: finals seen, published (acknowledged by the broker),
        dropped (queue full), undelivered (still queued at the end), reconnects."""
        c = self.config
        with self._cond:
            return {"url": c.url, "topic": c.topic("emotion"), "finals": self.finals,
                    "published": self.published, "dropped": self.dropped,
                    "undelivered": self.undelivered, "queue_size": c.queue_size,
                    "max_queued": self.max_queued, "disconnects": self.disconnects,
                    "reconnects": self.reconnects, "connected": self._connected}

    def summary_line(self) -> str:
        s = self.stats()
        dropped = (f"{s['dropped']} dropped (the queue of {s['queue_size']} was full)"
                   if s["dropped"] else "0 dropped")
        return (f"mqtt: {s['published']} of {s['finals']} results published to {s['url']}"
                f" ({s['topic']}); {dropped}, {s['undelivered']} undelivered,"
                f" {s['reconnects']} reconnect{'' if s['reconnects'] == 1 else 's'}")


def _no_passphrase() -> bytes:
    """For ``load_cert_chain``: an encrypted key fails instead of prompting on a terminal."""
    return b""


def _ssl_reason(e: BaseException) -> str:
    """``[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1000)`` -> the words."""
    if isinstance(e, ssl.SSLCertVerificationError) and e.verify_message:
        return f"certificate verify failed: {e.verify_message}"
    text = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
    text = re.sub(r"\s*\(_ssl\.c:\d+\)$", "", re.sub(r"^\[[^\]]*\]\s*", "", text))
    return text or type(e).__name__


def _log_reason(text: str) -> str:
    """paho's ``failed to receive on socket: [SSL: X] what (_ssl.c:N)`` -> ``what``."""
    m = re.search(r"\[SSL: [A-Z0-9_]+\] (.*?)(?: \(_ssl\.c:\d+\))?$", text)
    if m:
        return m.group(1)
    return re.sub(r"^failed to receive on socket: ", "", text)


def _alert_hint(reason: str) -> str:
    """What to do about a TLS alert from the broker."""
    if "certificate required" in reason:
        return "; the broker wants a client certificate: --mqtt-cert FILE (and --mqtt-key FILE)"
    if any(w in reason for w in ("unknown ca", "bad certificate", "certificate unknown",
                                 "certificate expired")):
        return "; the broker does not accept this client certificate (--mqtt-cert)"
    return ""


def _tls_hint(e: BaseException, c: MqttConfig) -> str:
    if isinstance(e, ssl.SSLCertVerificationError):
        return ("; give the CA that signed the broker's certificate with --mqtt-ca FILE"
                if c.ca_file is None else
                f"; is --mqtt-ca {c.ca_file} the CA that signed the broker's certificate,"
                f" for the name {c.host!r}?")
    if "wrong version number" in _ssl_reason(e):
        return f"; is {c.port} a TLS port? (plain MQTT is mqtt://)"
    return ""


def _os_reason(e: BaseException) -> str:
    if isinstance(e, socket.gaierror):
        return f"unknown host: {e.strerror}"
    if isinstance(e, TimeoutError):
        return "timed out"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__
