#!/bin/sh
# A full backing filesystem: the store on a 64 MiB tmpfs; writing through the
# mount until it is full gives the writer ENOSPC; after a remount the file
# holds what was written successfully and its map is consistent.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup noinit
mkdir "$T/tfs"
if ! mount -t tmpfs -o size=64m vmbtest-tmpfs "$T/tfs" 2>"$T/tmpfs.err"; then
    skip "cannot mount a tmpfs for the small store: $(cat "$T/tmpfs.err")"
fi
on_exit "umount '$T/tfs' 2>/dev/null || umount -l '$T/tfs'"
STORE=$T/tfs/store
"$VMB_BIN" init "$STORE" >/dev/null 2>&1 || fail "init on tmpfs"
mount_store
mkdir "$MNT/b" || fail "mkdir bundle"
M=1048576

# A small file first, fsync'ed: it must survive the full disk untouched.
vmbio pwrite "$MNT/b/small" 0 $((2 * M)) p3 sync >/dev/null || fail "small file"

vmbio fill "$MNT/b/big" 65536 >"$T/fill.out" 2>&1
sed 's/^/    | /' "$T/fill.out"
CONFIRMED=$(sed -n 's/^confirmed //p' "$T/fill.out")
assert_eq "the writer got ENOSPC" "error ENOSPC" "$(grep '^error' "$T/fill.out")"
assert_num "a plausible amount was written before ENOSPC ($CONFIRMED bytes)" "${CONFIRMED:-0}" -ge $((40 * M))
out=$(dd if=/dev/urandom of="$MNT/b/more" bs=1M count=4 conv=fsync 2>&1)
assert_match "dd into the full store says 'No space left on device'" 'No space left on device' "$out"
rm -f "$MNT/b/more"
check "the mount still answers" ls "$MNT/b"
check "the small file is intact while the store is full" vmbio verify "$MNT/b/small" 0 $((2 * M)) p3

remount
SIZE=$(st_size "$MNT/b/big")
assert_num "after remount: size ($SIZE) >= bytes confirmed written ($CONFIRMED)" "$SIZE" -ge "${CONFIRMED:-0}"
check "after remount: every confirmed byte reads back" vmbio verify "$MNT/b/big" 0 "$CONFIRMED" p7
if [ "$SIZE" -gt "$CONFIRMED" ]; then
    check "after remount: bytes past the confirmed ones are the written pattern or zero" \
        vmbio verify0 "$MNT/b/big" "$CONFIRMED" $((SIZE - CONFIRMED)) p7
fi
check "after remount: the whole file reads without error" vmbio read "$MNT/b/big"
FIRST_HOLE=$(vmbio seek "$MNT/b/big" 0 hole)
assert_num "map: the confirmed bytes are data (first hole at $FIRST_HOLE)" "$FIRST_HOLE" -ge "$CONFIRMED"
assert_eq "map: st_blocks equals the map's data blocks" "$(vmbio mapsum "$MNT/b/big")" "$(( $(st_blocks "$MNT/b/big") * 512 ))"
check "map: holes read as zeros" vmbio checkholes "$MNT/b/big"
check "after remount: the small file is intact" vmbio verify "$MNT/b/small" 0 $((2 * M)) p3

# Space comes back after deleting.
check "delete the big file" rm "$MNT/b/big"
# Through FUSE the backing file is released asynchronously (RELEASE/FORGET):
# allow a few seconds for the space to come back.
freed=0
for i in $(seq 1 50); do
    [ "$(df -k --output=avail "$T/tfs" | tail -n 1)" -ge 16384 ] && { freed=1; break; }
    sleep 0.1
done
assert_eq "the space of the deleted file is released within 5 s ($(df -k --output=avail "$T/tfs" | tail -n 1) KiB free)" 1 $freed
check "writing works again after freeing space" vmbio pwrite "$MNT/b/again" 0 $((8 * M)) p8 sync
check "... and reads back" vmbio verify "$MNT/b/again" 0 $((8 * M)) p8

# The same with 1 MiB writes and no fsync: these take the queued O_DIRECT path
# (vmbundlefs(5), "Write path"), and ENOSPC must still reach write() itself.
rm -f "$MNT/b/again"
vmbio fill "$MNT/b/big2" $M nosync >"$T/fill2.out" 2>&1
sed 's/^/    | /' "$T/fill2.out"
CONFIRMED=$(sed -n 's/^confirmed //p' "$T/fill2.out")
assert_eq "1 MiB writes: write() got ENOSPC" "error ENOSPC" "$(grep '^error' "$T/fill2.out")"
assert_eq "1 MiB writes: close succeeded" "close ok" "$(grep '^close' "$T/fill2.out")"
assert_num "1 MiB writes: a plausible amount was written before ENOSPC ($CONFIRMED bytes)" "${CONFIRMED:-0}" -ge $((40 * M))
remount
check "1 MiB writes: after remount every accepted byte reads back" vmbio verify "$MNT/b/big2" 0 "$CONFIRMED" p7
check "1 MiB writes: every non-zero byte is in a data extent of the map" vmbio mapcheck "$MNT/b/big2"
check "1 MiB writes: the small file is intact" vmbio verify "$MNT/b/small" 0 $((2 * M)) p3
check "delete it (the full store could not save its map)" rm "$MNT/b/big2"
unmount_store
"$VMB_BIN" fsck -n "$STORE" >"$T/fsck.out" 2>&1
rc=$?
assert_eq "fsck -n is clean afterwards: $(head -c 300 "$T/fsck.out")" 0 $rc
finish
