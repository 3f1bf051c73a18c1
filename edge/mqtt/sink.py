"""The MQTT sink: publish ``listen``'s results to a broker (``edge-ser listen --mqtt URL``).

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
names ``pip install './edge-ser[mqtt]'``.

The options and :class:`~edge.mqtt.config.MqttConfig` are :mod:`edge.mqtt.config`'s, the
messages :mod:`edge.mqtt.payloads`'; this module is the sender's state machine. It is over
400 lines because it is one state machine (queue, in-flight QoS 1 message, connection
outcome, drain), whose parts share its lock and are not useful apart.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
import uuid
from collections import deque
from typing import Any, Callable

from edge.mqtt.config import (
    PASSWORD_ENV,
    MqttConfig,
    MqttError,
    import_paho,
    is_local,
    tls_context,
)
from edge.mqtt.payloads import discovery_configs, encode, result_payload, state_payload
from edge.mqtt.reasons import alert_hint, log_reason, os_reason, ssl_reason, tls_hint
from edge.recognizer import Result

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
            hint = tls_hint(e, ca_file=c.ca_file, host=c.host, port=c.port)
            raise MqttError(f"{c.url}: TLS failed: {ssl_reason(e)}{hint}") from None
        except (OSError, ValueError) as e:  # refused, unreachable, unknown host, timeout
            reachable = False
            hint = (f"; is {c.port} a TLS port? plain MQTT is mqtt://"
                    if c.tls and isinstance(e, ConnectionResetError) else "")
            self._warn(f"mqtt: cannot reach {c.url} ({os_reason(e)}{hint}); listening anyway:"
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
                            else f"{c.url}: TLS failed: {tls_failure}{alert_hint(tls_failure)}")
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
                client.publish(topic, encode(payload), qos=1, retain=True)
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
                client.publish(topic, encode(payload), qos=1, retain=True)
            with self._cond:
                self._state_due = self._last_final is not None
                self._cond.notify_all()

    def _on_log(self, client: Any, userdata: Any, level: int, text: str) -> None:
        if level != self._mqtt.MQTT_LOG_ERR:
            return
        error = log_reason(text)
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
            return c.topic("emotion"), encode(result_payload(result, at=at, **meta)), False
        if kind == "interim":
            result, at = value
            return c.topic("interim"), encode(result_payload(result, at=at, **meta)), False
        if kind == "state":
            result, at = value
            return c.topic("state"), encode(state_payload(result, at=at, **meta)), True
        if kind == "summary":
            return (c.topic("summary"),
                    encode({**meta, "time": round(time.time(), 3), "summary": value}), False)
        with self._cond:
            beat = {**meta, "time": round(time.time(), 3),
                    "uptime_seconds": round(time.monotonic() - self._started, 1),
                    "audio_seconds": round(self._last_t, 3), "utterances": self.finals,
                    "published": self.published, "queued": len(self._queue),
                    "dropped": self.dropped}
        return c.topic("heartbeat"), encode(beat), False

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
