#!/bin/sh
# Reads through base layers (issue 10: a read through a base layer costs about what
# the same read of a single-layer file costs): a file on a 1-layer and on a 3-layer
# chain reads back whole through the mount with its bytes spliced from the layers'
# data files, not copied through the daemon (its read(2) count stays far below the
# bytes read, as for a single-layer file); a damaged layer (its data file cut short
# while the file is open) gives EIO, never a short read nor a smaller file.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
M=$((1024 * 1024))
SRC=$T/src.bin
head -c $((24 * M)) /dev/urandom >"$SRC"
mount_store
mkdir "$MNT/r0" "$MNT/r1" "$MNT/r3" "$MNT/rd"
for b in r0 r1 rd; do
	dd if="$SRC" of="$MNT/$b/disk.img" bs=1M conv=fsync status=none || fail "writing $b"
done
"$VMB_BIN" snapshot "$MNT" r1 one >/dev/null || fail "snapshot of r1"
"$VMB_BIN" snapshot "$MNT" rd one >/dev/null || fail "snapshot of rd"
for k in 0 1 2; do
	dd if="$SRC" of="$MNT/r3/disk.img" bs=1M seek=$((k * 8)) skip=$((k * 8)) count=8 \
	   conv=notrunc,fsync status=none || fail "writing r3 slice $k"
	"$VMB_BIN" snapshot "$MNT" r3 "s$k" >/dev/null || fail "snapshot $k of r3"
done
unmount_store
mount_store
rchar() { awk '/^rchar:/ { print $2 }' "/proc/$(daemon_pid)/io"; }
for b in r0 r1 r3; do
	echo 1 >/proc/sys/vm/drop_caches
	before=$(rchar)
	check "$b reads back as written" cmp "$SRC" "$MNT/$b/disk.img"
	after=$(rchar)
	assert_num "$b: bytes the daemon read(2) for 24 MiB (spliced, not copied)" \
	    $((after - before)) -lt $((4 * M))
done

# A damaged layer: its data file cut short behind the daemon's back.
L=$(getfattr --absolute-names -n trusted.vmbundlefs.base --only-values "$STORE/rd/disk.img" | cut -d' ' -f1)
[ -f "$STORE/.vmbundlefs/layers/$L.data" ] || fail "rd's layer '$L' has no data file"
exec 3<"$MNT/rd/disk.img"
truncate -s $((20 * M + 100)) "$STORE/.vmbundlefs/layers/$L.data"
echo 1 >/proc/sys/vm/drop_caches
check_fails "a read past the cut fails" dd if="$MNT/rd/disk.img" of=/dev/null bs=1M \
    skip=19 count=2 iflag=direct status=none
out=$(dd if="$MNT/rd/disk.img" of=/dev/null bs=1M skip=19 count=2 status=none 2>&1)
assert_match "... with EIO" "Input/output error" "$out"
assert_match "the log names the layer" "$L" "$(cat "$T/log")"
assert_eq "the file keeps its size" $((24 * M)) "$(stat -c %s "$MNT/rd/disk.img")"
check "bytes before the cut still read" cmp -n $((20 * M)) "$SRC" "$MNT/rd/disk.img"
exec 3<&-
finish
