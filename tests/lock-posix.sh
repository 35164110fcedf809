#!/bin/sh
# POSIX record locks (F_SETLK, F_SETLKW, F_GETLK) between processes through the
# mount.  Every check runs first on a native directory (the control: it shows what
# a local filesystem does) and then through the mount.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
. "$(dirname "$0")/lock-lib.sh"
mount_store
mkdir "$MNT/vm" "$T/native" || fail "mkdir"

# posix_checks WHERE FILE BACKING: BACKING is FILE's backing file (FILE natively)
posix_checks() {
    local w=$1 F=$2 B=$3 t0 t1 ms child
    head -c 8192 /dev/urandom >"$F"

    # ---- shared vs exclusive ----
    lh_bg A "$F" 'posix r 0 0' 'hold'
    wait_out A '^holding' || fail "[$w] the reader did not start"
    assert_eq "[$w] a second process shares a read lock" locked "$(lhr "$F" 'posix r 0 0')"
    assert_eq "[$w] a write lock is refused while a read lock is held" EAGAIN "$(lhr "$F" 'posix w 0 0')"
    assert_eq "[$w] F_GETLK names the reader" "pid $(pid_of A) r 0 0" "$(lhr "$F" 'getlk w 10 5')"
    assert_eq "[$w] F_GETLK for a read lock: no conflict" free "$(lhr "$F" 'getlk r 10 5')"
    lh_kill A
    lh_bg A "$F" 'posix w 0 0' 'hold'
    wait_out A '^holding' || fail "[$w] the writer did not start"
    assert_eq "[$w] a read lock is refused while a write lock is held" EAGAIN "$(lhr "$F" 'posix r 100 1')"
    assert_eq "[$w] a write lock is refused while a write lock is held" EAGAIN "$(lhr "$F" 'posix w 5000 10')"
    assert_eq "[$w] F_GETLK names the writer (pid, type, range)" "pid $(pid_of A) w 0 0" "$(lhr "$F" 'getlk r 7 1')"
    lh_kill A
    assert_eq "[$w] free again once the holder is gone" locked "$(lhr "$F" 'posix w 0 0')"

    # ---- range splits: lock 0-100, unlock 40-60 ----
    lh_bg S "$F" 'posix w 0 101' 'posix u 40 21' 'hold'
    wait_out S '^holding' || fail "[$w] the splitter did not start"
    assert_eq "[$w] split: byte 50 is free" locked "$(lhr "$F" 'posix w 50 1')"
    assert_eq "[$w] split: bytes 40-60 are free" locked "$(lhr "$F" 'posix w 40 21')"
    assert_eq "[$w] split: byte 30 is held" EAGAIN "$(lhr "$F" 'posix w 30 1')"
    assert_eq "[$w] split: byte 39 is held" EAGAIN "$(lhr "$F" 'posix r 39 1')"
    assert_eq "[$w] split: byte 61 is held" EAGAIN "$(lhr "$F" 'posix r 61 1')"
    assert_eq "[$w] split: byte 100 is held" EAGAIN "$(lhr "$F" 'posix w 100 1')"
    assert_eq "[$w] split: byte 101 is free" locked "$(lhr "$F" 'posix w 101 1')"
    assert_eq "[$w] split: F_GETLK over 40-60 finds nothing" free "$(lhr "$F" 'getlk w 40 21')"
    assert_eq "[$w] split: F_GETLK over 50-200 finds the tail" "pid $(pid_of S) w 61 40" "$(lhr "$F" 'getlk w 50 150')"
    lh_kill S

    # ---- upgrade and downgrade ----
    lh_bg U "$F" 'posix r 0 100' 'hold' 'posix w 0 100' 'hold' 'posix w 0 100' 'hold' 'posix r 0 100' 'hold'
    wait_out U '^holding' || fail "[$w] the upgrader did not start"
    lh_bg R "$F" 'posix r 50 10' 'hold'
    wait_out R '^holding' || fail "[$w] the second reader did not start"
    kill -USR1 "$(pid_of U)"
    wait_lines U 5
    assert_eq "[$w] upgrade refused while another process reads" EAGAIN "$(out_of U | sed -n 4p)"
    assert_eq "[$w] ... and the read lock is kept" EAGAIN "$(lhr "$F" 'posix w 0 1')"
    lh_kill R
    kill -USR1 "$(pid_of U)"
    wait_lines U 8
    assert_eq "[$w] upgrade to a write lock" locked "$(out_of U | sed -n 7p)"
    assert_eq "[$w] after the upgrade a reader is refused" EAGAIN "$(lhr "$F" 'posix r 10 1')"
    assert_eq "[$w] F_GETLK sees the write lock" "pid $(pid_of U) w 0 100" "$(lhr "$F" 'getlk r 0 0')"
    kill -USR1 "$(pid_of U)"
    wait_lines U 11
    assert_eq "[$w] downgrade to a read lock" locked "$(out_of U | sed -n 10p)"
    assert_eq "[$w] after the downgrade a reader shares" locked "$(lhr "$F" 'posix r 10 1')"
    assert_eq "[$w] after the downgrade a writer is refused" EAGAIN "$(lhr "$F" 'posix w 10 1')"
    lh_kill U

    # ---- F_SETLKW woken when the holder unlocks ----
    lh_bg H "$F" 'posix w 0 0' 'hold' 'posix u 0 0' 'hold'
    wait_out H '^holding' || fail "[$w] the holder did not start"
    lh_bg W "$F" 'posix w 0 0 wait' 'hold'
    sleep 0.3
    assert_eq "[$w] F_SETLKW waits while the lock is held" "" "$(out_of W)"
    kill -USR1 "$(pid_of H)"
    if wait_out W '^locked' 5; then
        ms=$(ms_between "$(stamp_of H '^unlocked')" "$(stamp_of W '^locked')")
        assert_num "[$w] F_SETLKW returns within 1 s of the unlock (${ms} ms)" "$ms" -le 1000
    else
        notok "[$w] F_SETLKW woken by the unlock" "the waiter did not get the lock within 5 s: $(out_of W)"
    fi
    lh_kill H
    lh_kill W

    # ---- F_SETLKW woken when the holder is SIGKILLed ----
    lh_bg H "$F" 'posix w 0 0' 'hold'
    wait_out H '^holding' || fail "[$w] the holder did not start"
    lh_bg W "$F" 'posix w 0 0 wait' 'hold'
    sleep 0.3
    t0=$(now_s)
    lh_kill H
    if wait_out W '^locked' 5; then
        ms=$(ms_between "$t0" "$(stamp_of W '^locked')")
        assert_num "[$w] F_SETLKW returns within 1 s of the holder's SIGKILL (${ms} ms)" "$ms" -le 1000
    else
        notok "[$w] F_SETLKW woken by the holder's SIGKILL" "the waiter did not get the lock within 5 s: $(out_of W)"
    fi
    lh_kill W

    # ---- a blocked F_SETLKW interrupted by a signal ----
    lh_bg H "$F" 'posix w 0 0' 'hold'
    wait_out H '^holding' || fail "[$w] the holder did not start"
    lh_bg W "$F" 'posix w 0 0 wait' 'posix r 0 0 wait' 'hold'
    lh_intr W 1   # once W waits in fcntl: a signal sent before would be lost
    assert_eq "[$w] a signal interrupts F_SETLKW: EINTR" EINTR "$(out_of W | head -n 1)"
    lh_intr W 2
    assert_eq "[$w] ... and again for a second wait" "EINTR" "$(out_of W | sed -n 2p)"
    lh_kill H
    assert_eq "[$w] after the interrupted waits the lock can be taken" locked "$(lhr "$F" 'posix w 0 0')"
    lh_kill W

    # ---- F_GETLK gives the pid of a holder that locked from a thread ----
    lh_bg TH "$F" 'tposix w 0 10' 'hold'
    wait_out TH '^holding' || fail "[$w] the threaded holder did not start"
    assert_eq "[$w] F_GETLK names the process (not the thread, not 0) of a lock taken by a thread" \
        "pid $(pid_of TH) w 0 10" "$(lhr "$F" 'getlk w 0 0')"
    lh_kill TH

    # ---- released when the holder closes ANY of its fds of the file ----
    lh_bg C "$F" 'posix w 0 0' 'open' 'hold' 'close 1' 'hold'
    wait_out C '^holding' || fail "[$w] the holder did not start"
    assert_eq "[$w] held while both fds are open" EAGAIN "$(lhr "$F" 'posix w 0 0')"
    kill -USR1 "$(pid_of C)"
    wait_out C '^ok' 5
    assert_eq "[$w] released when the holder closes another fd of the file" locked "$(lhr "$F" 'posix w 0 0')"
    lh_kill C
    lh_bg C "$F" 'open' 'posix w 0 0' 'hold' 'close 0' 'hold'
    wait_out C '^holding' || fail "[$w] the holder did not start"
    kill -USR1 "$(pid_of C)"
    wait_out C '^ok' 5
    assert_eq "[$w] released when the holder closes the fd it did not lock through" locked "$(lhr "$F" 'posix w 0 0')"
    lh_kill C

    # ---- a child does not inherit POSIX locks ----
    lh_bg P "$F" 'posix w 0 0' 'fork' 'hold'
    wait_out P '^holding' || fail "[$w] the parent did not start"
    child=$(out_of P | sed -n 's/^child //p')
    lh_kill P
    assert_eq "[$w] the parent's lock goes with the parent, though its child keeps the fd" locked "$(lhr "$F" 'posix w 0 0')"
    [ -n "$child" ] && kill -9 "$child" 2>/dev/null

    # ---- deadlock detection ----
    # DB asks for DA's byte only once DA waits for DB's (a waiter on the backing
    # file: for the mount, the daemon has noted who DA waits for by then).
    rm -f "$T/dl.ready" "$T/dl.go"
    lh_bg DA "$F" 'posix w 0 1' 'waitfile '"$T/dl.ready" 'posix w 1 1 wait' 'hold'
    lh_bg DB "$F" 'posix w 1 1' 'ready '"$T/dl.ready" 'waitfile '"$T/dl.go" 'posix w 0 1 wait' 'hold'
    wait_for 20 lock_waiter "$B" || say "# [$w] DA does not wait for DB's lock after 20 s: $(out_of DA | tr '\n' ' ')"
    touch "$T/dl.go"
    wait_lines DB 4 10
    assert_eq "[$w] F_SETLKW that would deadlock fails with EDEADLK" EDEADLK "$(out_of DB | sed -n 4p)"
    lh_kill DA
    lh_kill DB
    rm -f "$T/dl.ready" "$T/dl.go"
}

posix_checks native "$T/native/f" "$T/native/f"
posix_checks mount "$MNT/vm/disk.img" "$STORE/vm/disk.img"

check "the daemon is alive after the lock tests" daemon_alive
check "the mount still answers" stat "$MNT/vm/disk.img"
lh_cleanup
finish
