#!/bin/sh
# mount-signal.sh: SIGTERM or SIGINT stops a daemon cleanly (issue 12 §3): the
# mount it made is gone (not left "Transport endpoint is not connected"), also when
# it was mounted on a relative path and runs in the background from /, and a
# foreground daemon exits 0 (systemd must not mark the unit failed).
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
mkdir "$STORE/b" && echo data >"$STORE/b/f" || fail "setup"

# unmounted: the mount point is an ordinary, reachable directory again.
unmounted() {
    ! grep -q " $MNT fuse" /proc/mounts && ls "$MNT" >/dev/null 2>&1
}

# gone PID: PID has exited (an ASan daemon's exit, with its leak check, can take
# more than 10 s on a loaded machine)
gone() { ! kill -0 "$1" 2>/dev/null; }

for sig in TERM INT; do
    # In the foreground, on a relative path.
    ( cd "$T" && exec "$VMB_BIN" mount -f --log="$T/log.$sig" store mnt ) \
        >"$T/out.$sig" 2>&1 </dev/null &
    pid=$!
    wait_for 30 mountpoint -q "$MNT" || fail "the foreground mount did not appear"
    on_exit "grep -q ' $MNT fuse' /proc/mounts && fusermount3 -uz '$MNT'; kill -9 $pid 2>/dev/null"
    assert_eq "the foreground mount works" data "$(cat "$MNT/b/f")"
    kill -$sig $pid
    rc=0
    wait $pid || rc=$?
    assert_eq "SIGTERM/SIGINT ($sig) to a foreground daemon exits 0" 0 "$rc"
    check "after SIG$sig the mount is gone (relative path, foreground)" unmounted
    check "after SIG$sig the daemon printed no error" sh -c "! grep -qi 'error' '$T/out.$sig'"

    # As a daemon (it works from /), on a relative path.
    ( cd "$T" && exec "$VMB_BIN" mount --log="$T/dlog.$sig" store mnt ) || fail "daemon mount"
    mountpoint -q "$MNT" || fail "the daemon's mount did not appear"
    dpid=$(ps -eo pid=,args= | awk -v l="--log=$T/dlog.$sig" '{ for (i = 2; i <= NF; i++) if ($i == l) print $1 }')
    [ -n "$dpid" ] || fail "cannot find the daemon's pid"
    on_exit "grep -q ' $MNT fuse' /proc/mounts && fusermount3 -uz '$MNT'; kill -9 $dpid 2>/dev/null"
    assert_eq "the daemon's mount works" data "$(cat "$MNT/b/f")"
    kill -$sig "$dpid"
    wait_for 30 gone "$dpid"
    check "the daemon exits on SIG$sig" sh -c "! kill -0 $dpid 2>/dev/null"
    check "after SIG$sig the mount is gone (relative path, daemon)" unmounted
    check "the daemon logged the stop, not an error" \
        sh -c "grep -q 'stopping on signal' '$T/dlog.$sig' && ! grep -q 'ended with an error' '$T/dlog.$sig'"
    assert_eq "--log has the mount's first and last lines (store, mount point, pid)" \
        "vmbundlefs: mounted '$T/store' on '$MNT' (daemon pid $dpid)|vmbundlefs: unmounted '$MNT'" \
        "$(grep -E "^vmbundlefs: (un)?mounted '" "$T/dlog.$sig" | paste -sd '|')"
    grep -q " $MNT fuse" /proc/mounts && fusermount3 -uz "$MNT"
done
finish
