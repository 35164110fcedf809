#!/bin/sh
# The temporary snapshots of `vmbundlefs publish` when the publish dies
# (vmbundlefs(1) publish): a publish killed (SIGKILL, VMB_OP_KILL_AT=publish:1,
# right after its snapshots are taken) leaves its publish-* snapshot; fsck -n
# reports it, fsck deletes it, gc deletes it (offline and through a mount), the
# next publish of the unmounted store deletes it. The snapshot of a publish that
# runs (stopped there: VMB_OP_STOP_AT=publish:1) is never deleted, neither by gc
# (offline or through the daemon) nor by fsck, and that publish then finishes.
# A user's snapshot named publish-something is never touched.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
SNAPS=$STORE/.vmbundlefs/snapshots
STAGE=$STORE/.vmbundlefs/staging
pubsnaps() { ls "$SNAPS" 2>/dev/null | grep '@publish-' | grep -v '@publish-mine'; }
pubdirs() { ls "$STAGE" 2>/dev/null | grep '^pub\.'; }

mkdir "$STORE/vm"
truncate -s 64M "$STORE/vm/disk.img"
head -c $((2 * 1024 * 1024)) /dev/urandom | dd of="$STORE/vm/disk.img" bs=1M seek=8 conv=notrunc status=none
echo cfg >"$STORE/vm/config"
check "a user's own snapshot named publish-mine-1" "$VMB_BIN" snapshot "$STORE" vm publish-mine-1

# killed: publish:1 is right after the snapshots are taken
killed_publish() {   # killed_publish WHERE
    VMB_OP_KILL_AT=publish:1 "$VMB_BIN" publish -q "$1" vm "$T/pub" >"$T/kout" 2>&1
    echo $?
}
assert_eq "a publish killed after its snapshot (SIGKILL: 137)" 137 "$(killed_publish "$STORE")"
assert_match "... leaves its snapshot" "^vm@publish-[0-9]+\.[0-9a-f]+-0$" "$(pubsnaps)"
left=$(pubsnaps)
"$VMB_BIN" fsck -n "$STORE" >"$T/o" 2>&1
assert_eq "fsck -n: problems left (exit 4)" 4 $?
assert_match "... names the snapshot of the dead publish" \
    "^$left: needs deleting \(the temporary snapshot of a publish that died\)" "$(cat "$T/o")"
assert_match "... and its lock directory" \
    "staging/pub\.[0-9.a-f]+: needs removing \(the lock directory of a publish that died\)" "$(cat "$T/o")"
assert_eq "... deletes nothing" "$left" "$(pubsnaps)"
"$VMB_BIN" fsck "$STORE" >"$T/o" 2>&1
assert_eq "fsck repairs (exit 1)" 1 $?
assert_match "... deleted the snapshot" "^$left: deleted" "$(cat "$T/o")"
assert_eq "... it is gone" "" "$(pubsnaps)"
assert_eq "... and the lock directory" "" "$(pubdirs)"
check "... a second fsck -n finds nothing" "$VMB_BIN" fsck -n "$STORE"
check "... the user's publish-mine-1 stays" test -e "$SNAPS/vm@publish-mine-1"

assert_eq "killed again" 137 "$(killed_publish "$STORE")"
left=$(pubsnaps)
check "... leaves a snapshot" test -n "$left"
out=$("$VMB_BIN" gc "$STORE" 2>&1)
assert_eq "gc deletes the snapshot of the dead publish" "" "$(pubsnaps)"
assert_match "... says so" "deleted snapshot '$left' of a publish that died" "$out"
assert_eq "... and its lock directory" "" "$(pubdirs)"
check "... the user's publish-mine-1 stays" test -e "$SNAPS/vm@publish-mine-1"

assert_eq "killed again" 137 "$(killed_publish "$STORE")"
check "... leaves a snapshot" test -n "$(pubsnaps)"
check "the next publish succeeds" "$VMB_BIN" publish -q "$STORE" vm "$T/pub"
assert_eq "... and deleted the dead one's snapshot" "" "$(pubsnaps)"
assert_eq "... no lock directory is left" "" "$(pubdirs)"

# a publish that runs: stopped right after its snapshot
stopped_publish() {   # stopped_publish WHERE: starts it, waits until it stops
    local i
    VMB_OP_STOP_AT=publish:1 "$VMB_BIN" publish -q "$1" vm "$T/pub" >"$T/sout" 2>&1 &
    pub=$!
    on_exit "kill -9 $pub 2>/dev/null"
    for i in $(seq 1 200); do
        [ "$(awk '{print $3}' /proc/$pub/stat 2>/dev/null)" = T ] && return 0
        sleep 0.05
    done
    return 1
}
stopped_publish "$STORE"
assert_eq "a publish stopped after its snapshot" 0 $?
run=$(pubsnaps)
check "... has its snapshot" test -n "$run"
"$VMB_BIN" gc "$STORE" >"$T/o" 2>&1
assert_eq "gc beside it keeps its snapshot" "$run" "$(pubsnaps)"
"$VMB_BIN" fsck -n "$STORE" >"$T/o" 2>&1
assert_eq "fsck -n beside it finds nothing (exit 0)" "0:" "$?:$(cat "$T/o" | grep -v 'files checked')"
"$VMB_BIN" fsck "$STORE" >"$T/o" 2>&1
assert_eq "fsck beside it keeps its snapshot" "$run" "$(pubsnaps)"
check "... and its lock directory" test -n "$(pubdirs)"
kill -CONT $pub
wait $pub
assert_eq "the publish goes on and succeeds" "0:" "$?:$(cat "$T/sout")"
assert_eq "... its snapshot is deleted" "" "$(pubsnaps)"
assert_eq "... and its lock directory" "" "$(pubdirs)"

# the same through a mount (the daemon takes and deletes the snapshots, and gcs)
mount_store
stopped_publish "$MNT"
assert_eq "mounted: a publish stopped after its snapshot" 0 $?
run=$(pubsnaps)
check "... has its snapshot" test -n "$run"
check "gc through the daemon beside it" "$VMB_BIN" gc "$MNT"
assert_eq "... keeps its snapshot" "$run" "$(pubsnaps)"
kill -CONT $pub
wait $pub
assert_eq "the publish goes on and succeeds" "0:" "$?:$(cat "$T/sout")"
assert_eq "... its snapshot is deleted" "" "$(pubsnaps)"
assert_eq "mounted: a publish killed after its snapshot (137)" 137 "$(killed_publish "$MNT")"
left=$(pubsnaps)
check "... leaves a snapshot" test -n "$left"
assert_match "... listed in MNT/.snapshots" "^$left\$" "$(ls "$MNT/.snapshots" | grep publish- | grep -v publish-mine)"
check "gc through the daemon" "$VMB_BIN" gc "$MNT"
assert_eq "... deletes it" "" "$(pubsnaps)"
assert_eq "... gone from MNT/.snapshots" "" "$(ls "$MNT/.snapshots" | grep publish- | grep -v publish-mine)"
assert_eq "... and its lock directory" "" "$(pubdirs)"
check "... the user's publish-mine-1 stays" test -e "$MNT/.snapshots/vm@publish-mine-1"
unmount_store
check "fsck -n afterwards finds nothing" "$VMB_BIN" fsck -n "$STORE"
finish
