"""Real MQTT pieces for the ``listen --mqtt`` tests: a mosquitto broker of our own, a paho
subscriber, a self-made CA, and ``edge-ser listen`` fed through stdin.

- :class:`Broker`: ``mosquitto`` (the Debian package; ``tools/sysdeps.sh`` installs it) with
  its own config on free localhost ports, started and stopped by PID (SIGTERM: it saves its
  persistence database, so subscriptions survive a restart), its log in the test's tmp dir.
- :class:`Subscriber`: a paho client with a persistent session (clean_session false, QoS 1),
  so the messages published while it reconnects to a restarted broker are kept for it.
- :func:`make_pki`: a CA, a server certificate for localhost / 127.0.0.1 and a client
  certificate, made with ``openssl``.
- :class:`Listen`: ``edge-ser listen --stdin-raw 16000 --json`` in a subprocess; the test
  writes the audio when it wants (so it can stop the broker between utterances) and reads
  stdout / stderr as they come.

Missing mosquitto or openssl skips these tests, or fails them when ``CI`` is set.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from conftest import skip_or_fail
from conftest_edge import EDGE_SER

RATE = 16000
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def require_tools(*tools: str) -> None:
    """Skip (fail under CI) when ``mosquitto`` or another tool is missing."""
    paths = {"mosquitto": MOSQUITTO}
    missing = [t for t in tools if not (Path(paths[t]).is_file() if t in paths
                                         else shutil.which(t))]
    if missing:
        message = (f"{', '.join(missing)} not installed; apt-get install"
                   f" {' '.join(missing)} (make test does: tools/sysdeps.sh)")
        skip_or_fail(message)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float, what: str,
               interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------------------
# Broker
# --------------------------------------------------------------------------------------


@dataclass
class Tls:
    """A TLS listener's files (PEM) and whether it requires a client certificate."""

    ca: Path
    cert: Path
    key: Path
    require_certificate: bool = False


@dataclass
class Broker:
    """A mosquitto of our own: ``start()``, ``stop()`` (SIGTERM by PID), ``start()`` again on
    the same ports and persistence directory."""

    directory: Path
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    users: dict[str, str] | None = None
    """user -> password: a password file, and no anonymous access."""
    tls: Tls | None = None
    tls_port: int | None = None
    proc: subprocess.Popen | None = None
    starts: int = 0

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.tls is not None and self.tls_port is None:
            self.tls_port = free_port()

    @property
    def log(self) -> Path:
        return self.directory / "mosquitto.log"

    def _config(self) -> Path:
        lines = [f"user {pwd.getpwuid(os.getuid()).pw_name}",
                 "per_listener_settings false",
                 f"allow_anonymous {'false' if self.users else 'true'}",
                 "persistence true", f"persistence_location {self.directory}/",
                 f"log_dest file {self.log}", "log_type all", "connection_messages true"]
        if self.users:
            passwd = self.directory / "passwd"
            passwd.write_text("".join(f"{u}:{p}\n" for u, p in self.users.items()))
            passwd.chmod(0o600)
            # hash in place: the passwords never go through a command line
            subprocess.run(["mosquitto_passwd", "-U", str(passwd)], check=True,
                           capture_output=True, timeout=30)
            lines.append(f"password_file {passwd}")
        lines.append(f"listener {self.port} {self.host}")
        if self.tls is not None:
            lines += [f"listener {self.tls_port} {self.host}", f"cafile {self.tls.ca}",
                      f"certfile {self.tls.cert}", f"keyfile {self.tls.key}",
                      f"require_certificate {str(self.tls.require_certificate).lower()}"]
        conf = self.directory / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self, timeout: float = 10.0) -> None:
        conf = self._config()
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.starts += 1
        ports = [self.port] + ([self.tls_port] if self.tls_port else [])

        def listening() -> bool:
            if self.proc.poll() is not None:
                pytest.fail(f"mosquitto exited ({self.proc.returncode}):"
                            f" {self.log.read_text()[-2000:] if self.log.exists() else ''}")
            for port in ports:
                try:
                    socket.create_connection((self.host, port), timeout=0.2).close()
                except OSError:
                    return False
            return True

        wait_until(listening, timeout, f"mosquitto on {self.host}:{ports}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM by PID (mosquitto saves its database), then wait for it to exit."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"


@contextmanager
def running_broker(directory: Path, **kwargs: Any) -> Iterator[Broker]:
    require_tools("mosquitto")
    broker = Broker(directory, **kwargs)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


# --------------------------------------------------------------------------------------
# Subscriber
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


class Subscriber:
    """A real paho client subscribed with QoS 1 to ``topics``, recording every message.

    ``persistent``: a fixed client id and clean_session false, so a restarted broker (with
    its persistence database) keeps the subscription and queues messages for it."""

    def __init__(self, broker: Broker, topics: list[str], *, persistent: bool = True,
                 username: str | None = None, password: str | None = None,
                 name: str = "test-subscriber") -> None:
        self.topics = topics
        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self.connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name,
                                  clean_session=not persistent)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *a: self.connected.clear()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port, keepalive=10)
        self.client.loop_start()
        wait_until(self.connected.is_set, 10, "the test subscriber to connect")

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        if reason.is_failure:
            return
        for topic in self.topics:
            client.subscribe(topic, qos=1)
        # a SUBACK round trip before reporting connected: the subscription is in place
        client.publish("test/ping", b"", qos=1)
        self.connected.set()

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            self.messages.append(Message(message.topic, bytes(message.payload),
                                         bool(message.retain)))

    def on(self, topic: str) -> list[Message]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextmanager
def subscribed(broker: Broker, topics: list[str], **kwargs: Any) -> Iterator[Subscriber]:
    sub = Subscriber(broker, topics, **kwargs)
    try:
        yield sub
    finally:
        sub.close()


def retained(broker: Broker, topics: list[str], *, settle: float = 0.5,
             **kwargs: Any) -> dict[str, Message]:
    """What a new (clean) subscriber gets at once: the retained messages, by topic."""
    with subscribed(broker, topics, persistent=False, name="test-retained", **kwargs) as sub:
        time.sleep(settle)
        return {m.topic: m for m in sub.messages if m.retain}


# --------------------------------------------------------------------------------------
# Certificates
# --------------------------------------------------------------------------------------


def _openssl(*args: str) -> None:
    run = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)
    if run.returncode != 0:
        pytest.fail(f"openssl {' '.join(args[:2])} failed: {run.stderr[-1000:]}")


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA: (certificate, key)."""
    require_tools("openssl")
    directory.mkdir(parents=True, exist_ok=True)
    key, crt = directory / f"{name}.key", directory / f"{name}.crt"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(crt),
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return crt, key


def make_cert(directory: Path, name: str, ca: tuple[Path, Path], *,
              server: bool) -> tuple[Path, Path]:
    """A certificate signed by ``ca``: for the server (localhost, 127.0.0.1) or a client."""
    key, csr, crt = (directory / f"{name}.{ext}" for ext in ("key", "csr", "crt"))
    ext = directory / f"{name}.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
                   if server else "extendedKeyUsage=clientAuth\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
             "-keyout", str(key), "-out", str(csr))
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
             "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(crt))
    return crt, key


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path
    """A second CA that signed nothing of the broker's."""


def make_pki(directory: Path) -> Pki:
    ca = make_ca(directory, "test-ca")
    server = make_cert(directory, "broker", ca, server=True)
    client = make_cert(directory, "device", ca, server=False)
    other = make_ca(directory, "other-ca")
    return Pki(ca[0], *server, *client, other[0])


# --------------------------------------------------------------------------------------
# edge-ser listen, fed through stdin
# --------------------------------------------------------------------------------------


def silence(seconds: float, *, seed: int = 0) -> np.ndarray:
    """A quiet room (-70 dBFS noise) between utterances."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * RATE)) * 10 ** (-70 / 20)).astype(np.float32)


class Listen:
    """``edge-ser listen --stdin-raw 16000 --json ARGS`` running; stdout and stderr are read
    by threads as they come."""

    def __init__(self, args: list[str], *, env: dict[str, str] | None = None) -> None:
        self.argv = [str(EDGE_SER), "listen", "--stdin-raw", str(RATE), "--json", *args]
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        self.lines: list[dict] = []
        self.errors: list[str] = []
        self.fed_seconds = 0.0
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._read, args=(self.proc.stdout, True),
                                          daemon=True),
                         threading.Thread(target=self._read, args=(self.proc.stderr, False),
                                          daemon=True)]
        for t in self._threads:
            t.start()

    def _read(self, stream: Any, is_stdout: bool) -> None:
        for raw in stream:
            line = raw.decode(errors="replace").rstrip("\n")
            with self._lock:
                if is_stdout:
                    self.lines.append(json.loads(line))
                else:
                    self.errors.append(line)

    def feed(self, audio: np.ndarray) -> None:
        pcm = np.clip(np.round(audio * 32768), -32768, 32767).astype("<i2").tobytes()
        self.proc.stdin.write(pcm)
        self.proc.stdin.flush()
        self.fed_seconds += audio.size / RATE

    def results(self) -> list[dict]:
        with self._lock:
            return [d for d in self.lines if "event" in d]

    def finals(self) -> list[dict]:
        return [d for d in self.results() if d["event"] == "final"]

    def stderr(self) -> str:
        with self._lock:
            return "\n".join(self.errors)

    def wait_processed(self, timeout: float = 30.0) -> None:
        """Until the results reach the audio fed so far (less the last hop)."""
        def caught_up() -> bool:
            results = self.results()
            return bool(results) and results[-1]["t"] >= self.fed_seconds - 0.6
        wait_until(caught_up, timeout, f"listen to process {self.fed_seconds:.1f} s of audio")

    def wait_stderr(self, text: str, timeout: float = 30.0) -> None:
        wait_until(lambda: text in self.stderr(), timeout, f"{text!r} on listen's stderr")

    def finish(self, timeout: float = 60.0) -> int:
        """Close stdin (the end of the stream) and wait for the exit status."""
        self.proc.stdin.close()
        code = self.proc.wait(timeout)
        for t in self._threads:
            t.join(5)
        return code

    def summary(self) -> dict:
        with self._lock:
            return next(d["summary"] for d in self.lines if "summary" in d)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
