#!/usr/bin/env bash
# A private PulseAudio daemon with a virtual microphone, for tests and demos on machines
# without a sound card (CI, containers, this build box).
#
#   eval "$(bash tools/pulse.sh start)"   # starts it; prints the environment to export
#   paplay --latency-msec=500 speech.wav  # what is played into the sink ...
#   edge-ser listen --json                # ... is what the default input device records
#   bash tools/pulse.sh stop "$EDGE_SER_PULSE_DIR"
#
# What `start` does:
#   1. makes a runtime directory (mode 0700) of its own under ${TMPDIR:-/tmp}, so it never
#      touches a desktop's PulseAudio, the user's ~/.config/pulse or /run/user;
#   2. starts `pulseaudio` (no default script: -n) with the native protocol on a socket in
#      that directory and one module-null-sink `vmic` (48 kHz mono, like real hardware);
#      the sink's monitor `vmic.monitor` is the default source, i.e. the "microphone";
#   3. resamples with soxr-vhq (PULSE_RESAMPLE_METHOD overrides), since 16 kHz audio is
#      resampled into the 48 kHz sink and out of it again. PulseAudio's default,
#      speex-float-1, cuts the band above 6 kHz by 6-19 dB, enough to change a model's
#      labels (measured with a development CNN: all three clips of a replay became
#      "angry"); soxr-vhq is flat to 7 kHz (-1.8 dB at 7-8 kHz);
#   4. keeps a low-latency `parec` reading vmic.monitor (output discarded) and waits until
#      it delivers audio. Without it the null sink renders in blocks of up to 2 s whenever
#      no client asks for low latency, and a new recording starts up to 2 s late (measured
#      0.5-1.8 s; with the keeper 11-29 ms, and sound from paplay arrives within ~10 ms);
#   5. prints `export NAME=value` lines: PULSE_SERVER, PULSE_COOKIE, PULSE_RUNTIME_PATH,
#      XDG_RUNTIME_DIR and EDGE_SER_PULSE_DIR (the directory, which `stop` needs).
#
# Clients reach the daemon through PULSE_SERVER; PortAudio (sounddevice) reaches it through
# ALSA's `pulse` / `default` devices (libasound2-plugins' pulse plugin). Start the daemon
# before a process imports sounddevice: PortAudio lists the devices once, at import.
#
# Running as root: PulseAudio 16 without --system only warns ("This program is not intended
# to be run as root") and runs; HOME is pointed at the private directory for the daemon so
# its cookie and state do not land in /root, and the socket takes anonymous clients (it
# lives in a 0700 directory). Everything started here is stopped by the PIDs recorded in
# the directory, never by name.
#
# `stop DIR` ends parec, then the daemon (SIGTERM, which takes it about 2 s; SIGKILL after
# 5 s), and removes DIR. `env DIR` prints the export lines again. Exit status 0 on success;
# 1 with one line on stderr when something is missing or does not start.
set -euo pipefail

die() { echo "pulse.sh: $*" >&2; exit 1; }

export_lines() {
  local dir=$1
  printf 'export PULSE_SERVER=%q\n' "unix:$dir/pulse/native"
  printf 'export PULSE_COOKIE=%q\n' "$dir/cookie"
  printf 'export PULSE_RUNTIME_PATH=%q\n' "$dir/pulse"
  printf 'export XDG_RUNTIME_DIR=%q\n' "$dir"
  printf 'export EDGE_SER_PULSE_DIR=%q\n' "$dir"
}

# kill_pid FILE PATTERN: end the process whose PID is in FILE, if it is still running and its
# command line matches PATTERN (a PID reused by another program is left alone); wait for it.
kill_pid() {
  local file=$1 pattern=$2 pid
  [ -s "$file" ] || return 0
  pid=$(tr -dc '0-9' <"$file")
  [ -n "$pid" ] || return 0
  { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -Eq "$pattern" || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
}

start() {
  local tool
  for tool in pulseaudio pactl parec paplay; do
    command -v "$tool" >/dev/null ||
      die "$tool not found; install: apt-get install pulseaudio pulseaudio-utils libasound2-plugins"
  done
  local dir
  dir=$(mktemp -d "${TMPDIR:-/tmp}/edge-ser-pulse.XXXXXX")
  chmod 700 "$dir"
  mkdir -m 700 "$dir/pulse"
  eval "$(export_lines "$dir")"
  export HOME="$dir"  # the daemon's state directory ($HOME/.config/pulse), not the user's

  if ! pulseaudio --daemonize=yes --exit-idle-time=-1 --system=false -n \
      --use-pid-file=yes --log-target="file:$dir/pulseaudio.log" \
      --resample-method="${PULSE_RESAMPLE_METHOD:-soxr-vhq}" \
      --load="module-native-protocol-unix socket=$dir/pulse/native auth-anonymous=1" \
      --load="module-null-sink sink_name=vmic rate=48000 channels=1" \
      </dev/null >>"$dir/pulseaudio.log" 2>&1; then
    tail -n 3 "$dir/pulseaudio.log" >&2 || true
    rm -rf "$dir"
    die "pulseaudio did not start (log above)"
  fi
  # --daemonize returns once the daemon is up; the pid file is written at start-up
  for _ in $(seq 50); do
    [ -s "$dir/pulse/pid" ] && pactl info >/dev/null 2>&1 && break
    sleep 0.1
  done
  pactl info >/dev/null 2>&1 || { stop "$dir"; die "pulseaudio started but does not answer"; }
  pactl set-default-sink vmic
  pactl set-default-source vmic.monitor

  # The keeper: a low-latency recording of the monitor, drained to /dev/null. The first
  # byte through the FIFO is copied to $dir/keeper.primed, which says the low latency is on.
  mkfifo "$dir/keeper.fifo"
  { head -c 1 >"$dir/keeper.primed"; exec cat >/dev/null; } <"$dir/keeper.fifo" 2>/dev/null &
  echo $! >"$dir/drain.pid"
  parec --latency-msec=20 -d vmic.monitor --raw --rate=16000 --channels=1 --format=s16le \
    >"$dir/keeper.fifo" 2>>"$dir/parec.log" </dev/null &
  echo $! >"$dir/parec.pid"
  for _ in $(seq 200); do
    [ -s "$dir/keeper.primed" ] && break
    sleep 0.05
  done
  [ -s "$dir/keeper.primed" ] || { stop "$dir"; die "the monitor source delivers no audio"; }
  export_lines "$dir"
}

stop() {
  local dir=${1:-${EDGE_SER_PULSE_DIR:-}}
  [ -n "$dir" ] || die "usage: pulse.sh stop DIR (or set EDGE_SER_PULSE_DIR)"
  [ -d "$dir" ] || return 0
  [ -f "$dir/pulseaudio.log" ] || die "$dir is not a directory made by pulse.sh start"
  kill_pid "$dir/parec.pid" "^parec "
  kill_pid "$dir/drain.pid" "^(cat|bash|head)"
  kill_pid "$dir/pulse/pid" "^pulseaudio .*$dir"  # the pid file pulseaudio writes itself
  rm -rf "$dir"
}

case "${1:-}" in
  start) start ;;
  stop) stop "${2:-}" ;;
  env) [ -d "${2:-}" ] || die "usage: pulse.sh env DIR"; export_lines "$2" ;;
  *) die "usage: pulse.sh start | stop DIR | env DIR" ;;
esac
