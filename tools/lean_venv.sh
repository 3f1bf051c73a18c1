#!/usr/bin/env bash
# Lean venvs: edge-ser with only what a device installs, to prove the edge package runs (and
# imports nothing else) there. Built once into a cache outside the repository and reused.
#
#   bash tools/lean_venv.sh litert          # prints the venv's path on stdout
#   bash tools/lean_venv.sh tflite-runtime
#   bash tools/lean_venv.sh wheel dist/edge_ser-0.2.0-py3-none-any.whl
#
# Kinds:
#   litert          pip install -e '.[mic]': the declared dependencies (numpy, click,
#                   ai-edge-litert) plus sounddevice, resolved by pip as a user's would be
#   tflite-runtime  the last tflite-runtime (2.14) with numpy<2, the only numpy it supports,
#                   plus click and sounddevice; the project itself with --no-deps
#   wheel WHEEL     `pip install WHEEL`, nothing else: what a user gets from a built wheel
#                   (numpy, click, ai-edge-litert), the package copied into the venv (not
#                   editable: the checkout is not on its path)
# litert and tflite-runtime also get the test tools pytest, hypothesis and soundfile (the
# tests read RAVDESS FLAC files through edge.audio's optional soundfile reader), to run the
# edge tests there.
#
# Cache: ${EDGE_SER_LEAN_CACHE:-${XDG_CACHE_HOME:-~/.cache}/edge-ser/lean}/KIND-HASH, where HASH
# covers pyproject.toml, this script, the repository's path (the install is editable), the
# Python version and, for a wheel, the wheel's SHA-256 (a new wheel gets a new venv). A venv is rebuilt when any of those change, or when a build did not finish
# (no .complete marker); superseded builds of this repository are removed. Concurrent callers
# wait on a lock. Progress goes to stderr.
#
# Environment: PYTHON (the interpreter to base the venv on; python3), EDGE_SER_LEAN_CACHE,
# LEAN_REBUILD=1 (build afresh).
set -euo pipefail

die() { echo "lean_venv.sh: $*" >&2; exit 1; }

kind=${1:-}
case "$kind" in
  litert | tflite-runtime) wheel= ;;
  wheel)
    wheel=${2:-}
    [ -f "$wheel" ] || die "usage: lean_venv.sh wheel PATH.whl (no wheel at '$wheel')"
    wheel=$(cd "$(dirname "$wheel")" && pwd)/$(basename "$wheel")
    ;;
  *) die "usage: lean_venv.sh litert|tflite-runtime|wheel WHEEL" ;;
esac

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}
command -v "$python" >/dev/null || die "$python not found; set PYTHON to a Python 3.9+ interpreter"
pyver=$("$python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
cache=${EDGE_SER_LEAN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edge-ser/lean}
hash=$({ cat "$repo/pyproject.toml" "${BASH_SOURCE[0]}"; echo "$repo $pyver";
  if [ -n "$wheel" ]; then sha256sum <"$wheel"; fi; } |
  sha256sum | cut -c1-12)
venv="$cache/$kind-$hash"
mkdir -p "$cache"

exec 9>"$cache/$kind.lock"
flock 9

if [ "${LEAN_REBUILD:-0}" = 1 ]; then rm -rf "$venv"; fi
if [ -f "$venv/.complete" ]; then
  echo "$venv"
  exit 0
fi

echo "lean_venv.sh: building the $kind venv in $venv (once; cached)" >&2
rm -rf "$venv"
"$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check --no-input -q)
test_tools=(pytest hypothesis soundfile)
case "$kind" in
  litert)
    "${pip[@]}" install -e "${repo}[mic]" "${test_tools[@]}" >&2
    ;;
  tflite-runtime)
    "${pip[@]}" install "tflite-runtime==2.14.*" "numpy<2" click sounddevice "${test_tools[@]}" >&2
    "${pip[@]}" install --no-deps -e "$repo" >&2
    ;;
  wheel)
    "${pip[@]}" install "$wheel" >&2
    ;;
esac
echo "$repo" >"$venv/.repo"
"$venv/bin/python" -m pip freeze --disable-pip-version-check --exclude-editable \
  >"$venv/requirements.txt"
touch "$venv/.complete"

# superseded builds of this repository (another hash, same .repo)
for old in "$cache/$kind"-*; do
  [ "$old" = "$venv" ] || [ ! -d "$old" ] && continue
  if [ "$(cat "$old/.repo" 2>/dev/null)" = "$repo" ]; then rm -rf "$old"; fi
done
echo "$venv"
