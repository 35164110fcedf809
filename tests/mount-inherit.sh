#!/bin/sh
# The mount's daemon keeps none of the descriptors of whoever started it (only 0-2,
# which it points at /dev/null or its log as before): a lock its starter held is
# free once the starter closes its own descriptor, and a pipe the starter passed
# on reaches EOF when the starter is done. Foreground (-f) and daemon mode.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

command -v flock >/dev/null || skip "flock (util-linux) is not installed"
vmb_setup
: >"$T/lockfile"

# foreground: fd 9 holds a flock and fd 8 a file open for writing while it starts
# (started from this shell itself: no subshell of ours holds them too)
exec 9>"$T/lockfile" 8>"$T/other"
flock 9 || fail "cannot lock $T/lockfile"
"$VMB_BIN" mount -f --log="$T/log" "$STORE" "$MNT" </dev/null >>"$T/daemon.out" 2>&1 &
PID=$!
exec 9>&- 8>&-
wait_for 30 mountpoint -q "$MNT"
check "foreground: mounted" mountpoint -q "$MNT"
check "... the starter's lock is free once the starter closes it" flock -n "$T/lockfile" true
assert_eq "... the daemon holds neither file" "" \
    "$(ls -l "/proc/$PID/fd" 2>/dev/null | grep -E "lockfile|other")"
check "... and the mount works" ls "$MNT"
fusermount3 -u "$MNT"
wait "$PID"
assert_eq "... it exits 0 at unmount" 0 $?

# daemon mode: the pipe on fd 3 reaches EOF (cat ends) once the command returns
exec 9>"$T/lockfile"
flock 9 || fail "cannot lock $T/lockfile"
timeout 20 bash -c '{ "$0" mount --log="$1/log2" "$2" "$3" 3>&1 >/dev/null 2>"$1/mount.err"; echo rc=$? >"$1/mount.rc"; } | cat >/dev/null' \
    "$VMB_BIN" "$T" "$STORE" "$MNT"
assert_eq "daemon mode: the starter's pipe reaches EOF when mount returns (not held by the daemon)" 0 $?
assert_eq "... mount said it worked" "rc=0" "$(cat "$T/mount.rc" 2>/dev/null)"
exec 9>&-
check "... the starter's lock is free once the starter closes it" flock -n "$T/lockfile" true
# status reads the daemon's pid from its log's "mounted" line, which the daemon
# may write only after mount has returned
status_pid() {
    DPID=$("$VMB_BIN" status -n 0 "$STORE" | sed -n 's/.*(daemon pid \([0-9]*\)).*/\1/p' | head -1)
    [ -n "$DPID" ]
}
wait_for 20 status_pid || fail "no daemon pid in: $("$VMB_BIN" status -n 0 "$STORE")"
assert_eq "... the daemon holds no descriptor of the lock file" "" \
    "$(ls -l "/proc/$DPID/fd" 2>/dev/null | grep lockfile)"
fusermount3 -u "$MNT"
wait_for 30 sh -c "! kill -0 $DPID 2>/dev/null"
check "... and it exits at unmount" sh -c "! kill -0 $DPID 2>/dev/null"
finish
