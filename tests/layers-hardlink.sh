#!/bin/sh
# A layered file with a second hard link in its bundle (outside report X-hlmode):
# `vmbundlefs snapshot` and `clone` of a store that is not mounted used to freeze
# the file's inode into the layer and rename a new delta over one name only, so the
# other name named the layer's data (mode 0400, and never to be written again).
# Now such a file is copied into a merged layer and left as it is: both names stay
# one inode with the file's mode and content; writes through either name land in
# the live file only (not in the snapshot, not in the clone); the snapshot and the
# clone hold the content of the moment, through a remount too. Through a mount
# the snapshot of such a file is refused (EMLINK), as documented.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
vmb_setup
M=$((1024 * 1024))
run() { timeout 120 "$@" >"$T/o" 2>"$T/e" </dev/null; RC=$?; }
md5() { md5sum <"$1" | cut -d' ' -f1; }

mkdir "$STORE/vm"
head -c $((4 * M)) /dev/urandom >"$STORE/vm/disk.img"
chmod 0640 "$STORE/vm/disk.img"
"$VMB_BIN" fsck "$STORE" >/dev/null
# a first snapshot: disk.img becomes a delta over a layer
run "$VMB_BIN" snapshot "$STORE" vm s0
assert_eq "snapshot vm s0 (offline; $(head -c 300 "$T/e"))" 0 "$RC"

# through the mount: data of its own in the delta, and a second name
mount_store
vmbio pwrite "$MNT/vm/disk.img" $M 65536 161 >/dev/null || fail "pwrite through the mount"
ln "$MNT/vm/disk.img" "$MNT/vm/disk2.img" || fail "ln through the mount"
cp "$MNT/vm/disk.img" "$T/want.s1" || fail "cp out of the mount"
unmount_store
assert_eq "the two names are one inode" "$(st_ino "$STORE/vm/disk.img")" "$(st_ino "$STORE/vm/disk2.img")"

# ---- snapshot, offline ----
run "$VMB_BIN" snapshot "$STORE" vm s1
assert_eq "snapshot vm s1 of a layered file with two names (offline; $(head -c 300 "$T/e"))" 0 "$RC"
assert_eq "... the second name keeps the file's mode" 640 "$(stat -c %a "$STORE/vm/disk2.img")"
assert_eq "... the first name too" 640 "$(stat -c %a "$STORE/vm/disk.img")"
assert_eq "... the two names are still one inode" \
    "$(st_ino "$STORE/vm/disk.img")" "$(st_ino "$STORE/vm/disk2.img")"
assert_eq "... with 2 links" 2 "$(stat -c %h "$STORE/vm/disk.img")"

# ---- clone, offline ----
run "$VMB_BIN" clone "$STORE" vm vc
assert_eq "clone vm vc (offline; $(head -c 300 "$T/e"))" 0 "$RC"
assert_eq "... the second name keeps the file's mode" 640 "$(stat -c %a "$STORE/vm/disk2.img")"
assert_eq "... the two names are still one inode" \
    "$(st_ino "$STORE/vm/disk.img")" "$(st_ino "$STORE/vm/disk2.img")"
run "$VMB_BIN" fsck "$STORE"
assert_eq "fsck finds nothing wrong ($(head -c 300 "$T/e"))" 0 "$RC"

# ---- through a mount: contents, and writes through either name ----
mount_store
W=$(md5 "$T/want.s1")
assert_eq "disk.img reads as before" "$W" "$(md5 "$MNT/vm/disk.img")"
assert_eq "disk2.img reads as before" "$W" "$(md5 "$MNT/vm/disk2.img")"
assert_eq "the snapshot holds the content of its moment" "$W" \
    "$(md5 "$MNT/.snapshots/vm@s1/disk.img")"
assert_eq "... under both names" "$W" "$(md5 "$MNT/.snapshots/vm@s1/disk2.img")"
assert_eq "the clone holds it" "$W" "$(md5 "$MNT/vc/disk.img")"
vmbio pwrite "$MNT/vm/disk2.img" 0 65536 178 >/dev/null || fail "pwrite through disk2.img"
vmbio pwrite "$MNT/vm/disk.img" $((2 * M)) 65536 195 >/dev/null || fail "pwrite through disk.img"
check "a write through the second name shows through the first" \
    cmp -s <(head -c 65536 "$MNT/vm/disk.img") <(head -c 65536 "$MNT/vm/disk2.img")
assert_eq "the two names read the same" "$(md5 "$MNT/vm/disk.img")" "$(md5 "$MNT/vm/disk2.img")"
check "... which is no longer the snapshot's" \
    test "$(md5 "$MNT/vm/disk.img")" != "$W"
assert_eq "the snapshot did not change" "$W" "$(md5 "$MNT/.snapshots/vm@s1/disk2.img")"
assert_eq "the clone did not change" "$W" "$(md5 "$MNT/vc/disk.img")"
L=$(md5 "$MNT/vm/disk.img")
unmount_store
mount_store
assert_eq "after a remount: the live file under both names" "$L $L" \
    "$(md5 "$MNT/vm/disk.img") $(md5 "$MNT/vm/disk2.img")"
assert_eq "... the snapshot and the clone" "$W $W" \
    "$(md5 "$MNT/.snapshots/vm@s1/disk.img") $(md5 "$MNT/vc/disk.img")"
# through the mount the freeze refuses such a file (documented: EMLINK)
run "$VMB_BIN" snapshot "$MNT" vm s2
check "snapshot through the mount: refused" test "$RC" != 0
assert_match "... saying why" 'has 2 hard links: a file with other names cannot be frozen' "$(cat "$T/e")"
unmount_store
assert_eq "the live file's mode, under both names" "640 640" \
    "$(stat -c %a "$STORE/vm/disk.img") $(stat -c %a "$STORE/vm/disk2.img")"
finish
