#!/bin/sh
# st_blocks through the mount of files over layers that no one has open (issue 10:
# st_blocks exact through the chain): a clone made on the store, then mounted,
# shows every block that reads as data through its chain (the base's data it
# does not hide, plus its own), as when the file is open, not just its own delta.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
M=$((1024 * 1024))
mkdir "$STORE/vm"
truncate -s $((64 * M)) "$STORE/vm/disk.img"
head -c $((3 * M)) /dev/urandom | dd of="$STORE/vm/disk.img" bs=1M seek=8 conv=notrunc status=none
"$VMB_BIN" clone "$STORE" vm vc >/dev/null || fail "clone on the store"
mount_store
blocks() { stat -c %b "$1"; }
assert_eq "a clone not open: st_blocks = its base's 3 MiB" $((3 * M / 512)) "$(blocks "$MNT/vc/disk.img")"
assert_eq "its source, frozen by the clone: the same" $((3 * M / 512)) "$(blocks "$MNT/vm/disk.img")"
vmbio pwrite "$MNT/vc/disk.img" 0 8192 p1 >/dev/null          # own data, outside the base's
vmbio falloc "$MNT/vc/disk.img" punch $((8 * M)) $M >/dev/null  # hide 1 MiB of the base
unmount_store
mount_store
assert_eq "after changes and a remount: 2 MiB of the base and 8 KiB of its own" \
    $(((2 * M + 8192) / 512)) "$(blocks "$MNT/vc/disk.img")"
assert_eq "... the same as the data extents say" "$(vmbio mapsum "$MNT/vc/disk.img")" \
    "$(($(blocks "$MNT/vc/disk.img") * 512))"
exec 3<"$MNT/vc/disk.img"
sleep 1.1   # past the kernel's attribute timeout
assert_eq "... and while it is open" $(((2 * M + 8192) / 512)) "$(blocks "$MNT/vc/disk.img")"
exec 3<&-
finish
