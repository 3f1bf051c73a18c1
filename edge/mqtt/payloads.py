"""What ``listen --mqtt`` publishes: the result, state, summary and Home Assistant
discovery messages (pure functions of a result or the config; no network)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from edge import __version__
from edge.mqtt.config import MqttConfig

if TYPE_CHECKING:
    from edge.recognizer import Result


def encode(obj: Any) -> bytes:
    """A payload as compact UTF-8 JSON."""
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
