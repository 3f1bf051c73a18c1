#!/usr/bin/env bash
# Installs the Debian packages edge-ser's microphone path and its tests use, when missing:
# PortAudio (sounddevice's backend), PulseAudio (the virtual microphone in the tests), and
# the mosquitto MQTT broker and openssl (the `listen --mqtt` tests start their own broker,
# with a CA they make, on free ports; they never use the system service).
set -euo pipefail
need=()
for pkg in libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins mosquitto openssl; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "edge-ser: missing Debian packages: ${need[*]}; run: sudo apt-get install ${need[*]}" >&2
  exit 0
fi
echo "edge-ser: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
