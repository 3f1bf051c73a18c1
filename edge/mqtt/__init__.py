"""Publish ``listen``'s results to an MQTT broker (``edge-ser listen --mqtt URL``).

Three modules: :mod:`edge.mqtt.config` (the ``--mqtt-*`` options and the checked
:class:`MqttConfig`; standard library only), :mod:`edge.mqtt.payloads` (the messages) and
:mod:`edge.mqtt.sink` (:class:`MqttSink`, the sender; topics and delivery are described
there). paho-mqtt is imported only when a sink is made. Importing this package is cheap
(standard library and click): the sink (numpy, via the recogniser's results) is imported from
:mod:`edge.mqtt.sink` where one is made.
"""

from edge.mqtt.config import (
    INSTALL_HINT,
    MqttConfig,
    MqttError,
    config_from_options,
    given,
    import_paho,
    mqtt_options,
)

__all__ = ["INSTALL_HINT", "MqttConfig", "MqttError", "config_from_options", "given",
           "import_paho", "mqtt_options"]
