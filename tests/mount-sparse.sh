#!/bin/sh
# Sparse files: a 16 GiB file with ~20 scattered extents.  SEEK_DATA/SEEK_HOLE
# map, st_blocks, copies out with cp / cp --sparse=always / tar --sparse,
# tar -x --sparse into the mount, all-zero writes.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
mount_store

G=$((1024 * 1024 * 1024))
M=$((1024 * 1024))
K=4096
SIZE=$((16 * G))
B=$MNT/sparse
F=$B/disk.img
R=$T/ref.img           # the same writes on the local filesystem
mkdir "$B" || fail "mkdir $B"
dev=$(mountpoint -d "$MNT")
if [ -r "/sys/class/bdi/$dev/read_ahead_kb" ]; then
    assert_eq "the mount's readahead is raised to one full request, 1004 KiB (bdi $dev)" 1004 "$(cat "/sys/class/bdi/$dev/read_ahead_kb")"
fi

# OFF LEN SEED: data extents (non-zero pattern), one unaligned, none adjacent.
WRITES="
0 4096 1
$((1 * M)) 4096 2
$((3 * M)) $((2 * M)) 3
$((64 * M + 8192)) 8192 4
$((100 * M)) $((4 * M)) 5
$((512 * M)) 4096 6
$((1 * G)) $((1 * M)) 7
$((1 * G + 2 * M)) 12288 8
$((2 * G - 4096)) 8192 9
$((3 * G)) $((3 * M)) 10
$((4 * G + 123 * K)) 4096 11
$((5 * G + 1234)) 10000 12
$((6 * G)) $((1 * M)) 13
$((7 * G + 5 * M)) 4096 14
$((8 * G + 7 * K)) $((256 * 1024)) 15
$((9 * G)) 4096 16
$((11 * G + 3 * M)) $((2 * M)) 17
$((13 * G)) 65536 18
$((15 * G)) $((1 * M)) 19
$((16 * G - 4096)) 4096 20
"

# expected_map: merge block-rounded extents of WRITES (sorted, non-overlapping).
expected_map() {
    printf '%s\n' "$WRITES" | awk -v K=$K -v S=$SIZE 'NF == 3 {
        a = int($1 / K) * K; e = $1 + $2; b = int((e + K - 1) / K) * K; if (b > S) b = S
        if (n && a <= pe) { pe = b } else { if (n) printf "%.0f %.0f\n", ps, pe - ps; ps = a; pe = b; n++ }
    } END { if (n) printf "%.0f %.0f\n", ps, pe - ps }'
}
expected_bytes() {
    expected_map | awk '{ s += $2 } END { printf "%.0f\n", s }'
}

truncate -s $SIZE "$F" || fail "truncate $F"
truncate -s $SIZE "$R" || fail "truncate $R"
printf '%s\n' "$WRITES" | while read -r off len seed; do
    [ -n "$off" ] || continue
    vmbio pwrite "$F" "$off" "$len" "p$seed" >/dev/null || { echo "pwrite $off $len failed"; exit 1; }
    vmbio pwrite "$R" "$off" "$len" "p$seed" >/dev/null || { echo "pwrite ref $off $len failed"; exit 1; }
done || fail "writing the extents failed"

EXP_MAP=$(expected_map)
EXP_BYTES=$(expected_bytes)
say "# expected: $(printf '%s\n' "$EXP_MAP" | wc -l) extents, $EXP_BYTES bytes of data"
assert_eq "reference file on the local fs has the expected map (test sanity)" "$EXP_MAP" "$(vmbio map "$R")"
assert_eq "st_size is 16 GiB" $SIZE "$(st_size "$F")"
assert_eq "vmbio map of the mounted file equals the written extents" "$EXP_MAP" "$(vmbio map "$F")"
assert_eq "st_blocks equals the data blocks" $((EXP_BYTES / 512)) "$(st_blocks "$F")" ||
    say "    (the backing file has st_blocks $(st_blocks "$STORE/sparse/disk.img"))"
assert_eq "du reports the allocation" $((EXP_BYTES / 1024)) "$(du -k "$F" | cut -f1)"
assert_eq "SEEK_DATA past the last data -> ENXIO" ENXIO "$(vmbio seek "$F" $SIZE data 2>/dev/null)"
assert_eq "SEEK_DATA in the middle of a hole" $((512 * M)) "$(vmbio seek "$F" $((200 * M)) data)"
assert_eq "SEEK_HOLE inside data" $((5 * M)) "$(vmbio seek "$F" $((3 * M + 5)) hole)"
assert_eq "SEEK_HOLE in a hole returns the offset" $((7 * G)) "$(vmbio seek "$F" $((7 * G)) hole)"
check "reads of holes return zeros" vmbio checkholes "$F"
check "content equals the reference (extents + holes)" vmbio cmpsparse "$F" "$R"

# Reading all 16 GiB through the daemon reads only the data from the store.
backing_read() { getfattr -n user.vmbundlefs.stats --only-values "$MNT" | awk '/^backing_read_bytes / { print $2 }'; }
echo 3 >/proc/sys/vm/drop_caches
before=$(backing_read)
check "the whole file reads (16 GiB, through the daemon)" dd if="$F" of=/dev/null bs=1M status=none
after=$(backing_read)
DATA=$(expected_bytes)
assert_num "reading it all read the data from the store ($((after - before)) bytes)" $((after - before)) -ge "$DATA"
assert_num "... and no hole: at most 1.1x the data ($DATA bytes)" $((after - before)) -le $((DATA * 11 / 10))
check_fails "user.vmbundlefs.stats cannot be set" setfattr -n user.vmbundlefs.stats -v 1 "$MNT"
check "unaligned extent reads back" vmbio verify "$F" $((5 * G + 1234)) 10000 p12
check "bytes around the unaligned extent are zero" vmbio verify "$F" $((5 * G)) 1234 0

# slack for the destination's allocation: extent-tree blocks etc.
SLACK=512    # sectors (256 KiB)
REF_BLOCKS=$(st_blocks "$R")

copy_check() {   # NAME DEST
    local name=$1 dst=$2
    check "$name: identical bytes" vmbio cmpsparse "$dst" "$R"
    assert_near "$name: destination allocation (st_blocks) matches the source" "$(st_blocks "$dst")" "$REF_BLOCKS" $SLACK
}

s=$(date +%s.%N)
check "cp (default) out of the mount" cp "$F" "$T/cp-default.img"
say "# cp took $(echo "$(date +%s.%N) - $s" | bc 2>/dev/null || echo '?') s"
copy_check "cp default" "$T/cp-default.img"
rm -f "$T/cp-default.img"

check "cp --sparse=always out of the mount" cp --sparse=always "$F" "$T/cp-always.img"
copy_check "cp --sparse=always" "$T/cp-always.img"
rm -f "$T/cp-always.img"

check "tar --sparse -cf out of the mount" tar --sparse -cf "$T/a.tar" -C "$B" disk.img
TARSZ=$(st_size "$T/a.tar")
assert_num "tar archive size ($TARSZ) >= data bytes ($EXP_BYTES)" "$TARSZ" -ge "$EXP_BYTES"
assert_num "tar archive size ($TARSZ) <= data bytes + 1 MiB" "$TARSZ" -le $((EXP_BYTES + M))
mkdir "$T/x"
check "tar -xf elsewhere" tar -xf "$T/a.tar" -C "$T/x"
copy_check "tar --sparse round trip" "$T/x/disk.img"
rm -rf "$T/x"

mkdir "$MNT/untar"
check "tar -x --sparse into the mount" tar --sparse -xf "$T/a.tar" -C "$MNT/untar"
U=$MNT/untar/disk.img
assert_eq "extracted file: size" $SIZE "$(st_size "$U")"
assert_eq "extracted file: holes preserved (map)" "$EXP_MAP" "$(vmbio map "$U")"
assert_eq "extracted file: st_blocks" $((EXP_BYTES / 512)) "$(st_blocks "$U")" ||
    say "    (the backing file $STORE/untar/disk.img has st_blocks $(st_blocks "$STORE/untar/disk.img"))"
check "extracted file: content" vmbio cmpsparse "$U" "$R"
rm -f "$T/a.tar"
rm -f "$U"

check "cp of the local sparse file into the mount" cp "$R" "$MNT/untar/cp-in.img"
assert_eq "copied in: holes preserved (map)" "$EXP_MAP" "$(vmbio map "$MNT/untar/cp-in.img")"
assert_eq "copied in: st_blocks" $((EXP_BYTES / 512)) "$(st_blocks "$MNT/untar/cp-in.img")"
check "copied in: content" vmbio cmpsparse "$MNT/untar/cp-in.img" "$R"
rm -f "$MNT/untar/cp-in.img"

# All-zero writes do not allocate.
b0=$(st_blocks "$F")
check "write 4 MiB of zeros (1 MiB blocks) into a hole at 10 GiB" \
    dd if=/dev/zero of="$F" bs=1M seek=$((10 * 1024)) count=4 conv=notrunc,fsync status=none
assert_eq "st_blocks unchanged after zero writes into a hole" "$b0" "$(st_blocks "$F")"
assert_eq "map unchanged after zero writes into a hole" "$EXP_MAP" "$(vmbio map "$F")"
assert_eq "SEEK_DATA at 10 GiB skips the zero-written range" $((11 * G + 3 * M)) "$(vmbio seek "$F" $((10 * G)) data)"

# Zeros over data: [100 MiB, 102 MiB) of the 4 MiB extent at 100 MiB becomes a hole.
check "write 2 MiB of zeros over data at 100 MiB" \
    dd if=/dev/zero of="$F" bs=1M seek=100 count=2 conv=notrunc,fsync status=none
assert_eq "st_blocks drops by 2 MiB after zeroing data" $((b0 - 2 * M / 512)) "$(st_blocks "$F")"
assert_eq "map shows a hole where zeros were written over data" "$((102 * M))" "$(vmbio seek "$F" $((100 * M)) data)"
check "zeroed range reads zero" vmbio verify "$F" $((100 * M)) $((2 * M)) 0
check "rest of that extent intact" vmbio verify "$F" $((102 * M)) $((2 * M)) p5

# A partially zero write: zero 4 KiB blocks inside a 1 MiB write.
dd if=/dev/zero of="$F" bs=1M seek=$((14 * 1024)) count=1 conv=notrunc status=none
vmbio pwrite "$F" $((14 * G + 8192)) 4096 p21 >/dev/null
vmbio fsync "$F" >/dev/null
assert_eq "only the non-zero block of a mostly zero region is data" "$((14 * G + 8192)) 4096" \
    "$(vmbio map "$F" | awk -v a=$((14 * G)) -v b=$((15 * G)) '$1 >= a && $1 < b')"

MAP_BEFORE=$(vmbio map "$F")
BLOCKS_BEFORE=$(st_blocks "$F")
unmount_store
mount_store
assert_eq "after remount: same map" "$MAP_BEFORE" "$(vmbio map "$F")"
assert_eq "after remount: same st_blocks" "$BLOCKS_BEFORE" "$(st_blocks "$F")" ||
    say "    (the backing file has st_blocks $(st_blocks "$STORE/sparse/disk.img"); map data: $(( $(vmbio mapsum "$F") / 512 )))"
check "after remount: content of first extent" vmbio verify "$F" 0 4096 p1
check "after remount: content of last extent" vmbio verify "$F" $((16 * G - 4096)) 4096 p20
check "after remount: the partly zeroed extent" vmbio verify "$F" $((102 * M)) $((2 * M)) p5
finish
