"""``--mqtt`` configuration: the ``--mqtt-*`` options (defined once, here), their checks and
the :class:`MqttConfig` they make, TLS contexts, and the paho-mqtt import.

Standard library only (and click, for the options; ``ssl`` only when a TLS context is made,
so that ``edge.cli`` stays cheap to import): everything is checked before paho is imported or
a model loads, so a bad option is one line and exit 2.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import click

from edge.errors import EXIT_BAD_INPUT, EdgeSerError

if TYPE_CHECKING:
    import ssl

INSTALL_HINT = "pip install './edge-ser[mqtt]'"
USERNAME_ENV = "EDGE_SER_MQTT_USERNAME"
PASSWORD_ENV = "EDGE_SER_MQTT_PASSWORD"
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
DEFAULT_PREFIX = "edge-ser"
DEFAULT_DISCOVERY_PREFIX = "homeassistant"
QUEUE_SIZE = 1000
"""Final results kept while the broker is unreachable (about 1 KB each)."""
DRAIN_SECONDS = 5.0
"""How long :meth:`MqttSink.close` waits for the queue to reach the broker."""

_ID = re.compile(r"^[A-Za-z0-9_-]+$")


class MqttError(EdgeSerError):
    """``--mqtt`` cannot work as given: a bad URL or option, unreadable credentials or
    certificates, refused credentials, a TLS failure, or paho-mqtt not installed."""

    exit_code = EXIT_BAD_INPUT




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
    import ssl

    from edge.mqtt.reasons import no_passphrase, ssl_reason

    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (ssl.SSLError, OSError) as e:
        raise MqttError(f"--mqtt-ca {ca_file}: not a PEM CA certificate"
                        f" ({ssl_reason(e)})") from None
    if cert_file:
        try:
            context.load_cert_chain(cert_file, key_file, password=no_passphrase)
        except (ssl.SSLError, OSError) as e:
            what = f"--mqtt-cert {cert_file}" + (f" / --mqtt-key {key_file}" if key_file
                                                 else "")
            raise MqttError(f"{what}: cannot load the client certificate and its private key"
                            f" ({ssl_reason(e)}): both PEM, the key unencrypted, and"
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
# The --mqtt-* options (listen's, and any command's that publishes)
# --------------------------------------------------------------------------------------

_F = TypeVar("_F", bound=Callable[..., Any])

OPTIONS: tuple[Callable[[_F], _F], ...] = (
    click.option("--mqtt", "mqtt_url", metavar="URL",
                 help="Also publish the results to an MQTT broker: mqtt://HOST[:1883] or"
                      " mqtts://HOST[:8883] (TLS). Needs edge-ser[mqtt]. See 'MQTT' below."),
    click.option("--mqtt-prefix", metavar="TOPIC",
                 help="Topic prefix: results go to PREFIX/DEVICE/emotion.  [default:"
                      f" {DEFAULT_PREFIX}]"),
    click.option("--mqtt-device", metavar="ID",
                 help="Device id in the topics (letters, digits, _ and -).  [default: the"
                      " host name]"),
    click.option("--mqtt-username", metavar="NAME",
                 help=f"User name.  [default: the URL's NAME@, else ${USERNAME_ENV}]"),
    click.option("--mqtt-password-file", metavar="FILE",
                 help=f"Read the password from the first line of FILE.  [default:"
                      f" ${PASSWORD_ENV}]"),
    click.option("--mqtt-ca", metavar="FILE",
                 help="mqtts: CA certificate(s), PEM, that the broker's certificate must"
                      " chain to.  [default: the system's CAs]"),
    click.option("--mqtt-cert", metavar="FILE",
                 help="mqtts: client certificate (PEM), for a broker that requires one."),
    click.option("--mqtt-key", metavar="FILE",
                 help="mqtts: the client certificate's unencrypted private key (PEM), unless"
                      " it is in --mqtt-cert."),
    click.option("--mqtt-interim", is_flag=True, default=None,
                 help="Also publish interim results (QoS 0) to PREFIX/DEVICE/interim."),
    click.option("--mqtt-heartbeat", type=click.FloatRange(min=0.1), metavar="SECONDS",
                 help="Publish a heartbeat (QoS 0) to PREFIX/DEVICE/heartbeat every SECONDS."),
    click.option("--mqtt-homeassistant", is_flag=True, default=None,
                 help="Home Assistant MQTT discovery: the device appears with two sensors,"
                      " emotion and confidence."),
    click.option("--mqtt-discovery-prefix", metavar="TOPIC",
                 help="Home Assistant's discovery prefix.  [default:"
                      f" {DEFAULT_DISCOVERY_PREFIX}]"),
    click.option("--mqtt-queue", type=click.IntRange(min=1), metavar="N",
                 help="Final results kept while the broker is unreachable; when full, the"
                      f" oldest is dropped and counted.  [default: {QUEUE_SIZE}]"),
    click.option("--mqtt-drain", type=click.FloatRange(min=0.0), metavar="SECONDS",
                 help="At the end, wait up to SECONDS for queued results to reach the broker."
                      f"  [default: {DRAIN_SECONDS:g}]"),
)
"""The ``--mqtt-*`` options; their values are :func:`config_from_options`' keywords."""


def mqtt_options(command: _F) -> _F:
    """Decorate a click command with every ``--mqtt-*`` option (in ``--help`` order)."""
    for option in reversed(OPTIONS):
        command = option(command)
    return command


def given(options: dict[str, Any]) -> bool:
    """Whether any ``--mqtt-*`` option was given (flags left at None/False are not)."""
    return any(v not in (None, False) for v in options.values())
