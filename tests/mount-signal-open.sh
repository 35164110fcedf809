#!/bin/sh
# mount-signal-open.sh: a daemon stopped by SIGTERM or SIGINT while the kernel still
# holds open handles (files open for reading and for writing, a file of a snapshot
# view, an open directory, a control-channel client that has not sent its request)
# frees everything and exits 0: under the sanitizer build LeakSanitizer must find
# nothing (the kernel never sends the RELEASEs of those handles). And what was
# written through a handle still open at the signal is in the store after the stop.
# Likewise after a lazy unmount (fusermount3 -u -z) with the files still open.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
mkdir "$STORE/b" "$STORE/b/d" && echo data >"$STORE/b/f" && echo two >"$STORE/b/d/g" ||
    fail "setup"
truncate -s 8M "$STORE/b/disk" || fail "setup"
"$VMB_BIN" snapshot "$STORE" b s1 >"$T/snap.out" 2>&1 || { cat "$T/snap.out"; fail "snapshot"; }
command -v python3 >/dev/null || skip "python3 is not installed"

# a control-channel client that connects and then says nothing (until killed)
ctl_client() {
    python3 - "$STORE" <<'EOF' &
import glob, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(glob.glob(sys.argv[1] + "/.vmbundlefs/run/ctl.*")[0])
print("connected", flush=True)
time.sleep(60)
EOF
    CPID=$!
}

# stopped_clean WHAT: the daemon exited 0 within 30 s of WHAT and logged no sanitizer
# report (its log and stderr are then set aside: each mount is judged on its own).
stopped_clean() {
    local rc=0
    _vmb_wait_daemon 30 || { say "the daemon did not exit within 30 s of $1"; return 1; }
    _vmb_set_state stopped
    [ "$(cat "$T/daemon.rc")" = 0 ] || { say "the daemon exited $(cat "$T/daemon.rc") after $1"; show_log; rc=1; }
    log_clean || rc=1
    mv "$T/daemon.out" "$T/daemon.out.$n.${1// /_}" 2>/dev/null
    mv "$T/log" "$T/log.$n.${1// /_}" 2>/dev/null
    return $rc
}

n=0
for how in TERM INT lazy; do
    n=$((n + 1))
    mount_store
    # a sleeping reader of a snapshot view's file, one in a directory of the mount, a
    # silent control-channel client (started first: they must not inherit 3-7)
    ( exec 8<"$MNT/.snapshots/b@s1/d/g"; exec sleep 60 ) &
    SPID=$!
    ( cd "$MNT/b/d" && exec sleep 60 ) &
    DPID=$!
    ctl_client
    # open handles: 3 reads a file, 4 writes one (data not flushed nor fsynced),
    # 5 writes into an image at an offset, 6 reads a snapshot view's file, 7 an
    # open directory
    exec 3<"$MNT/b/f" 4>"$MNT/b/new$n" 5<>"$MNT/b/disk" 6<"$MNT/.snapshots/b@s1/f" 7<"$MNT/b/d"
    printf 'written before SIG%s\n' "$how" >&4
    printf 'image %s' "$how" | dd of="$MNT/b/disk" bs=1 seek=$((1048576 * n)) conv=notrunc 2>/dev/null
    printf 'image %s' "$how" >&5
    read -r line <&3
    assert_eq "the open file reads ($how)" data "$line"
    read -r line <&6
    assert_eq "the snapshot view's open file reads ($how)" data "$line"
    sleep 0.5
    on_exit "kill $SPID $DPID $CPID 2>/dev/null"
    if [ $how = lazy ]; then
        fusermount3 -u -z "$MNT" || fail "fusermount3 -u -z"
        check "lazy unmount: the mount is gone at once" sh -c "! grep -q ' $MNT fuse' /proc/mounts"
        # the files stay open: the daemon serves them until the last one closes
        exec 3<&- 4>&- 5<&- 6<&- 7<&-
        kill $SPID $DPID 2>/dev/null; wait $SPID $DPID 2>/dev/null
        _vmb_wait_daemon 30 || fail "the daemon did not exit within 30 s of the last close"
        check "after a lazy unmount with open files the daemon exits 0, nothing leaked" \
            stopped_clean "the last close"
    else
        kill -$how "$(daemon_pid)"
        _vmb_wait_daemon 30 || fail "the daemon did not exit within 30 s of SIG$how"
        check "SIG$how with open files, a snapshot view's file, a directory and a ctl client: exit 0, nothing leaked" \
            stopped_clean "SIG$how"
        exec 3<&- 4>&- 5<&- 6<&- 7<&-
        kill $SPID $DPID 2>/dev/null; wait $SPID $DPID 2>/dev/null
    fi
    kill $CPID 2>/dev/null; wait $CPID 2>/dev/null
    grep -q " $MNT fuse" /proc/mounts && fusermount3 -uz "$MNT"
    wait_store_free "$STORE"
    check "what was written before the stop ($how) is in the store" \
        grep -qx "written before SIG$how" "$STORE/b/new$n"
    mount_store
    check "... and read back through a new mount" grep -qx "written before SIG$how" "$MNT/b/new$n"
    check "... also the image's bytes written at offsets" sh -c \
        "[ \"\$(dd if='$MNT/b/disk' bs=1 skip=$((1048576 * n)) count=$((6 + ${#how})) status=none 2>/dev/null; echo)\" = 'image $how' ] &&
         [ \"\$(head -c $((6 + ${#how})) '$MNT/b/disk')\" = 'image $how' ]"
    fusermount3 -u "$MNT"
    _vmb_wait_daemon 30 || fail "the daemon did not exit within 30 s of its unmount"
    check "the second mount stops cleanly" stopped_clean "fusermount3 -u"
done
finish
