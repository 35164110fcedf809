#!/bin/sh
# QEMU's own image locking (OFD locks) through the mount: while qemu-io holds a qcow2
# image, qemu-img info fails with QEMU's 'Failed to get shared "write" lock', and
# works again at once after kill -9 of the holder.  Run on a native directory first
# (the control), then through the mount.  (qemu-system: see lock-qemu-system.sh.)
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

command -v qemu-img >/dev/null 2>&1 && command -v qemu-io >/dev/null 2>&1 ||
    skip "qemu-img/qemu-io are not installed (Debian package qemu-utils)"
vmb_setup
. "$(dirname "$0")/lock-lib.sh"
mount_store
mkdir "$MNT/vm" "$T/native" || fail "mkdir"

# wait_qemu_lock FILE: wait (10 s) until someone holds an OFD lock on FILE
wait_qemu_lock() {
    local n=500
    while [ $n -gt 0 ]; do
        case $(lhr -r "$1" 'ofdgetlk w 0 0') in pid*) return 0 ;; esac
        sleep 0.02
        n=$((n - 1))
    done
    return 1
}

qemu_checks() {
    local w=$1 d=$2 img=$2/disk.qcow2 out p i fails
    check "[$w] qemu-img create a qcow2 image" qemu-img create -q -f qcow2 "$img" 64M
    check "[$w] qemu-io writes to it" qemu-io -c 'write -P 0x5a 0 1M' "$img"
    qemu-io -c 'sleep 60000' "$img" </dev/null >"$T/qemu-io.out" 2>&1 &
    p=$!
    wait_qemu_lock "$img" || { notok "[$w] qemu-io takes its locks" "no OFD lock seen within 10 s"; kill -9 $p; return; }
    out=$(qemu-img info "$img" 2>&1)
    assert_match "[$w] qemu-img info fails while qemu-io holds the image" 'Failed to get shared "write" lock' "$out"
    check "[$w] qemu-img info -U (no locking) still works" qemu-img info -U "$img"
    out=$(qemu-io -c 'read 0 512' "$img" 2>&1)
    assert_match "[$w] a second qemu-io fails" 'Failed to get "write" lock|Failed to get shared "write" lock' "$out"
    kill -9 $p
    wait $p 2>/dev/null
    out=$(qemu-img info "$img" 2>&1)
    assert_match "[$w] qemu-img info works at once after kill -9 of qemu-io" '^file format: qcow2' "$out"
    check "[$w] the data is intact" qemu-io -c 'read -P 0x5a 0 1M' "$img"
    # ten more rounds of hold, kill -9, use at once
    fails=0
    for i in 1 2 3 4 5 6 7 8 9 10; do
        qemu-io -c 'sleep 60000' "$img" </dev/null >>"$T/qemu-io.out" 2>&1 &
        p=$!
        wait_qemu_lock "$img" || fails=$((fails + 1))
        kill -9 $p
        wait $p 2>/dev/null
        qemu-img info "$img" >>"$T/qemu-info.out" 2>&1 || fails=$((fails + 1))
    done
    assert_eq "[$w] 10 rounds: qemu-io killed -9, qemu-img info at once: no failure" 0 "$fails"
    [ "$fails" = 0 ] || tail -n 5 "$T/qemu-info.out"
}

qemu_checks native "$T/native"
qemu_checks mount "$MNT/vm"
lh_cleanup
finish
