#!/bin/sh
# The daemons' log in the store (issue #9 §5): a daemon started without --log (and
# without syslog) keeps its messages in STORE/.vmbundlefs/log (0600), each line with
# time, pid and mount point; `vmbundlefs status` shows the mounts, their daemons and
# the last lines; --log=FILE gets them too; several daemons append and rotate
# (log.1, log.2) without mixing or losing lines; an unusable log never fails an
# operation; CLI errors that a daemon's log explains name it.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
L=$STORE/.vmbundlefs/log
TS='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z'

# flip_byte FILE OFFSET
flip_byte() {
    local b
    b=$(od -A n -t u1 -j "$2" -N 1 "$1" | tr -d ' ')
    printf "$(printf '\\%03o' $((b ^ 0xff)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# A file whose sidecar map is corrupt: every open of it fails with EIO and a message.
mount_store
mkdir "$MNT/b"
vmbio pwrite "$MNT/b/f" 0 20000 p1 >/dev/null
truncate -s $((8 * 1024 * 1024)) "$MNT/b/f"
vmbio pwrite "$MNT/b/f" $((4 * 1024 * 1024)) 8192 p2 >/dev/null
unmount_store
flip_byte "$(sidecar_of "$STORE/b/f")" 5000

# ---- a daemonized mount without --log, on a relative mount point ----
mkdir "$T/rel"
(cd "$T" && "$VMB_BIN" mount store rel) || fail "daemonized mount failed"
on_exit "fusermount3 -uz '$T/rel' 2>/dev/null"
assert_match "cat of the file fails with EIO" 'Input/output error' "$(cat "$T/rel/b/f" 2>&1 >/dev/null)"
check "the store's log exists" test -f "$L"
assert_eq "the store's log is root's, mode 0600" "600 $(id -u)" "$(stat -c '%a %u' "$L")"
PID=$(sed -nE "s/^$TS vmbundlefs\[([0-9]+)\] .*: mounted$/\1/p" "$L" | tail -n 1)
assert_match "the daemon logged its start: time, pid, absolute mount point" \
    "^$TS vmbundlefs\[$PID\] $T/rel: mounted$" "$(grep ': mounted$' "$L" | tail -n 1)"
assert_match "... and the pid is the running daemon's" "vmbundlefs.*mount" "$(tr '\0' ' ' <"/proc/$PID/cmdline" 2>/dev/null)"
assert_match "the reason for the EIO is in the store's log, with time, pid and mount point" \
    "^$TS vmbundlefs\[$PID\] $T/rel: cannot open 'b/f': sidecar map is corrupt" "$(grep 'cannot open' "$L" | tail -n 1)"

# ---- vmbundlefs status ----
run() { "$@" >"$T/o" 2>"$T/o.err"; RC=$?; }
run "$VMB_BIN" status "$STORE"
assert_eq "status: exit 0" 0 $RC
assert_match "status: names the mount and its daemon" "^mounted on $T/rel \(daemon pid $PID\)$" "$(cat "$T/o")"
assert_match "status: shows the log's path" "^log $STORE/\.vmbundlefs/log, last [0-9]+ lines:" "$(cat "$T/o")"
assert_match "status: shows the reason for the EIO" "^  $TS vmbundlefs\[$PID\] $T/rel: cannot open 'b/f': sidecar map is corrupt" "$(cat "$T/o")"
run "$VMB_BIN" status -n 1 "$STORE"
assert_eq "status -n 1: one log line" 1 "$(grep -c '^  ' "$T/o")"
run "$VMB_BIN" status --lines=0 "$STORE"
assert_eq "status --lines=0: no log lines" 0 "$(grep -c '^  ' "$T/o")"
run "$VMB_BIN" status -n x "$STORE"
assert_eq "status -n x: usage error (exit 2)" 2 $RC
run "$VMB_BIN" status
assert_eq "status without STORE: exit 2" 2 $RC
run "$VMB_BIN" status "$T/nostore"
assert_eq "status of a missing store: exit 1" 1 $RC
run "$VMB_BIN" status --help
assert_match "status --help" "Usage: vmbundlefs status" "$(cat "$T/o")"

# CLI errors that the daemons' log explains name it.
run "$VMB_BIN" fsck -n "$STORE"
assert_eq "fsck of a mounted store: exit 8" 8 $RC
assert_match "fsck of a mounted store: names status and the log" \
    "vmbundlefs status $STORE.*$STORE/\.vmbundlefs/log" "$(cat "$T/o.err")"
# Logging never fails an operation: the log made unwritable under the running daemon.
mv "$L" "$L.saved"
mkdir "$L"
assert_match "with an unusable log, an open still fails only with EIO" 'Input/output error' "$(cat "$T/rel/b/f" 2>&1 >/dev/null)"
check "with an unusable log, other operations work" sh -c "echo x >'$T/rel/b/new' && cat '$T/rel/b/new' >/dev/null"
rmdir "$L"
mv "$L.saved" "$L"
check "unmount the daemonized mount" fusermount3 -u "$T/rel"
for i in $(seq 50); do grep -q "vmbundlefs\[$PID\] $T/rel: unmounted" "$L" && break; sleep 0.1; done
wait_store_free "$STORE"
assert_match "the daemon logged its end" "^$TS vmbundlefs\[$PID\] $T/rel: unmounted$" "$(tail -n 1 "$L")"
run "$VMB_BIN" status "$STORE"
assert_match "status of a store not mounted" "^not mounted$" "$(cat "$T/o")"
run "$VMB_BIN" fsck -n "$STORE"
assert_match "fsck -n that finds problems names the log" "$STORE/\.vmbundlefs/log" "$(cat "$T/o")"

# ---- --log=FILE: the message goes there and to the store's log ----
mount_store
n0=$(grep -c 'cannot open' "$L")
cat "$MNT/b/f" >/dev/null 2>&1
assert_match "--log: the file gets the message" "cannot open 'b/f': sidecar map is corrupt" "$(cat "$T/log")"
assert_eq "--log: the store's log gets it too" $((n0 + 1)) "$(grep -c 'cannot open' "$L")"
unmount_store

# ---- rotation with two daemons appending at once ----
export VMB_TEST_LOG_MAX=6000
mount_store
MNT2=$T/mnt2
mkdir "$MNT2"
"$VMB_BIN" mount "$STORE" "$MNT2" || fail "second mount"
on_exit "fusermount3 -uz '$MNT2' 2>/dev/null"
unset VMB_TEST_LOG_MAX
pids=
for m in "$MNT" "$MNT2"; do
    ( for i in $(seq 150); do cat "$m/b/f" >/dev/null 2>&1; done ) &
    pids="$pids $!"
done
wait $pids   # not a bare wait: the first daemon is a job of this shell
check "second mount unmounts" fusermount3 -u "$MNT2"
unmount_store
wait_store_free "$STORE"
for g in "$L" "$L.1" "$L.2"; do
    check "rotation: $(basename "$g") exists" test -f "$g"
    assert_eq "rotation: $(basename "$g") is mode 0600" 600 "$(stat -c %a "$g")"
done
check "rotation: only two old generations" test ! -e "$L.3"
assert_num "rotation: log.1 is about the cap ($(stat -c %s "$L.1") bytes)" "$(stat -c %s "$L.1")" -le $((6000 + 4096))
bad=$(cat "$L.2" "$L.1" "$L" | grep -Evc "^$TS vmbundlefs\[[0-9]+\] $T/mnt2?: (cannot open 'b/f': sidecar map is corrupt .*|mounted|unmounted)$")
assert_eq "rotation: every line whole, none mixed with another" 0 "$bad"
assert_num "rotation: both daemons' lines are there" \
    "$(cat "$L.2" "$L.1" "$L" | sed -nE 's/.*\] ([^:]*): .*/\1/p' | sort -u | wc -l)" -eq 2
lines=$(cat "$L.2" "$L.1" "$L" | wc -l)
assert_num "rotation: the three generations hold at least their share of the 300 lines ($lines)" "$lines" -ge 60
run "$VMB_BIN" status -n 1000 "$STORE"
assert_eq "status reads across the generations" "$lines" "$(grep -c '^  ' "$T/o")"
finish
