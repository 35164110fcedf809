#!/bin/sh
# Zero writes at unaligned offsets into a fallocated file (restic's restore: it
# fallocates the file, then writes data blobs and runs of zeros in 512 KiB
# pieces at unaligned offsets).  A block that reads as zeros after a write
# (old bytes and new) must become a hole: no 4 KiB data islands at the edges of
# every zero piece.  The same writes go to a reference file on the local
# filesystem; the mount must allocate no more than it, and have one data extent
# per data blob (ext4 has the whole file allocated after the fallocate).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
mount_store
mkdir "$MNT/b"
F=$MNT/b/restore.bin
R=$T/ref.bin
PIECE=524288
NBLOB=24

# blob i: data of an unaligned length, then an unaligned run of zeros written in
# 512 KiB pieces
pos=0 data=0
: >"$T/ops"
for i in $(seq $NBLOB); do
    len=$((150000 + i * 1237))
    echo "w $pos $len p3" >>"$T/ops"
    pos=$((pos + len)) data=$((data + len))
    z=$((3 * PIECE + i * 333 + 17))
    while [ $z -gt 0 ]; do
        n=$((z < PIECE ? z : PIECE))
        echo "w $pos $n 0" >>"$T/ops"
        pos=$((pos + n)) z=$((z - n))
    done
done
SIZE=$pos

for f in "$F" "$R"; do
    check "fallocate $SIZE bytes ($(basename "$(dirname "$f")"))" fallocate -l $SIZE "$f"
    assert_eq "restic-like writes ($(basename "$(dirname "$f")"))" ok "$(vmbio ops "$f" <"$T/ops")"
done
check "same bytes as the local reference" cmp "$F" "$R"
assert_eq "size" $SIZE "$(st_size "$F")"

ext_mnt=$(vmbio map "$F" | wc -l)
ext_ref=$(vmbio map "$R" | wc -l)
blk_mnt=$(st_blocks "$F")
blk_ref=$(st_blocks "$R")
say "# data extents: mount $ext_mnt, local $ext_ref; st_blocks: mount $blk_mnt, local $blk_ref; data $data bytes"
assert_eq "one data extent per data blob" $NBLOB "$ext_mnt"
check "no more allocated than the local file ($blk_mnt <= $blk_ref blocks)" test "$blk_mnt" -le "$blk_ref"
# every blob allocates at most its own bytes plus its two edge blocks
max=$(( (data + NBLOB * 2 * 4096) / 512 ))
check "allocation is the data plus its edge blocks ($blk_mnt <= $max blocks)" test "$blk_mnt" -le $max
check "mapsum agrees" test "$(vmbio mapsum "$F")" -le $((max * 512))

# after a remount (map from the sidecar) and from the backing file's holes alone
unmount_store
rm -f "$STORE/.vmbundlefs/maps/"*.map
mount_store
check "same bytes after a remount with the map rebuilt" cmp "$F" "$R"
assert_eq "data extents after the rebuild" $NBLOB "$(vmbio map "$F" | wc -l)"
check "every non-zero byte is in a data extent" vmbio mapcheck "$F"
finish
