#!/bin/sh
# QEMU on the read-only snapshot view (outside report X-snaplock): qemu-img takes OFD
# read locks on the bytes it uses as lock markers, and used to get ENOLCK on
# MNT/.snapshots/BUNDLE@NAME/FILE. Now: qemu-img info, convert (snapshot -> a file
# outside the mount) and compare (snapshot vs the live image, which changed since)
# work with and without -U; read locks and F_OFD_GETLK work on a snapshot file and
# see each other (a reader's read lock shows in another's write test); write locks
# fail with EBADF (the file is open read-only); flock -s and -x work; a qemu-io that
# holds the snapshot open does not keep another qemu-img from reading it.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

command -v qemu-img >/dev/null 2>&1 && command -v qemu-io >/dev/null 2>&1 ||
    skip "qemu-img/qemu-io are not installed (Debian package qemu-utils)"
vmb_setup
LH=$VMB_TESTBIN/helpers/lockhelper
[ -x "$LH" ] || hard_error "helper $LH is not built"
run() { timeout 120 "$@" >"$T/o" 2>"$T/e"; RC=$?; }

mount_store
mkdir "$MNT/vm" || fail "mkdir"
IMG=$MNT/vm/disk.qcow2
check "qemu-img create a qcow2 image in the mount" qemu-img create -q -f qcow2 "$IMG" 64M
check "qemu-io writes to it" qemu-io -c 'write -P 0x5a 0 1M' -c 'write -P 0x33 8M 64k' "$IMG"
run "$VMB_BIN" snapshot "$MNT" vm s1
assert_eq "snapshot vm s1 (exit 0; $(head -c 300 "$T/e"))" 0 "$RC"
SNAP=$MNT/.snapshots/vm@s1/disk.qcow2
check "the snapshot's image is seen in the view" test -f "$SNAP"
check "the live image changes after the snapshot" qemu-io -c 'write -P 0x77 0 64k' "$IMG"

# ---- qemu-img info ----
run qemu-img info "$SNAP"
assert_eq "qemu-img info of the snapshot: exit 0 ($(head -c 300 "$T/e"))" 0 "$RC"
assert_match "... says qcow2" '^file format: qcow2' "$(cat "$T/o")"
run qemu-img info -U "$SNAP"
assert_eq "qemu-img info -U of the snapshot: exit 0 ($(head -c 300 "$T/e"))" 0 "$RC"
run qemu-img info --output=json "$SNAP"
assert_match "qemu-img info --output=json: the virtual size" '"virtual-size": 67108864' "$(cat "$T/o")"

# ---- qemu-img convert, out of the mount ----
run qemu-img convert -O raw "$SNAP" "$T/out.raw"
assert_eq "qemu-img convert snapshot -> raw outside: exit 0 ($(head -c 300 "$T/e"))" 0 "$RC"
run qemu-img convert -U -O qcow2 "$SNAP" "$T/out.qcow2"
assert_eq "qemu-img convert -U snapshot -> qcow2 outside: exit 0 ($(head -c 300 "$T/e"))" 0 "$RC"
check "the raw copy has the snapshot's data (0x5a at 0)" qemu-io -f raw -c 'read -P 0x5a 0 1M' -c 'read -P 0x33 8M 64k' "$T/out.raw"
check "the qcow2 copy equals the raw copy" qemu-img compare -f qcow2 -F raw "$T/out.qcow2" "$T/out.raw"

# ---- qemu-img compare ----
run qemu-img compare "$SNAP" "$T/out.qcow2"
assert_eq "qemu-img compare snapshot vs its copy: identical (exit 0; $(head -c 300 "$T/e"))" 0 "$RC"
run qemu-img compare "$SNAP" "$IMG"
assert_eq "qemu-img compare snapshot vs the live image: they differ (exit 1; $(head -c 300 "$T/e"))" 1 "$RC"
assert_match "... at offset 0" 'Content mismatch at offset 0!' "$(cat "$T/o")"
run qemu-img compare -U "$SNAP" "$IMG"
assert_eq "qemu-img compare -U snapshot vs the live image (exit 1; $(head -c 300 "$T/e"))" 1 "$RC"

# ---- while a qemu-io holds the snapshot open ----
qemu-io -r -c 'sleep 60000' "$SNAP" </dev/null >"$T/qemu-io.out" 2>&1 &
QP=$!
on_exit "kill -9 $QP 2>/dev/null"
n=500
while [ $n -gt 0 ]; do
    case $("$LH" -r "$SNAP" 'ofdgetlk w 0 0') in pid*) break ;; esac
    sleep 0.02
    n=$((n - 1))
done
assert_match "a qemu-io -r holding the snapshot: its read locks show to F_OFD_GETLK w" \
    '^pid -?[0-9]+ r 100 1' "$("$LH" -r "$SNAP" 'ofdgetlk w 0 0')"
assert_eq "... F_OFD_GETLK r: free (nobody can hold a write lock)" free \
    "$("$LH" -r "$SNAP" 'ofdgetlk r 0 0' | cut -d' ' -f1)"
run qemu-img info "$SNAP"
assert_eq "qemu-img info of the snapshot while qemu-io -r holds it: exit 0 ($(head -c 300 "$T/e"))" 0 "$RC"
run qemu-img compare "$SNAP" "$T/out.qcow2"
assert_eq "... and compare (exit 0; $(head -c 300 "$T/e"))" 0 "$RC"
kill -9 $QP
wait $QP 2>/dev/null
n=250
while [ $n -gt 0 ] && [ "$("$LH" -r "$SNAP" 'ofdgetlk w 0 0' | cut -d' ' -f1)" != free ]; do
    sleep 0.02
    n=$((n - 1))
done
assert_eq "after kill -9 of qemu-io its locks are gone" free \
    "$("$LH" -r "$SNAP" 'ofdgetlk w 0 0' | cut -d' ' -f1)"

# ---- the lock calls themselves ----
assert_eq "OFD read lock, then unlock" "locked unlocked" \
    "$("$LH" -r "$SNAP" 'ofd r 100 1' 'ofd u 100 1' | cut -d' ' -f1 | xargs)"
assert_eq "POSIX read lock (and wait)" "locked locked" \
    "$("$LH" -r "$SNAP" 'posix r 0 0' 'posix r 10 5 wait' | cut -d' ' -f1 | xargs)"
assert_eq "write locks: EBADF (the file is open read-only)" "EBADF EBADF" \
    "$("$LH" -r "$SNAP" 'ofd w 0 1' 'posix w 0 1' | cut -d' ' -f1 | xargs)"
assert_eq "flock -s, then -x (one holder)" "locked locked" \
    "$("$LH" -r "$SNAP" 'flock sh' 'flock ex' | cut -d' ' -f1 | xargs)"
assert_eq "one holder's read lock shows to another's write test, not to its own" \
    "locked free fd pid" \
    "$("$LH" -r "$SNAP" 'ofd r 0 1' 'ofdgetlk w 0 1' 'open ro' 'ofdgetlk w 0 1' | cut -d' ' -f1 | xargs)"
assert_eq "flock -x of one holder keeps out another's flock -s" "locked fd EAGAIN" \
    "$("$LH" -r "$SNAP" 'flock ex' 'open ro' 'flock sh' | cut -d' ' -f1 | xargs)"
log_clean
finish
