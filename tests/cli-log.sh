#!/bin/sh
# What a user sees of the daemons' log without setup (issue #9 §5): every error the
# CLI prints about a store that a daemon's messages may explain (EIO, EBUSY, a failed
# mount) names the store's log and `vmbundlefs status` on a second line, the same
# for every command, the structural ones (clone, snapshot, ...) and a path inside
# a mount included; usage errors and plain "no such bundle" stay one line; a
# failed mount is in the log too; `vmbundlefs ls` shows (on stderr) the log's
# non-routine lines of the last 24 hours, at most 3, with their count and a
# pointer to `status`, and nothing when there are none.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
L=$STORE/.vmbundlefs/log
HINT="^vmbundlefs: the daemons' messages may say why: 'vmbundlefs status $STORE' shows the last lines of their log, $STORE/\.vmbundlefs/log$"
run() { "$@" >"$T/o" 2>"$T/e"; RC=$?; }
hinted() { grep -Ec "$HINT" "$T/e"; }

# flip_byte FILE OFFSET
flip_byte() {
    local b
    b=$(od -A n -t u1 -j "$2" -N 1 "$1" | tr -d ' ')
    printf "$(printf '\\%03o' $((b ^ 0xff)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# ---- a store whose log holds only routine lines: ls says nothing more ----
mount_store
mkdir "$MNT/b" "$MNT/ok"
vmbio pwrite "$MNT/b/f" 0 20000 p1 >/dev/null
truncate -s $((8 * 1024 * 1024)) "$MNT/b/f"
vmbio pwrite "$MNT/b/f" $((4 * 1024 * 1024)) 8192 p2 >/dev/null
echo hello >"$MNT/ok/cfg"
unmount_store
run "$VMB_BIN" ls "$STORE"
assert_eq "ls, log with routine lines only: exit 0" 0 $RC
assert_eq "ls, log with routine lines only: nothing on stderr" "" "$(cat "$T/e")"
cp "$T/o" "$T/ls.before"

# ---- a problem in the log: ls shows it, with a count and a pointer to status ----
# (the map is repaired by fsck afterwards: the bundle is fine, its trouble logged)
flip_byte "$(sidecar_of "$STORE/b/f")" 5000
mount_store
assert_match "cat of a file with a corrupt map fails with EIO" 'Input/output error' "$(cat "$MNT/b/f" 2>&1 >/dev/null)"
unmount_store
"$VMB_BIN" fsck "$STORE" >/dev/null
run "$VMB_BIN" ls "$STORE"
assert_eq "ls with a problem in the log: exit 0" 0 $RC
assert_eq "ls with a problem in the log: the table (stdout) is unchanged" "$(cat "$T/ls.before")" "$(cat "$T/o")"
assert_match "ls: says how many messages of the last 24 hours, and where" \
    "^vmbundlefs: the daemons' log $STORE/\.vmbundlefs/log has 1 message of the last 24 hours that may concern you; the last:$" "$(cat "$T/e")"
assert_match "ls: shows the message, whole" \
    "^  [0-9T:.-]+Z vmbundlefs\[[0-9]+\] $MNT: cannot open 'b/f': sidecar map is corrupt" "$(cat "$T/e")"
assert_match "ls: points to status" "^\('vmbundlefs status $STORE' shows the mounts and the whole end of the log\)$" "$(cat "$T/e")"
assert_eq "ls: routine lines (mounted, unmounted) are not shown" 0 "$(grep -Ec ': (mounted|unmounted)$' "$T/e")"
flip_byte "$(sidecar_of "$STORE/b/f")" 5000
mount_store
for i in 1 2 3 4; do cat "$MNT/b/f" >/dev/null 2>&1; done
unmount_store
"$VMB_BIN" fsck "$STORE" >/dev/null
run "$VMB_BIN" ls "$STORE"
assert_match "ls: five problems counted" "has 5 messages of the last 24 hours" "$(cat "$T/e")"
assert_eq "ls: at most 3 of them shown" 3 "$(grep -c '^  ' "$T/e")"

# Lines older than 24 hours are not shown (a store's old trouble is status's).
old=$(date -u -d '-2 days' +%Y-%m-%dT%H:%M:%S.000Z)
{ printf '%s vmbundlefs[1] /old: an old problem\n' "$old"; cat "$L"; } >"$T/log.new"
cat "$T/log.new" >"$L"
sed -i "/: cannot open 'b\/f'/d" "$L"
run "$VMB_BIN" ls "$STORE"
assert_eq "ls: a problem older than 24 hours is not shown" "" "$(cat "$T/e")"
run "$VMB_BIN" status "$STORE"
assert_match "status still shows it" "an old problem" "$(cat "$T/o")"
# A log that cannot be read leaves ls as it was.
printf '%s vmbundlefs[1] /x: a fresh problem\n' "$(date -u +%Y-%m-%dT%H:%M:%S.000Z)" >>"$L"
mv "$L" "$L.saved"; mkdir "$L"
run "$VMB_BIN" ls "$STORE"
assert_eq "ls with an unreadable log: exit 0" 0 $RC
assert_eq "ls with an unreadable log: nothing on stderr" "" "$(cat "$T/e")"
rmdir "$L"; mv "$L.saved" "$L"
run "$VMB_BIN" ls "$STORE"
assert_match "ls shows a fresh problem" "^  .*: a fresh problem$" "$(cat "$T/e")"

# ---- errors that the log may explain name it; usage errors do not ----
mount_store
run "$VMB_BIN" fsck -n "$STORE"
assert_eq "fsck of a mounted store: exit 8" 8 $RC
assert_match "fsck of a mounted store: the error" "^vmbundlefs: store '$STORE' is mounted or in use" "$(cat "$T/e")"
assert_eq "fsck of a mounted store (EBUSY): names the log and status" 1 "$(hinted)"
# A path inside the mount whose daemon does not answer on its control channel:
# the store is found from the mount, and its log named.
mkdir "$T/sock"
mv "$STORE"/.vmbundlefs/run/ctl.* "$T/sock/"
run "$VMB_BIN" ping "$MNT/b"
assert_eq "ping of a path in a mount whose daemon does not answer: exit 1" 1 $RC
assert_match "... says so" "does not answer on its control channel" "$(cat "$T/e")"
assert_eq "... and names the store's log (found from the path in the mount)" 1 "$(hinted)"
run "$VMB_BIN" snapshot "$MNT/b" b s1
assert_eq "snapshot through a mount whose daemon does not answer: names the log" 1 "$(hinted)"
mv "$T/sock"/ctl.* "$STORE/.vmbundlefs/run/"
run "$VMB_BIN" clone "$MNT" nosuch x
assert_num "clone of a missing bundle through the mount fails" $RC -ne 0
assert_eq "... in one line, no pointer to the log" 0 "$(grep -c "daemons' messages" "$T/e")"
unmount_store
# fsck holds the store: mount, import fail with EBUSY.
( exec 9<>"$STORE/.vmbundlefs/lock"; flock -x 9; exec sleep 30 ) &
FL=$!
on_exit "kill $FL 2>/dev/null"
# (a mount that found the store free would run in the foreground: not for ever)
wait_for 20 sh -c "! flock -n '$STORE/.vmbundlefs/lock' true" || say "# the store's lock is not held after 20 s"
mkdir "$T/m2"
on_exit "is_mounted '$T/m2' && fusermount3 -uz '$T/m2'"
run timeout 60 "$VMB_BIN" mount -f "$STORE" "$T/m2"
assert_eq "mount of a store being checked: exit 1" 1 $RC
assert_match "mount of a store being checked: the error" "^vmbundlefs: store '$STORE' is being checked" "$(cat "$T/e")"
assert_eq "a failed mount names the log and status" 1 "$(hinted)"
assert_match "the failed mount is in the store's log, with its reason" \
    "vmbundlefs\[[0-9]+\] $T/m2: cannot mount: store '$STORE' is being checked" "$(tail -n 1 "$L")"
run "$VMB_BIN" status "$STORE"
assert_match "status shows the failed mount" "cannot mount: store '$STORE' is being checked" "$(cat "$T/o")"
tar -cf "$T/a.tar" -C "$T" m2
run "$VMB_BIN" import "$STORE" "$T/a.tar" imp
assert_eq "import into a store being checked: exit 1" 1 $RC
assert_eq "import into a store being checked (EBUSY): names the log" 1 "$(hinted)"
# a structural command waits for the lock (as for another command), saying so
run timeout 3 "$VMB_BIN" clone "$STORE" ok ok2
assert_eq "clone in a store being checked: still waiting after 3 s" 124 $RC
assert_match "... saying so" "waiting for another command \\(or fsck\\) working on store" "$(cat "$T/e")"
check_fails "... and nothing made" test -e "$STORE/ok2"
kill $FL; wait $FL 2>/dev/null
# ls of a damaged bundle: names the log once.
flip_byte "$(sidecar_of "$STORE/b/f")" 5000
run "$VMB_BIN" ls "$STORE"
assert_match "ls of a damaged bundle: says so" "^b .*\(damaged\)" "$(cat "$T/o")"
assert_eq "ls of a damaged bundle: exit 1" 1 $RC
assert_eq "ls of a damaged bundle: names the log once" 1 "$(hinted)"
"$VMB_BIN" fsck "$STORE" >/dev/null
# One line, no hint: usage errors, missing stores, bundles, archives.
for cmd in "ls" "ls -x $STORE" "ls $T/nostore" "status $T/nostore" "fsck $T/nostore" \
    "export $STORE nobundle $T/x.tar" "export $STORE ../b $T/x.tar" "deps $STORE nobundle" \
    "import $STORE $T/noarchive.tar" "mount -o bogus $STORE $T/m2" "mount $STORE $T/nodir" \
    "init $STORE" "clone $STORE nobundle x" "clone $STORE" "snapshot $STORE nobundle" \
    "snapshot --delete $STORE b@none" "flatten $STORE nobundle"; do
    run "$VMB_BIN" $cmd
    assert_num "'vmbundlefs $cmd' fails" $RC -ne 0
    assert_eq "'vmbundlefs $cmd': no pointer to the log" 0 "$(grep -c "daemons' messages" "$T/e")"
done
assert_eq "no mount left behind" "" "$(grep " $T/" /proc/self/mounts)"
finish
