#!/usr/bin/env bash
# Build the pjsua2 Python binding from the vendored pjproject tarball and install it into
# the venv. Built once: the wheel is cached under .cache/pjsua2/<key>/, where the key
# covers the tarball's sha256, config_site.h, this script and the target Python (ABI and
# machine), so a second run only checks that the venv has that build.
#
#   third_party/build-pjsua2.sh [--python PY] [--no-install] [--print-key]
#
#   --python PY    the interpreter to build for and install into (default .venv/bin/python)
#   --no-install   build (or find) the cached wheel and print its path; leave the venv alone
#                  (packaging: the .deb and the Jetson image install this wheel)
#   --print-key    print the cache key and exit
#
# Environment: PJSUA2_TARBALL (default third_party/pjproject-2.15.1.tar.gz),
# PJSUA2_CACHE (default .cache/pjsua2), JOBS (default 2), PJSUA2_KEEP_BUILD=1 keeps the
# unpacked source tree (about 400 MB) after a successful build.
#
# Needs: build-essential, swig, python3.11-dev, libssl-dev (OpenSSL 3), uuid-dev
# (the Makefile's APT_PACKAGES). The same recipe runs on x86_64 and arm64 (Jetson).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRIPT="$ROOT/third_party/build-pjsua2.sh"
PJ_VERSION=2.15.1
TARBALL_SHA256=380bb718c991a662a15288210d580861ab4ce25222f50043313159ad3f267b8e
TARBALL=${PJSUA2_TARBALL:-$ROOT/third_party/pjproject-$PJ_VERSION.tar.gz}
CONFIG_SITE="$ROOT/third_party/pjproject/config_site.h"
CACHE=${PJSUA2_CACHE:-$ROOT/.cache/pjsua2}
JOBS=${JOBS:-2}
PY="$ROOT/.venv/bin/python"
INSTALL=1
PRINT_KEY=0

while [ $# -gt 0 ]; do
    case "$1" in
        --python) PY=$2; shift 2 ;;
        --no-install) INSTALL=0; shift ;;
        --print-key) PRINT_KEY=1; shift ;;
        *) echo "build-pjsua2: unknown argument $1" >&2; exit 2 ;;
    esac
done

say() { echo "build-pjsua2: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

[ -f "$TARBALL" ] || die "no pjproject tarball at $TARBALL"
[ -f "$CONFIG_SITE" ] || die "no $CONFIG_SITE"
[ -x "$PY" ] || die "no Python interpreter at $PY (create the venv first: make deps)"
# absolute (the build runs in other directories), but not resolved: a venv's python is a
# symlink to the base interpreter, and the venv is what we build for and install into
PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"

# 1. The tarball must be exactly the vendored upstream release.
actual=$(sha256sum "$TARBALL" | cut -d' ' -f1)
if [ "$actual" != "$TARBALL_SHA256" ]; then
    die "sha256 mismatch for $TARBALL:
    expected $TARBALL_SHA256 (pjproject $PJ_VERSION, see third_party/README.md)
    got      $actual
  refusing to build from a tarball that is not the vendored upstream release."
fi

# 2. Cache key: what went into the build and what it is built for.
py_tag=$("$PY" -c 'import platform, sys, sysconfig
print(sys.implementation.cache_tag, sysconfig.get_config_var("EXT_SUFFIX"), platform.machine())')
KEY=$({
    echo "tarball $TARBALL_SHA256"
    echo "config_site $(sha256sum "$CONFIG_SITE" | cut -d' ' -f1)"
    echo "script $(sha256sum "$SCRIPT" | cut -d' ' -f1)"
    echo "python $py_tag"
} | sha256sum | cut -c1-16)
if [ "$PRINT_KEY" = 1 ]; then
    echo "$KEY"
    exit 0
fi
OUT="$CACHE/$KEY"
STAMP="$OUT/stamp"
# the venv's record of which build it carries
MARKER=$("$PY" -c 'import sys; print(sys.prefix)')/.pjsua2-build

find_wheel() { { ls "$OUT"/dist/pjsua2-*.whl 2>/dev/null || true; } | head -n1; }

build() {
    local t0 src log
    t0=$(date +%s)
    for tool in gcc g++ make swig; do
        command -v "$tool" >/dev/null || die "$tool not found (apt-get install build-essential swig)"
    done
    "$PY" -c 'import os, sysconfig, sys
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
        || die "Python.h not found for $PY (apt-get install python3.11-dev)"
    [ -f /usr/include/openssl/ssl.h ] || die "OpenSSL headers not found (apt-get install libssl-dev)"

    rm -rf "$OUT"
    mkdir -p "$OUT/dist"
    log="$OUT/build.log"
    say "building pjproject $PJ_VERSION and its Python binding in $OUT (-j$JOBS, log: $log)"
    tar -xzf "$TARBALL" -C "$OUT"
    src="$OUT/pjproject-$PJ_VERSION"
    cp "$CONFIG_SITE" "$src/pjlib/include/pj/config_site.h"
    (
        cd "$src"
        # Static, position-independent libraries linked into one Python extension; no
        # sound device (calls use the null device), no video; codecs we do not offer are
        # left out so the result does not depend on what else the build machine has.
        export CFLAGS="-O2 -fPIC" CXXFLAGS="-O2 -fPIC"
        ./configure --disable-shared --disable-sound --disable-video \
            --disable-opus --disable-bcg729 --disable-lyra --disable-silk \
            --disable-opencore-amr --disable-upnp --disable-libyuv \
            --disable-sdl --disable-ffmpeg --disable-v4l2 --disable-openh264 --disable-vpx
        # TLS must come from the system OpenSSL; fail here rather than build without TLS
        grep -q '^#define PJ_SSL_SOCK_IMP PJ_SSL_SOCK_IMP_OPENSSL' pjlib/include/pj/compat/os_auto.h \
            || { echo "configure did not enable OpenSSL"; exit 1; }
        make lib -j"$JOBS"
        cd pjsip-apps/src/swig/python
        make PYTHON_EXE="$PY" pjsua2_wrap.cpp
        # builds _pjsua2 (setup.py reads the flags from the configured tree) into a wheel
        MAKE=make "$PY" -m pip wheel -q --no-deps -w "$OUT/dist" .
    ) >"$log" 2>&1 || {
        tail -n 40 "$log" >&2
        die "build failed; full log: $log"
    }
    local whl
    whl=$(find_wheel)
    [ -n "$whl" ] || die "no wheel produced; see $log"

    # 3. Check the result before anything touches the venv.
    rm -rf "$OUT/check"
    "$PY" -m pip install -q --no-deps --target "$OUT/check" "$whl" >>"$log" 2>&1
    PYTHONPATH="$OUT/check" "$PY" - "$CONFIG_SITE" <<'EOF' >>"$log" 2>&1 || die "the built module fails its check; see $log"
import ctypes, re, subprocess, sys
import pjsua2 as pj, _pjsua2
want = int(re.search(r"#define PJSUA_MAX_CALLS\s+(\d+)", open(sys.argv[1]).read()).group(1))
ep = pj.Endpoint()
ep.libCreate()
cfg = pj.EpConfig()
cfg.logConfig.level = cfg.logConfig.consoleLevel = 0
cfg.uaConfig.maxCalls = 100000
ep.libInit(cfg)
got = ctypes.CDLL(_pjsua2.__file__).pjsua_call_get_max_count()
assert got == want, f"PJSUA_MAX_CALLS is {got}, config_site.h says {want}"
tcfg = pj.TransportConfig()
tcfg.boundAddress = "127.0.0.1"
ep.transportCreate(pj.PJSIP_TRANSPORT_TLS, tcfg)  # fails when built without TLS
version = ep.libVersion().full
ep.libDestroy()
ldd = subprocess.run(["ldd", _pjsua2.__file__], capture_output=True, text=True).stdout
assert "libssl.so.3" in ldd, ldd
print(f"check ok: pjsua2 {version}, max calls {got}, TLS with libssl.so.3")
EOF
    rm -rf "$OUT/check"
    [ "${PJSUA2_KEEP_BUILD:-0}" = 1 ] || rm -rf "$src"
    local secs=$(( $(date +%s) - t0 ))
    {
        echo "key $KEY"
        echo "wheel $(basename "$whl")"
        echo "built $(date -u +%FT%TZ) in ${secs}s on $(uname -m)"
    } >"$STAMP"
    # older builds of other keys are of no further use
    find "$CACHE" -mindepth 1 -maxdepth 1 -type d ! -name "$KEY" -exec rm -rf {} +
    say "built $(basename "$whl") in ${secs}s"
}

# one build or install at a time (several checkouts' make runs may share a machine)
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9

if [ -f "$STAMP" ] && [ -n "$(find_wheel)" ]; then
    say "pjsua2 build $KEY is cached ($(sed -n 's/^built //p' "$STAMP"))"
else
    build
fi
WHEEL=$(find_wheel)

if [ "$INSTALL" = 0 ]; then
    echo "$WHEEL"
    exit 0
fi

if [ "$(cat "$MARKER" 2>/dev/null)" = "$KEY" ] && "$PY" -c 'import pjsua2' 2>/dev/null; then
    touch "$MARKER"
    exit 0
fi
# Swap the module in: the PyPI wheel (a package named pjsua2 that would shadow our
# module) goes first, then ours; the venv is without pjsua2 only for these seconds.
if "$PY" -m pip show -q pjsua2-python >/dev/null 2>&1; then
    "$PY" -m pip uninstall -q -y pjsua2-python
fi
"$PY" -m pip install -q --no-deps --force-reinstall "$WHEEL"
"$PY" -c 'import pjsua2' || die "pjsua2 does not import after installing $WHEEL"
echo "$KEY" >"$MARKER"
say "installed $(basename "$WHEEL") into $("$PY" -c 'import sys; print(sys.prefix)')"
