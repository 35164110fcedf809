#!/bin/bash
# bench/locks.sh: lock benchmarks, on demand (not run by make check).  Prints a
# markdown table:
#   - lock/unlock round-trip latency (non-blocking exclusive lock of the whole file,
#     then unlock) through the mount vs a native directory, for POSIX, OFD and flock;
#   - the time from a holder's SIGKILL to a waiter's blocking lock call returning
#     (F_SETLKW / F_OFD_SETLKW / flock), median and max over RUNS runs (target < 50 ms).
#
# Usage: bench/locks.sh [BUILDDIR]   (default: the current directory, which must hold
#        the built vmbundlefs and tests/helpers/lockhelper)
# Environment: ROUNDS (latency round trips, default 20000), RUNS (SIGKILL runs, 20).
set -u
B=$(cd "${1:-.}" && pwd)
VMB=$B/vmbundlefs
LH=$B/tests/helpers/lockhelper
ROUNDS=${ROUNDS:-20000}
RUNS=${RUNS:-20}
[ -x "$VMB" ] && [ -x "$LH" ] || { echo "build first: need $VMB and $LH (make check or make tests/helpers/lockhelper)" >&2; exit 2; }

T=$(mktemp -d /tmp/vmblockbench.XXXXXX)
cleanup() {
    mountpoint -q "$T/mnt" && fusermount3 -u "$T/mnt"
    [ -n "${DPID:-}" ] && wait "$DPID" 2>/dev/null
    rm -rf --one-file-system "$T"
}
trap cleanup EXIT
"$VMB" init "$T/store" >/dev/null || exit 1
mkdir "$T/mnt" "$T/native"
"$VMB" mount -f --log="$T/log" "$T/store" "$T/mnt" </dev/null >>"$T/daemon.out" 2>&1 &
DPID=$!
for _ in $(seq 1 100); do mountpoint -q "$T/mnt" && break; sleep 0.1; done
mountpoint -q "$T/mnt" || { echo "mount failed" >&2; cat "$T/log" >&2; exit 1; }
mkdir "$T/mnt/vm"
head -c 65536 /dev/zero >"$T/mnt/vm/nvram.bin"
head -c 65536 /dev/zero >"$T/native/nvram.bin"

field() { sed -n "s/.* $1 \([0-9.]*\).*/\1/p"; }

echo "Lock benchmarks ($(uname -r), $(nproc) CPUs; $ROUNDS round trips, $RUNS SIGKILL runs)"
echo
echo "| lock kind | native µs/round trip | mount µs/round trip | ratio | SIGKILL→waiter native median / max ms | SIGKILL→waiter mount median / max ms |"
echo "|---|---|---|---|---|---|"
for k in posix ofd flock; do
    n=$("$LH" loop "$T/native/nvram.bin" $k "$ROUNDS" | field us_per_roundtrip)
    m=$("$LH" loop "$T/mnt/vm/nvram.bin" $k "$ROUNDS" | field us_per_roundtrip)
    ratio=$(awk -v a="$n" -v b="$m" 'BEGIN { if (a > 0) printf "%.0fx", b / a; else print "?" }')
    kn=$("$LH" killwait "$T/native/nvram.bin" $k "$RUNS")
    km=$("$LH" killwait "$T/mnt/vm/nvram.bin" $k "$RUNS")
    printf '| %s | %s | %s | %s | %s / %s | %s / %s |\n' "$k" "$n" "$m" "$ratio" \
        "$(echo "$kn" | field median)" "$(echo "$kn" | field max)" \
        "$(echo "$km" | field median)" "$(echo "$km" | field max)"
done
echo
echo "(SIGKILL→waiter includes ~0.1-1 ms of process exit; target for the mount: under 50 ms)"
