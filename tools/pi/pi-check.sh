#!/usr/bin/env bash
# pi-check: run the edge runtime in an emulated Raspberry Pi OS-like userland and check
# that it gives the same answers as the host. Default: Debian bookworm arm64 with
# Python 3.11 (what Raspberry Pi OS bookworm 64-bit is built on), under qemu-user
# emulating a Cortex-A72 (Raspberry Pi 4). PI_ARCH=armhf: the 32-bit image with
# tflite-runtime 2.14 and Debian's numpy 1.24.
#
#   bash tools/pi/pi-check.sh            (what `make pi-check` runs; needs root)
#   PI_ARCH=armhf bash tools/pi/pi-check.sh
#
# Steps:
#   1. host tools (debootstrap, qemu-user-static, binfmt-support; apt-get installs
#      what is missing) and qemu's binfmt_misc registration;
#   2. a cached Debian bookworm root filesystem (built once, outside the repo; a stamp
#      file marks it complete, anything else is rebuilt);
#   3. wheels of the edge dependencies for the Pi, downloaded on the host (cached),
#      pinned to the versions in the host's .venv so both sides run the same runtime;
#   4. a venv inside the root with those wheels (cached) and this project's wheel,
#      installed offline (--no-index, in a network namespace without a network);
#   5. `edge-ser info`, `edge-ser predict --json` on real RAVDESS clips (copied into
#      the root for the run and deleted after; one of them two sentences of one actor
#      joined, an utterance longer than a model window) and `edge-ser listen --file ...
#      --fast --json` on a recording of several of them end to end (utterances with the
#      clips' own pauses between them: final, interim and no_speech results), on the host
#      and in the emulated Pi;
#   6. tools/pi/compare.py: the same utterances at the same frames (start, end, every
#      result's event and time), the same labels, int8 scores of every window within one
#      quantisation step.
#
# Everything mounted (proc, sys, dev, the Pi's cpuinfo over /proc/cpuinfo, binfmt_misc
# if it was not) is unmounted on exit, also on failure or Ctrl-C; mounts left by a run
# that was killed outright are removed by the next one.
#
# Times printed here are under emulation (qemu-user on an x86 host): they are not
# Raspberry Pi figures.
#
# Environment (all optional):
#   PI_ARCH        arm64 or armhf                  (arm64)
#   PI_BOARD       pi4 or pi5 (arm64 only): the emulated CPU and its /proc/cpuinfo (pi4)
#   PI_ROOTFS      cached root filesystem          (/var/cache/edge-ser/pi-$PI_ARCH)
#   PI_WHEELS      cached wheels                   (/var/cache/edge-ser/wheels-aarch64)
#   PI_DEB_CACHE   cached .deb files for debootstrap (/var/cache/edge-ser/debs-$PI_ARCH)
#   PI_MIRROR      Debian mirror                   (the one apt on the host uses)
#   PI_QEMU_CPU    emulated CPU                    (arm64: cortex-a72, as in a Pi 4, or
#                  cortex-a76 for a pi5; armhf: cortex-a15). qemu's default CPU gives wrong int8 results
#                  through XNNPACK (up to 7 steps off on a test model).
#   PI_CLIPS       number of clips to predict      (12)
#   PI_LISTEN_CLIPS how many of them, end to end, `listen` streams, before the joined
#                  clip (4)
#   PI_MODELS      models to check: "default" (the default bundle), shipped names
#                  or .tflite paths, space-separated    (default)
#   PI_MODELS_DIR  a directory laid out like edge/models/ (*.tflite and a DEFAULT file)
#                  whose bundles replace the shipped ones: "default" is the one its DEFAULT
#                  names, a name is looked up there; the bundles are copied into the root
#                  and given with --model   ($EDGE_SER_TEST_MODELS, as for the tests; else
#                  the shipped ones, inside the installed package)
#   PI_OUT         where the JSON outputs are kept (a new /tmp/edge-ser-pi-check.XXXXXX)
#   PI_ALLOW_TIES=1 pass a label that differs only where its top two are within one
#                  int8 step on both sides (reported either way)
#   PI_REBUILD=1   rebuild the root filesystem and the venv from scratch
#   SER_DATA       RAVDESS speech directory        (../shared/data/ravdess-speech-16k)
#   HOST_VENV      the host venv with edge-ser     (.venv)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$REPO/tools/pi"

PI_ARCH=${PI_ARCH:-arm64}
PI_BOARD=${PI_BOARD:-pi4}
SUITE=bookworm
# Per architecture: Debian's name, the kernel's machine name, qemu's binfmt entry, the
# emulated CPU, the Pi's /proc/cpuinfo, wheel platforms, the interpreter distributions
# downloaded as wheels, extra Debian packages in the root, and the project's extras.
case $PI_ARCH in
    arm64)  # Raspberry Pi OS 64-bit: ai-edge-litert with numpy 2 from aarch64 wheels
        MACHINE=aarch64
        QEMU_NAME=aarch64
        case $PI_BOARD in
            pi4) DEFAULT_CPU=cortex-a72 ;;   # BCM2711: 4 x Cortex-A72
            pi5) DEFAULT_CPU=cortex-a76 ;;   # BCM2712: 4 x Cortex-A76 (int8 dot product)
            *) echo "pi-check: PI_BOARD must be pi4 or pi5, not '$PI_BOARD'" >&2; exit 2 ;;
        esac
        CPUINFO=cpuinfo-$PI_BOARD
        # wheel tags up to glibc 2.28 only: bookworm has 2.36
        WHEEL_PLATFORMS=(manylinux_2_27_aarch64 manylinux_2_28_aarch64 manylinux_2_17_aarch64 manylinux2014_aarch64)
        # pyproject's base dependencies; what ai-edge-litert needs comes with the resolver
        EDGE_DEPS=(ai-edge-litert numpy click flatbuffers)
        WHEEL_DEPS=1
        INCLUDE=python3,python3-venv,python3-pip
        VENV_FLAGS=()
        EXTRAS=""
        ;;
    armhf)  # Raspberry Pi OS 32-bit: tflite-runtime 2.14, Debian's numpy 1.24 (numpy<2)
        MACHINE=armv7l
        QEMU_NAME=arm
        [[ $PI_BOARD == pi4 ]] || { echo "pi-check: PI_ARCH=armhf checks a pi4 only" >&2; exit 2; }
        DEFAULT_CPU=cortex-a15   # ARMv7 + NEON + VFPv4: what a Pi 4 shows a 32-bit OS, less crc32
        CPUINFO=cpuinfo-pi4-armv7l
        # tflite-runtime 2.14 is manylinux_2_34 (<= bookworm's glibc 2.36)
        WHEEL_PLATFORMS=(manylinux_2_34_armv7l manylinux_2_31_armv7l manylinux_2_17_armv7l manylinux2014_armv7l)
        EDGE_DEPS=(tflite-runtime click)
        WHEEL_DEPS=0      # numpy comes from Debian: PyPI has no armv7l numpy wheels
        INCLUDE=python3,python3-venv,python3-pip,python3-numpy
        VENV_FLAGS=(--system-site-packages)
        EXTRAS="[tflite-runtime]"
        ;;
    *) echo "pi-check: PI_ARCH must be arm64 or armhf, not '$PI_ARCH'" >&2; exit 2 ;;
esac
PI_ROOTFS=${PI_ROOTFS:-/var/cache/edge-ser/pi-$PI_ARCH}
PI_WHEELS=${PI_WHEELS:-/var/cache/edge-ser/wheels-$MACHINE}
PI_DEB_CACHE=${PI_DEB_CACHE:-/var/cache/edge-ser/debs-$PI_ARCH}
PI_QEMU_CPU=${PI_QEMU_CPU:-$DEFAULT_CPU}
PI_CLIPS=${PI_CLIPS:-12}
PI_LISTEN_CLIPS=${PI_LISTEN_CLIPS:-4}
PI_MODELS=${PI_MODELS:-default}
PI_MODELS_DIR=${PI_MODELS_DIR:-${EDGE_SER_TEST_MODELS:-}}
PI_ALLOW_TIES=${PI_ALLOW_TIES:-0}
PI_REBUILD=${PI_REBUILD:-0}
SER_DATA=${SER_DATA:-../shared/data/ravdess-speech-16k}
HOST_VENV=${HOST_VENV:-.venv}

# The recipe of the root filesystem: a cached root built from another recipe is rebuilt.
ROOTFS_RECIPE="edge-ser pi rootfs v1: debootstrap --arch=$PI_ARCH --variant=minbase --include=$INCLUDE $SUITE"
STAMP_NAME=.edge-ser-rootfs-complete
PI_VENV=/opt/edge-ser            # inside the root
RUN_IN_ROOT=/tmp/edge-ser-pi-check   # inside the root, removed after every run

log() { printf '[pi-check] %s\n' "$*" >&2; }
die() { printf '[pi-check] error: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

cd "$REPO"
case $SER_DATA in /*) ;; *) SER_DATA="$REPO/$SER_DATA" ;; esac
case $HOST_VENV in /*) ;; *) HOST_VENV="$REPO/$HOST_VENV" ;; esac

# The root is deleted and rebuilt when incomplete: refuse anything but a plain directory.
case $PI_ROOTFS in
    /*/*) [[ $PI_ROOTFS != *..* && $PI_ROOTFS != */ ]] || die "PI_ROOTFS=$PI_ROOTFS: give a plain absolute path" ;;
    *) die "PI_ROOTFS=$PI_ROOTFS: give an absolute path at least two levels deep" ;;
esac
[[ $(id -u) == 0 ]] || die "needs root (debootstrap, chroot and mounts); run it as root or with sudo"
HOST_MACHINE=$(uname -m)
[[ $HOST_MACHINE == x86_64 || $HOST_MACHINE == aarch64 ]] || die "unsupported host $HOST_MACHINE"
# On an arm64 host the arm64 root runs natively: nothing to emulate.
EMULATED=1
[[ $HOST_MACHINE == "$MACHINE" ]] && EMULATED=0

# ---------------------------------------------------------------- mounts and cleanup
MOUNTS=()          # what this run mounted, in order; unmounted in reverse on exit
RUN_DIR_HOST=""    # $PI_ROOTFS$RUN_IN_ROOT once created
HOST_CODE=""       # the project's wheel unpacked on the host
BINFMT_MOUNTED=0
LOCKED=0           # only the holder of the lock touches the root's mounts
TIMINGS=()
T_START=$(now)

report_timings() {
    ((${#TIMINGS[@]})) || return 0
    TIMINGS+=("whole pi-check (wall clock on this host): $(elapsed "$T_START") s")
    log "timings (emulated = qemu-user on this host: not Raspberry Pi times):"
    local t
    for t in "${TIMINGS[@]}"; do log "  $t"; done
}

unmount_one() {
    local target=$1
    mountpoint -q "$target" 2>/dev/null || return 0
    umount "$target" 2>/dev/null || umount -l "$target" || log "warning: could not unmount $target"
}

cleanup() {
    local rc=$?
    set +e
    report_timings
    local i
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        unmount_one "${MOUNTS[i]}"
    done
    MOUNTS=()
    [[ $LOCKED == 1 ]] && unmount_under "$PI_ROOTFS"
    if [[ $LOCKED == 1 && -n $RUN_DIR_HOST && -d $RUN_DIR_HOST ]]; then
        # Never remove through a mount point: only once nothing is mounted below.
        if [[ -z $(mounts_under "$PI_ROOTFS") ]]; then
            rm -rf --one-file-system "$RUN_DIR_HOST"
        else
            log "warning: mounts left under $PI_ROOTFS; not removing $RUN_DIR_HOST"
        fi
    fi
    [[ -n $HOST_CODE ]] && rm -rf "$HOST_CODE"
    if [[ $BINFMT_MOUNTED == 1 ]]; then
        unmount_one /proc/sys/fs/binfmt_misc
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# Mount points at or below a directory (or its .partial build), deepest first.
mounts_under() {
    local root=$1
    findmnt -rn -o TARGET | awk -v r="$root" \
        '$0 == r || index($0, r "/") == 1 || index($0, r ".partial/") == 1' | sort -r
}

# Unmount whatever a killed earlier run (or debootstrap) may have left mounted there.
unmount_under() {
    local t
    while read -r t; do
        [[ -n $t ]] || continue
        umount "$t" 2>/dev/null || umount -l "$t" 2>/dev/null || log "warning: could not unmount $t"
    done < <(mounts_under "$1")
}

do_mount() {  # do_mount TARGET mount-args... ; records TARGET for cleanup
    local target=$1
    shift
    mount "$@" "$target"
    MOUNTS+=("$target")
}

# ---------------------------------------------------------------- 1. host tools, binfmt
ensure_host_tools() {
    local need=()
    command -v debootstrap >/dev/null || need+=(debootstrap)
    [[ $EMULATED == 0 || -x /usr/bin/qemu-$QEMU_NAME-static ]] || need+=(qemu-user-static)
    command -v update-binfmts >/dev/null || need+=(binfmt-support)
    if ((${#need[@]})); then
        log "installing host packages: ${need[*]}"
        apt-get update -qq || log "warning: apt-get update failed for some sources; installing anyway"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
}

ensure_binfmt() {
    [[ $EMULATED == 1 ]] || return 0
    if ! mountpoint -q /proc/sys/fs/binfmt_misc; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc \
            || die "cannot mount binfmt_misc (a container without privileges?)"
        BINFMT_MOUNTED=1
    fi
    local entry=/proc/sys/fs/binfmt_misc/qemu-$QEMU_NAME
    if [[ ! -e $entry ]] || ! grep -qx enabled "$entry"; then
        update-binfmts --enable "qemu-$QEMU_NAME" 2>/dev/null || true
    fi
    if [[ ! -e $entry ]] || ! grep -qx enabled "$entry"; then
        die "qemu-$QEMU_NAME is not registered with binfmt_misc (update-binfmts --enable qemu-$QEMU_NAME failed)"
    fi
    BINFMT_INTERP=$(awk '$1 == "interpreter" { print $2 }' "$entry")
    BINFMT_FLAGS=$(awk '$1 == "flags:" { print $2 }' "$entry")
}

# Without the F flag the kernel looks for the interpreter inside the chroot.
ensure_interp_in_root() {
    local root=$1
    if [[ $EMULATED == 1 && $BINFMT_FLAGS != *F* ]]; then
        mkdir -p "$root$(dirname "$BINFMT_INTERP")"
        cp "/usr/bin/qemu-$QEMU_NAME-static" "$root$BINFMT_INTERP"
    fi
}

detect_mirror() {
    if [[ -n ${PI_MIRROR:-} ]]; then
        echo "$PI_MIRROR"
        return
    fi
    local m
    # shellcheck disable=SC2016  # apt's own $(FIELD) syntax, not the shell's
    m=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null \
        | awk -v s="$SUITE" '$2 == s { print $1; exit }')
    echo "${m:-http://deb.debian.org/debian/}"
}

# ---------------------------------------------------------------- 2. root filesystem
rootfs_ok() {
    [[ -f $PI_ROOTFS/$STAMP_NAME ]] && [[ $(cat "$PI_ROOTFS/$STAMP_NAME") == "$ROOTFS_RECIPE" ]] \
        && [[ -x $PI_ROOTFS/usr/bin/python3 ]]
}

build_rootfs() {
    local partial=$PI_ROOTFS.partial mirror t0
    mirror=$(detect_mirror)
    unmount_under "$PI_ROOTFS"
    [[ -z $(mounts_under "$PI_ROOTFS") ]] || die "mounts remain under $PI_ROOTFS; not deleting it"
    rm -rf --one-file-system "$partial" "$PI_ROOTFS"
    mkdir -p "$(dirname "$PI_ROOTFS")" "$PI_DEB_CACHE"
    log "building the $SUITE $PI_ARCH root in $PI_ROOTFS from $mirror (once; several minutes)"
    t0=$(now)
    if ! debootstrap --arch="$PI_ARCH" --variant=minbase --include="$INCLUDE" \
        --cache-dir="$PI_DEB_CACHE" "$SUITE" "$partial" "$mirror" >"$partial.log" 2>&1; then
        tail -n 30 "$partial.log" >&2 || true
        unmount_under "$PI_ROOTFS"
        die "debootstrap failed (full log: $partial.log)"
    fi
    unmount_under "$PI_ROOTFS"
    ensure_interp_in_root "$partial"
    rm -f "$partial"/var/cache/apt/archives/*.deb
    QEMU_CPU=$PI_QEMU_CPU chroot "$partial" /usr/bin/python3 -c \
        "import platform, sys; assert platform.machine() == '$MACHINE', platform.machine(); assert sys.version_info[:2] == (3, 11)" \
        || die "the new root's python3 does not run as $MACHINE Python 3.11"
    echo "$ROOTFS_RECIPE" >"$partial/$STAMP_NAME"
    mv "$partial" "$PI_ROOTFS"
    rm -f "$partial.log"
    TIMINGS+=("debootstrap of the $PI_ARCH root (host time, includes downloads): $(elapsed "$t0") s")
}

# ---------------------------------------------------------------- 3. wheels
HOST_PY=""
pinned_deps() {  # the EDGE_DEPS, pinned to the host venv's versions where it has them
    "$HOST_PY" "$HERE/pins.py" "${EDGE_DEPS[@]}"
}

ensure_wheels() {
    local reqs stamp=$PI_WHEELS/.requirements plat_args=() p
    reqs=$(pinned_deps)
    mkdir -p "$PI_WHEELS"
    if [[ -f $stamp && $(cat "$stamp") == "$reqs" ]] && compgen -G "$PI_WHEELS/*.whl" >/dev/null; then
        return
    fi
    for p in "${WHEEL_PLATFORMS[@]}"; do plat_args+=(--platform "$p"); done
    log "downloading $MACHINE wheels: ${reqs//$'\n'/ }"
    rm -f "$PI_WHEELS"/*.whl "$stamp"
    [[ $WHEEL_DEPS == 1 ]] || plat_args+=(--no-deps)
    # shellcheck disable=SC2086
    if ! "$HOST_PY" -m pip download -q --disable-pip-version-check --only-binary=:all: \
        --python-version 3.11 --implementation cp --abi cp311 "${plat_args[@]}" \
        -d "$PI_WHEELS" $reqs >"$PI_WHEELS/.download.log" 2>&1; then
        cat "$PI_WHEELS/.download.log" >&2
        die "downloading the $MACHINE wheels failed"
    fi
    echo "$reqs" >"$stamp"
}

# The host side runs the same interpreter distributions as the Pi. On arm64 that is the
# .venv itself (the Pi's wheels are pinned to its versions). On armhf the Pi runs
# tflite-runtime with Debian's numpy 1.24, and TFLite's int8 kernels changed between
# tflite-runtime 2.14 and ai-edge-litert (up to several steps on the same x86 machine),
# so the host reference is a venv with the Pi's versions (cached).
ensure_host_ref() {
    HOST_RUN_PY=$HOST_PY
    [[ $PI_ARCH == armhf ]] || return 0
    local venv=${PI_HOST_REF:-/var/cache/edge-ser/host-ref-$PI_ARCH} reqs=() numpy w
    numpy=$(dpkg-query --admindir="$PI_ROOTFS/var/lib/dpkg" -W -f='${Version}' python3-numpy)
    numpy=${numpy#*:}
    reqs+=("numpy==${numpy%%[-+]*}")
    for w in "$PI_WHEELS"/*.whl; do  # the Pi's wheels: name-version-...
        w=$(basename "$w")
        reqs+=("$(cut -d- -f1 <<<"$w" | tr _ -)==$(cut -d- -f2 <<<"$w")")
    done
    if [[ ! -x $venv/bin/python || $(cat "$venv/.edge-ser-reqs" 2>/dev/null) != "${reqs[*]}" ]]; then
        log "host reference venv $venv: ${reqs[*]}"
        rm -rf "$venv"
        "$HOST_PY" -m venv "$venv"
        if ! "$venv/bin/pip" install -q --disable-pip-version-check --only-binary=:all: "${reqs[@]}" \
            >"$venv.log" 2>&1; then
            cat "$venv.log" >&2
            die "could not install the host reference venv for $PI_ARCH"
        fi
        echo "${reqs[*]}" >"$venv/.edge-ser-reqs"
    fi
    HOST_RUN_PY=$venv/bin/python
}

# ---------------------------------------------------------------- 4. project wheel, venv
build_project_wheel() {  # into $1: tools/dist.sh, as make test builds and checks it
    local out=$1
    if ! PYTHON="$HOST_PY" bash "$REPO/tools/dist.sh" "$out" >"$out.log" 2>&1; then
        cat "$out.log" >&2
        die "building the project's wheel failed"
    fi
    rm -f "$out.log"
    compgen -G "$out/edge_ser-*.whl" >/dev/null || die "building the project's wheel gave no edge_ser wheel"
}

# Run a command inside the emulated Pi: clean environment, the Pi's CPU, no network.
pi() {
    env -i PATH="$PI_VENV/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        HOME=/root LANG=C.UTF-8 TERM=dumb QEMU_CPU="$PI_QEMU_CPU" \
        PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_NO_INDEX=1 \
        "$UNSHARE" --net "$CHROOT" "$PI_ROOTFS" "$@" </dev/null
}

mount_pi() {
    local r=$PI_ROOTFS
    do_mount "$r/proc" -t proc proc
    do_mount "$r/sys" -t sysfs -o ro sysfs
    do_mount "$r/dev" --bind /dev
    # qemu-user 7.2 passes the host's x86 /proc/cpuinfo through; XNNPACK's CPU detection
    # then crashes. A Raspberry Pi 4's (4 x Cortex-A72) makes it load as on the Pi.
    do_mount "$r/proc/cpuinfo" --bind "$HERE/$CPUINFO"
}

ensure_venv() {  # the dependency wheels, cached in the root until the wheel set changes
    local want have=""
    want=$(cd "$PI_WHEELS" && printf '%s\n' ./*.whl | sort | sha256sum | cut -d' ' -f1)
    [[ -f $PI_ROOTFS$PI_VENV/.edge-ser-deps ]] && have=$(cat "$PI_ROOTFS$PI_VENV/.edge-ser-deps")
    if [[ $want == "$have" && -x $PI_ROOTFS$PI_VENV/bin/python && $PI_REBUILD != 1 ]]; then
        return
    fi
    local t0
    t0=$(now)
    log "creating the venv $PI_VENV in the root (offline, under emulation)"
    rm -rf --one-file-system "${PI_ROOTFS:?}$PI_VENV"
    pi /usr/bin/python3 -m venv "${VENV_FLAGS[@]}" "$PI_VENV"
    # shellcheck disable=SC2046
    pi "$PI_VENV/bin/pip" install -q --no-index --find-links "$RUN_IN_ROOT/wheels" \
        $(pinned_deps)
    echo "$want" >"$PI_ROOTFS$PI_VENV/.edge-ser-deps"
    TIMINGS+=("venv + dependency wheels in the root (emulated): $(elapsed "$t0") s")
}

# ---------------------------------------------------------------- 5. clips
# tools/pi/clips.py, on the host (the project's venv): RAVDESS names parsed by train.corpora,
# the WAVs both sides read written there; nothing of it runs in the Pi.
select_clips() {  # prints $PI_CLIPS RAVDESS files: all emotions, the last actors first
    "$HOST_PY" "$HERE/clips.py" select "$SER_DATA" "$PI_CLIPS"
}

select_join() {  # prints two RAVDESS files to join: one actor, one emotion, statements 1 and 2
    "$HOST_PY" "$HERE/clips.py" pair "$SER_DATA"
}

to_wav() {  # to_wav DIR FILE... : WAVs as they are, anything else decoded to 16-bit WAV
    "$HOST_PY" "$HERE/clips.py" to-wav "$@"
}

concat_wavs() {  # concat_wavs OUT NAME... : the clips (in $RUN_DIR_HOST/clips) end to end
    "$HOST_PY" "$HERE/clips.py" concat "$@"
}

join_wavs() {  # join_wavs OUT A B : A's speech then B's with only ~0.2 s of their quiet
    # between (less than the endpointer's 0.4 s pause): one utterance longer than a model
    # window, hence several windows of scores (tools/pi/clips.py)
    "$HOST_PY" "$HERE/clips.py" join "$@"
}

# ---------------------------------------------------------------- main
mkdir -p "$(dirname "$PI_ROOTFS")"
exec 9>"${PI_ROOTFS}.lock"
if ! flock -n 9; then
    log "waiting for another pi-check to finish with $PI_ROOTFS"
    flock -w 3600 9 || die "another pi-check holds ${PI_ROOTFS}.lock"
fi
LOCKED=1

CHROOT=$(command -v chroot) || die "no chroot command"
UNSHARE=$(command -v unshare) || die "no unshare command"
if [[ $EMULATED == 1 ]]; then
    EMULATED_LABEL=" emulated (qemu-user, $PI_QEMU_CPU; not Pi figures)"
else
    EMULATED_LABEL=" native on this $HOST_MACHINE host (not a Pi)"
fi
HOST_PY=$HOST_VENV/bin/python
[[ -x $HOST_PY ]] \
    || die "no host edge-ser in $HOST_VENV (set the project up first, e.g. make test's set-up, or set HOST_VENV)"
[[ -d $SER_DATA ]] || die "no RAVDESS data at $SER_DATA (set SER_DATA)"

ensure_host_tools
ensure_binfmt
unmount_under "$PI_ROOTFS"
if [[ $PI_REBUILD == 1 ]] || ! rootfs_ok; then
    build_rootfs
else
    log "using the cached root $PI_ROOTFS"
    ensure_interp_in_root "$PI_ROOTFS"
fi
ensure_wheels
ensure_host_ref

OUT=${PI_OUT:-$(mktemp -d /tmp/edge-ser-pi-check.XXXXXX)}
mkdir -p "$OUT"
RUN_DIR_HOST=$PI_ROOTFS$RUN_IN_ROOT
rm -rf --one-file-system "$RUN_DIR_HOST"
mkdir -p "$RUN_DIR_HOST/wheels" "$RUN_DIR_HOST/dist" "$RUN_DIR_HOST/clips"
cp "$PI_WHEELS"/*.whl "$RUN_DIR_HOST/wheels/"
build_project_wheel "$RUN_DIR_HOST/dist"
# The host runs the same code as the Pi: the wheel's files first on the .venv's path (a
# tree edited during the run cannot make the two sides differ).
HOST_CODE=$(mktemp -d /tmp/edge-ser-pi-host.XXXXXX)
"$HOST_PY" -m zipfile -e "$(compgen -G "$RUN_DIR_HOST/dist/edge_ser-*.whl" | head -n 1)" "$HOST_CODE"
mapfile -t CLIPS < <(select_clips)
((${#CLIPS[@]})) || die "no clips selected from $SER_DATA"
# The corpus is licensed: the copies live only for this run, inside the root.
# The edge reads WAV itself (FLAC needs soundfile, not an edge dependency): FLAC clips
# are decoded losslessly to 16-bit WAV on the host, and both sides read the same WAVs.
to_wav "$RUN_DIR_HOST/clips" "${CLIPS[@]}"
# Two sentences of one actor joined into one utterance longer than a model window.
mapfile -t JOIN < <(select_join)
((${#JOIN[@]} == 2)) || die "no two RAVDESS clips to join from $SER_DATA"
mkdir -p "$RUN_DIR_HOST/join"
to_wav "$RUN_DIR_HOST/join" "${JOIN[@]}"
JOIN=("$(basename "${JOIN[0]%.*}")" "$(basename "${JOIN[1]%.*}")")
JOINED="joined-${JOIN[0]}.wav"
join_wavs "$RUN_DIR_HOST/clips/$JOINED" "$RUN_DIR_HOST/join/${JOIN[0]}.wav" "$RUN_DIR_HOST/join/${JOIN[1]}.wav"
rm -rf "$RUN_DIR_HOST/join"
log "clips: ${#CLIPS[@]} from $SER_DATA and $JOINED (${JOIN[0]} then ${JOIN[1]}, the pause between them cut)"

mount_pi
ensure_venv
t0=$(now)
pi "$PI_VENV/bin/pip" uninstall -q -y edge-ser >/dev/null 2>&1 || true
pi "$PI_VENV/bin/pip" install -q --no-index --find-links "$RUN_IN_ROOT/wheels" \
    "$RUN_IN_ROOT/dist/$(basename "$(compgen -G "$RUN_DIR_HOST/dist/edge_ser-*.whl" | head -n 1)")$EXTRAS"
pi "$PI_VENV/bin/pip" check >&2
TIMINGS+=("install of the project wheel in the root (emulated): $(elapsed "$t0") s")

grep -m1 PRETTY_NAME "$PI_ROOTFS/etc/os-release" | sed 's/^/[pi-check] root: /' >&2

# Names relative to the clip directory, the same on both sides.
CLIP_NAMES=()
for c in "${CLIPS[@]}"; do
    c=$(basename "$c")
    CLIP_NAMES+=("${c%.*}.wav")
done
CLIP_NAMES+=("$JOINED")
# `listen` streams one recording made of the first clips and the joined one end to end:
# several utterances with the clips' own quiet between them (final, interim and no_speech
# results; compare.py fails a recording without all three), changes of emotion, and an
# utterance of several windows.
concat_wavs "$RUN_DIR_HOST/clips/stream.wav" "${CLIP_NAMES[@]:0:$PI_LISTEN_CLIPS}" "$JOINED"

host_edge() {  # edge-ser on the host, from the wheel's code, in the clip directory
    (cd "$RUN_DIR_HOST/clips" && env -u EDGE_SER_MODEL PYTHONPATH="$HOST_CODE" "$HOST_RUN_PY" -c \
        'import sys; from edge.cli import main; sys.argv[0] = "edge-ser"; sys.exit(main())' "$@")
}

pi_edge() {  # edge-ser in the root, from the clip directory
    # shellcheck disable=SC2016  # expanded by the Pi's sh
    pi /bin/sh -c 'cd "$0" && exec "$@"' "$RUN_IN_ROOT/clips" "$PI_VENV/bin/edge-ser" "$@"
}

run_both() {  # run_both NAME edge-ser-args... : stdout to $OUT/NAME.{host,pi}.jsonl
    local name=$1 t0 rc=0
    shift
    t0=$(now)
    host_edge "$@" >"$OUT/$name.host.jsonl" 2>"$OUT/$name.host.err" || rc=$?
    sed 's/^/  host: /' "$OUT/$name.host.err" >&2
    ((rc == 0)) || die "edge-ser $* failed on the host (exit $rc)"
    TIMINGS+=("host: edge-ser $name: $(elapsed "$t0") s")
    t0=$(now)
    pi_edge "$@" >"$OUT/$name.pi.jsonl" 2>"$OUT/$name.pi.err" || rc=$?
    sed "s/^/  $PI_ARCH: /" "$OUT/$name.pi.err" >&2
    ((rc == 0)) || die "edge-ser $* failed in the $PI_ARCH root (exit $rc)"
    TIMINGS+=("$PI_ARCH$EMULATED_LABEL: edge-ser $name: $(elapsed "$t0") s")
}

compare() {  # compare MODE NAME
    log "  host vs $PI_ARCH:"
    local ties=()
    [[ $PI_ALLOW_TIES == 1 ]] && ties=(--allow-ties)
    "$HOST_PY" "$HERE/compare.py" --mode "$1" "${ties[@]}" \
        "$OUT/$2.host.jsonl" "$OUT/$2.pi.jsonl" >&2 || status=1
}

host_edge_file=$(cd / && PYTHONPATH="$HOST_CODE" "$HOST_RUN_PY" -c 'import edge; print(edge.__file__)')
[[ $host_edge_file == "$HOST_CODE"/* ]] || die "the host imports edge from $host_edge_file, not the wheel"
VERSIONS='import platform
from importlib import metadata
def v(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
runtime = [f"{n} {v(n)}" for n in ("ai-edge-litert", "tflite-runtime") if v(n)]
print(platform.machine(), "Python", platform.python_version(), "numpy", v("numpy"), *runtime)'
log "host:  $(PYTHONPATH="$HOST_CODE" "$HOST_RUN_PY" -c "$VERSIONS")"
log "$PI_ARCH: $(pi "$PI_VENV/bin/python" -c "$VERSIONS")"

# A bundle in $PI_MODELS_DIR by name: as `--model` looks one up in edge/models/.
models_dir_bundle() {  # models_dir_bundle NAME ; prints the path
    local name=$1 c
    if [[ $name == default ]]; then
        [[ -f $PI_MODELS_DIR/DEFAULT ]] || die "PI_MODELS_DIR=$PI_MODELS_DIR has no DEFAULT file"
        name=$(tr -d '[:space:]' <"$PI_MODELS_DIR/DEFAULT")
    fi
    for c in "$name" "$name.tflite" "$name-int8.tflite"; do
        [[ -f $PI_MODELS_DIR/$c ]] && { echo "$PI_MODELS_DIR/$c"; return; }
    done
    die "no bundle '$name' in PI_MODELS_DIR=$PI_MODELS_DIR"
}

status=0
mkdir -p "$RUN_DIR_HOST/models"
if [[ -n $PI_MODELS_DIR ]]; then
    [[ -d $PI_MODELS_DIR ]] || die "PI_MODELS_DIR=$PI_MODELS_DIR is not a directory"
    log "bundles from $PI_MODELS_DIR, not the shipped ones"
fi
for model in $PI_MODELS; do
    # "default": no --model, the CLI's own default; a file: copied into the root; else a
    # shipped name that both installs resolve. With PI_MODELS_DIR, "default" and names
    # are looked up there and the file copied into the root.
    src=""
    if [[ -f $model ]]; then
        src=$model
    elif [[ -n $PI_MODELS_DIR ]]; then
        src=$(models_dir_bundle "$model")
    fi
    if [[ -n $src ]]; then
        cp "$src" "$RUN_DIR_HOST/models/"
        margs=(--model "../models/$(basename "$src")")
        tag=$(basename "$src" .tflite)
        [[ $model == default ]] && tag=default
        log "model $tag: $src"
    elif [[ $model == default ]]; then
        margs=()
        tag=default
    else
        margs=(--model "$model")
        tag=$model
    fi
    log "model $tag: edge-ser info"
    rc=0
    pi_edge info "${margs[@]:1}" >"$OUT/$tag.info.txt" 2>&1 || rc=$?
    sed "s/^/  $PI_ARCH: /" "$OUT/$tag.info.txt" >&2
    if ((rc)); then
        if [[ $tag == default ]] && grep -q DEFAULT "$OUT/$tag.info.txt"; then
            log "hint: the wheel lacks edge/models/DEFAULT: pyproject's package-data must list it"
        fi
        if [[ -z $src ]]; then
            log "hint: to check other bundles than the shipped ones, PI_MODELS_DIR=DIR (*.tflite and DEFAULT)"
        fi
        die "edge-ser info${margs[1]:+ ${margs[1]}} failed in the $PI_ARCH root (exit $rc)"
    fi
    run_both "$tag.info" info --json "${margs[@]:1}"
    compare info "$tag.info"

    log "model $tag: edge-ser predict --json on ${#CLIP_NAMES[@]} clips"
    run_both "$tag.predict" predict "${margs[@]}" --json "${CLIP_NAMES[@]}"
    compare predict "$tag.predict"
    if [[ $HOST_RUN_PY != "$HOST_PY" ]]; then
        log "  for information, not checked: $PI_ARCH vs the host's .venv runtime (another TFLite):"
        HOST_RUN_PY=$HOST_PY host_edge predict "${margs[@]}" --json "${CLIP_NAMES[@]}" \
            >"$OUT/$tag.predict.host-venv.jsonl" 2>/dev/null || true
        "$HOST_PY" "$HERE/compare.py" --mode predict "$OUT/$tag.predict.host-venv.jsonl" \
            "$OUT/$tag.predict.pi.jsonl" 2>&1 | tail -n 1 | sed 's/^/  /' >&2 || true
    fi

    log "model $tag: edge-ser listen --file stream.wav --fast --json (${PI_LISTEN_CLIPS} clips and the joined one end to end)"
    run_both "$tag.listen" listen "${margs[@]}" --file stream.wav --fast --json
    compare listen "$tag.listen"
done

log "outputs kept in $OUT"
if ((status)); then
    die "the $PI_ARCH root does not agree with the host (see above)"
fi
log "OK: the $PI_ARCH root ($MACHINE, Python 3.11, $PI_BOARD cpuinfo, qemu $PI_QEMU_CPU) agrees with the host"
