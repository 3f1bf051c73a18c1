#!/usr/bin/env bash
# Build edge-ser's wheel and sdist from a clean copy of the sources, as a fresh clone has them.
#
#   bash tools/dist.sh OUT_DIR            the working tree (tracked files and new files that
#                                         are not ignored; what `make test` and `make pi-check`
#                                         install)
#   bash tools/dist.sh OUT_DIR vX.Y.Z     a tag (`make dist`; git archive of that commit)
#
# `python -m build` makes the sdist and then the wheel from the unpacked sdist (so a file the
# sdist lacks is missing from the wheel too, and the tests see it). Nothing is built inside
# the checkout (no build/ or *.egg-info left behind, no stale file from an earlier build).
# SOURCE_DATE_EPOCH is the commit's time, so the same sources give the same wheel, byte for
# byte. Prints the wheel's path on stdout; progress goes to stderr.
#
# Environment: PYTHON (an interpreter with the `build` package; .venv/bin/python).
set -euo pipefail

die() { echo "dist.sh: $*" >&2; exit 1; }

out=${1:-}
ref=${2:-}
[ -n "$out" ] || die "usage: dist.sh OUT_DIR [TAG]"
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
"$python" -c 'import build' 2>/dev/null ||
  die "$python has no 'build' package (pip install build; make venv installs it)"

src=$(mktemp -d "${TMPDIR:-/tmp}/edge-ser-dist.XXXXXX")
trap 'rm -rf "$src"' EXIT
if [ -n "$ref" ]; then
  git -C "$repo" rev-parse -q --verify "refs/tags/$ref" >/dev/null ||
    die "$ref is not a tag (make dist TAG=vX.Y.Z, after git tag vX.Y.Z)"
  git -C "$repo" archive "$ref" | tar -x -C "$src"
  epoch=$(git -C "$repo" log -1 --format=%ct "$ref")
elif git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  (cd "$repo" && git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
    tar --null -T - -cf -) | tar -x -C "$src"
  epoch=$(git -C "$repo" log -1 --format=%ct)
else  # an unpacked source tree without git: everything but venvs, builds and caches
  tar -C "$repo" --exclude='./.venv*' --exclude=./build --exclude=./dist \
    --exclude='*.egg-info' --exclude=__pycache__ --exclude=.pytest_cache \
    --exclude=.ruff_cache -cf - . | tar -x -C "$src"
  epoch=
fi
version=$(cd "$src" && "$python" -c 'import edge; print(edge.__version__)')
if [ -n "$ref" ] && [ "$ref" != "v$version" ]; then
  die "tag $ref does not match the version in edge/__init__.py ($version): tag v$version"
fi

mkdir -p "$out"
echo "dist.sh: building edge-ser $version from ${ref:-the working tree} into $out" >&2
if [ -n "$epoch" ]; then export SOURCE_DATE_EPOCH=$epoch; fi
"$python" -m build --outdir "$out" "$src" >&2
wheel="$out/edge_ser-$version-py3-none-any.whl"
[ -f "$wheel" ] || die "no wheel at $wheel"
realpath "$wheel"
