#!/bin/sh
# OFD locks (F_OFD_SETLK, F_OFD_SETLKW, F_OFD_GETLK) and flock(2) between processes
# and between open file descriptions through the mount.  Every check runs first on a
# native directory (the control) and then through the mount.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
. "$(dirname "$0")/lock-lib.sh"
mount_store
mkdir "$MNT/vm" "$T/native" || fail "mkdir"

HANDOFFS=${VMB_LOCK_HANDOFFS:-1000}

ofd_checks() {
    local w=$1 F=$2 t0 ms child
    head -c 8192 /dev/urandom >"$F"

    # ---- shared vs exclusive, F_OFD_GETLK ----
    lh_bg A "$F" 'ofd r 0 0' 'hold'
    wait_out A '^holding' || fail "[$w] the OFD reader did not start"
    assert_eq "[$w] OFD: a second description shares a read lock" locked "$(lhr "$F" 'ofd r 0 0')"
    assert_eq "[$w] OFD: a write lock is refused" EAGAIN "$(lhr "$F" 'ofd w 10 1')"
    assert_eq "[$w] OFD: F_OFD_GETLK reports the read lock (l_pid -1)" "pid -1 r 0 0" "$(lhr "$F" 'ofdgetlk w 10 1')"
    assert_eq "[$w] OFD: a POSIX write lock conflicts with it" EAGAIN "$(lhr "$F" 'posix w 0 1')"
    lh_kill A
    assert_eq "[$w] OFD: free after the holder's SIGKILL" locked "$(lhr "$F" 'ofd w 0 0')"

    # ---- two descriptions of one process conflict ----
    assert_eq "[$w] OFD: two descriptions of one process conflict" "locked
fd 1
EAGAIN
EAGAIN" "$(lhr "$F" 'ofd w 0 10' 'open' 'ofd w 5 1' 'ofd r 9 1')"
    assert_eq "[$w] OFD: one description does not conflict with itself (re-lock, split)" "locked
locked
unlocked
locked" "$(lhr "$F" 'ofd w 0 10' 'ofd r 0 10' 'ofd u 3 2' 'ofd w 3 1')"
    assert_eq "[$w] OFD and POSIX locks of one process conflict" "locked
EAGAIN" "$(lhr "$F" 'ofd w 0 10' 'posix w 5 1')"

    # ---- held across dup, released at the last close ----
    lh_bg D "$F" 'ofd w 0 0' 'dup' 'close 0' 'hold' 'close 1' 'hold'
    wait_out D '^holding' || fail "[$w] the OFD holder did not start"
    assert_eq "[$w] OFD: held through a dup after the first fd is closed" EAGAIN "$(lhr "$F" 'ofd w 0 0')"
    kill -USR1 "$(pid_of D)"
    wait_lines D 7
    assert_eq "[$w] OFD: released at the last close (no unlock, process alive)" locked "$(lhr "$F" 'ofd w 0 0')"
    lh_kill D

    # ---- held across fork ----
    lh_bg K "$F" 'ofd w 0 0' 'fork' 'close 0' 'hold'
    wait_out K '^holding' || fail "[$w] the OFD holder did not start"
    child=$(out_of K | sed -n 's/^child //p')
    lh_kill K
    assert_eq "[$w] OFD: held by the child after the locker closed its fd and died" EAGAIN "$(lhr "$F" 'ofd w 0 0')"
    if [ -n "$child" ]; then
        kill -9 "$child"
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$child" 2>/dev/null || break; sleep 0.05; done
    fi
    assert_eq "[$w] OFD: released when the child (the last holder of the description) dies" locked "$(lhr "$F" 'ofd w 0 0')"

    # ---- F_OFD_SETLKW: woken by SIGKILL of the holder; interrupted by a signal ----
    lh_bg H "$F" 'ofd w 0 0' 'hold'
    wait_out H '^holding' || fail "[$w] the holder did not start"
    lh_bg W "$F" 'ofd w 0 0 wait' 'hold'
    lh_bg I "$F" 'ofd r 0 1 wait' 'hold'
    sleep 0.3
    assert_eq "[$w] OFD: F_OFD_SETLKW waits" "" "$(out_of W)"
    lh_intr I 1   # once I waits in its lock call: a signal sent before would be lost
    assert_eq "[$w] OFD: a signal interrupts F_OFD_SETLKW" EINTR "$(out_of I | head -n 1)"
    t0=$(now_s)
    lh_kill H
    if wait_out W '^locked' 5; then
        ms=$(ms_between "$t0" "$(stamp_of W '^locked')")
        assert_num "[$w] OFD: F_OFD_SETLKW returns within 1 s of the holder's SIGKILL (${ms} ms)" "$ms" -le 1000
    else
        notok "[$w] OFD: F_OFD_SETLKW woken by the holder's SIGKILL" "not within 5 s: $(out_of W)"
    fi
    lh_kill W
    lh_kill I
}

flock_checks() {
    local w=$1 F=$2 t0 ms child
    head -c 8192 /dev/urandom >"$F"

    # ---- shared / exclusive, LOCK_NB ----
    lh_bg A "$F" 'flock sh' 'hold'
    wait_out A '^holding' || fail "[$w] the flock reader did not start"
    assert_eq "[$w] flock: shared locks share" locked "$(lhr "$F" 'flock sh')"
    assert_eq "[$w] flock: LOCK_EX|LOCK_NB refused (EWOULDBLOCK)" EAGAIN "$(lhr "$F" 'flock ex')"
    assert_eq "[$w] flock: a POSIX write lock does not conflict with flock" locked "$(lhr "$F" 'posix w 0 0')"
    lh_kill A
    lh_bg A "$F" 'flock ex' 'hold'
    wait_out A '^holding' || fail "[$w] the flock writer did not start"
    assert_eq "[$w] flock: LOCK_SH|LOCK_NB refused while exclusive" EAGAIN "$(lhr "$F" 'flock sh')"
    assert_eq "[$w] flock: two descriptions of one process conflict" "locked
fd 1
EAGAIN" "$(lhr "${F}2" 'flock ex' 'open' 'flock ex')"
    lh_kill A
    assert_eq "[$w] flock: free after the holder's SIGKILL" locked "$(lhr "$F" 'flock ex')"

    # ---- conversion ----
    lh_bg C "$F" 'flock sh' 'hold' 'flock ex' 'hold' 'flock sh' 'hold'
    wait_out C '^holding' || fail "[$w] the converter did not start"
    assert_eq "[$w] flock: shared before the conversion" locked "$(lhr "$F" 'flock sh')"
    kill -USR1 "$(pid_of C)"
    wait_lines C 5
    assert_eq "[$w] flock: conversion to exclusive" locked "$(out_of C | sed -n 4p)"
    assert_eq "[$w] flock: after the conversion LOCK_SH is refused" EAGAIN "$(lhr "$F" 'flock sh')"
    kill -USR1 "$(pid_of C)"
    wait_lines C 8
    assert_eq "[$w] flock: conversion back to shared" locked "$(out_of C | sed -n 7p)"
    assert_eq "[$w] flock: after that LOCK_SH shares" locked "$(lhr "$F" 'flock sh')"
    assert_eq "[$w] flock: and LOCK_EX is refused" EAGAIN "$(lhr "$F" 'flock ex')"
    lh_kill C
    lh_bg S "$F" 'flock sh' 'hold'
    wait_out S '^holding' || fail "[$w] the sharer did not start"
    assert_eq "[$w] flock: conversion to exclusive refused while another shares" "locked
EAGAIN" "$(lhr "$F" 'flock sh' 'flock ex')"
    lh_kill S

    # ---- released on last close; across fork ----
    lh_bg D "$F" 'flock ex' 'dup' 'close 0' 'hold' 'close 1' 'hold'
    wait_out D '^holding' || fail "[$w] the flock holder did not start"
    assert_eq "[$w] flock: held through a dup after the first fd is closed" EAGAIN "$(lhr "$F" 'flock ex')"
    kill -USR1 "$(pid_of D)"
    wait_lines D 7
    assert_eq "[$w] flock: released at the last close" locked "$(lhr "$F" 'flock ex')"
    lh_kill D
    lh_bg K "$F" 'flock ex' 'fork' 'close 0' 'hold'
    wait_out K '^holding' || fail "[$w] the flock holder did not start"
    child=$(out_of K | sed -n 's/^child //p')
    lh_kill K
    assert_eq "[$w] flock: held by a child sharing the description" EAGAIN "$(lhr "$F" 'flock ex')"
    if [ -n "$child" ]; then
        kill -9 "$child"
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$child" 2>/dev/null || break; sleep 0.05; done
    fi
    assert_eq "[$w] flock: released when the child dies" locked "$(lhr "$F" 'flock ex')"

    # ---- blocking flock: woken by SIGKILL; interrupted by a signal ----
    lh_bg H "$F" 'flock ex' 'hold'
    wait_out H '^holding' || fail "[$w] the holder did not start"
    lh_bg W "$F" 'flock ex wait' 'hold'
    lh_bg I "$F" 'flock sh wait' 'hold'
    sleep 0.3
    assert_eq "[$w] flock: a blocking flock waits" "" "$(out_of W)"
    lh_intr I 1   # once I waits in its lock call: a signal sent before would be lost
    assert_eq "[$w] flock: a signal interrupts a blocking flock" EINTR "$(out_of I | head -n 1)"
    t0=$(now_s)
    lh_kill H
    if wait_out W '^locked' 5; then
        ms=$(ms_between "$t0" "$(stamp_of W '^locked')")
        assert_num "[$w] flock: the waiter returns within 1 s of the holder's SIGKILL (${ms} ms)" "$ms" -le 1000
    else
        notok "[$w] flock: waiter woken by the holder's SIGKILL" "not within 5 s: $(out_of W)"
    fi
    lh_kill W
    lh_kill I
}

# A lock is gone when close(2) returns, or when the holder has been reaped: another
# process locking at that moment must never get EAGAIN.
handoff_checks() {
    local w=$1 F=$2 k out
    : >"$F"
    for k in ofd flock posix; do
        out=$(lh handoff "$F" $k "$HANDOFFS" 2>&1)
        assert_match "[$w] $k: lock, close, another process locks at once ($HANDOFFS rounds): no EAGAIN" \
            "fails 0$" "$out"
        out=$(lh handoff "$F" $k $((HANDOFFS / 5)) kill 2>&1)
        assert_match "[$w] $k: holder SIGKILLed and reaped, another process locks at once ($((HANDOFFS / 5)) rounds): no EAGAIN" \
            "fails 0$" "$out"
    done
}

ofd_checks native "$T/native/ofd"
flock_checks native "$T/native/flk"
handoff_checks native "$T/native/hand"
ofd_checks mount "$MNT/vm/ofd.img"
flock_checks mount "$MNT/vm/nvram.bin"
handoff_checks mount "$MNT/vm/hand.img"

check "the daemon is alive after the lock tests" daemon_alive
check "the mount still answers" stat "$MNT/vm/ofd.img"
lh_cleanup
finish
