#!/bin/sh
# A lookup of a file in the window between a freeze's rename of the new delta
# over its name and the daemon's move of the node to that new inode (a snapshot
# or clone: VMB_TEST_FREEZE_DELAY_MS makes the window 2 s) waits for the freeze
# (a lookup is a change of its directory for the write barrier). It used to make
# a second node for the new inode: a descriptor opened through it kept writing
# the inode that the next freeze made a layer, so the writes went into the
# immutable layer, missed the live file, and every open then failed with EIO
# (outside report X-freeze: fsx with a snapshot/clone storm).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
export VMB_TEST_FREEZE_DELAY_MS=2000
mount_store
unset VMB_TEST_FREEZE_DELAY_MS

mkdir "$MNT/vm"
head -c $((4 * 1024 * 1024)) /dev/urandom >"$MNT/vm/disk.img"
cp "$MNT/vm/disk.img" "$T/ref"
exec 8<"$MNT/vm/disk.img"   # open through the mount (as a running VM has it)
sleep 1.2   # the kernel's entry for the name expires (1 s): the next open looks it up

ino=$(st_ino "$STORE/vm/disk.img")
"$VMB_BIN" snapshot "$STORE" vm one >"$T/snap1.out" 2>&1 &
snap=$!
end=$((SECONDS + 20))
while [ $SECONDS -lt $end ] && [ "$(st_ino "$STORE/vm/disk.img")" = "$ino" ]; do sleep 0.02; done
# in the window (the name is on the new inode, the node not yet): a descriptor
# opened now (a lookup, the kernel's entry having expired) and kept across the
# next snapshot writes the live file, before it (so that the snapshot freezes
# the file again) and after it
start=$(date +%s%N)
exec 7<>"$MNT/vm/disk.img" || fail "open in the window"
waited=$((($(date +%s%N) - start) / 1000000))
wait $snap || { cat "$T/snap1.out"; fail "snapshot one"; }
assert_num "a lookup in the window waits for the freeze ($waited ms)" "$waited" -ge 500
printf 'BEFORE' >&7
printf 'BEFORE' | dd of="$T/ref" conv=notrunc status=none
"$VMB_BIN" snapshot "$STORE" vm two >"$T/snap2.out" 2>&1 || { cat "$T/snap2.out"; fail "snapshot two"; }
printf 'AFTER-THE-SNAPSHOT' >&7
exec 7>&- 8<&-
printf 'AFTER-THE-SNAPSHOT' | dd of="$T/ref" bs=1 seek=6 conv=notrunc status=none
check "the live file has the writes made before and after the snapshot" cmp "$MNT/vm/disk.img" "$T/ref"
assert_eq "the snapshot has the write made before it, not the one after" "BEFORE" \
    "$(head -c 24 "$MNT/.snapshots/vm@two/disk.img" | head -c 6)"
check_fails "... (nothing of the write after it)" \
    sh -c "head -c 24 '$MNT/.snapshots/vm@two/disk.img' | grep -aq AFTER-THE"
unmount_store
check "fsck: the store is clean (no layer was written after its freeze)" \
    "$VMB_BIN" fsck -n "$STORE"
mount_store
check "after a remount, the live file reads" cmp "$MNT/vm/disk.img" "$T/ref"
finish
