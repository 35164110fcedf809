#!/bin/sh
# copy_file_range between files in the mount: identical bytes, and the
# destination has holes where the source has holes.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
mount_store
M=1048576
K=4096
mkdir "$MNT/a" "$MNT/b"
S=$MNT/a/src.img
R=$T/ref.img
truncate -s $((64 * M)) "$S" "$R"
for w in "0 $((2 * M)) 1" "$((5 * M)) $K 2" "$((9 * M + 100)) 50000 3" "$((20 * M)) $((4 * M)) 4" "$((64 * M - K)) $K 5"; do
    set -- $w
    vmbio pwrite "$S" "$1" "$2" "p$3" >/dev/null
    vmbio pwrite "$R" "$1" "$2" "p$3" >/dev/null
done
SMAP=$(vmbio map "$S")
assert_eq "source map (test sanity)" "$(vmbio map "$R")" "$SMAP"

# Whole file, into another bundle.
D=$MNT/b/dst.img
assert_eq "copy_file_range of the whole file copies every byte" $((64 * M)) "$(vmbio cfr "$S" 0 "$D" 0 $((64 * M)))"
check "whole copy: identical bytes" cmp "$S" "$D"
assert_eq "whole copy: destination holes where source holes (map)" "$SMAP" "$(vmbio map "$D")"
assert_eq "whole copy: st_blocks equal" "$(st_blocks "$S")" "$(st_blocks "$D")"

# Asking for more than there is stops at EOF.
D2=$MNT/a/dst2.img
assert_eq "copy_file_range stops at the source's EOF" $((64 * M)) "$(vmbio cfr "$S" 0 "$D2" 0 $((100 * M)))"
assert_eq "... destination size" $((64 * M)) "$(st_size "$D2")"
assert_eq "copy from at/past EOF copies 0 bytes" 0 "$(vmbio cfr "$S" $((64 * M)) "$D2" 0 $M)"

# Unaligned source and destination offsets.
D3=$MNT/a/dst3.img
assert_eq "unaligned copy" $((12 * M)) "$(vmbio cfr "$S" 1000 "$D3" 5000 $((12 * M)))"
check "unaligned copy: identical bytes" cmp -i 1000:5000 -n $((12 * M)) "$S" "$D3"
assert_eq "unaligned copy: size" $((12 * M + 5000)) "$(st_size "$D3")"
check "unaligned copy: leading bytes zero" vmbio verify "$D3" 0 5000 0
check "unaligned copy: holes of the source are zero" vmbio verify "$D3" $((2 * M + 4000)) $((3 * M - 8192)) 0
# Holes stay holes where a whole destination block maps to source holes.
assert_eq "unaligned copy: a whole-block source hole is a hole in the destination" \
    $((5 * M)) "$(vmbio seek "$D3" $((2 * M + 4000 + K)) data)"

# Block-aligned copy over existing data: source holes replace data with zeros.
D4=$MNT/b/dst4.img
vmbio pwrite "$D4" 0 $((8 * M)) p9 >/dev/null
assert_eq "aligned copy over data" $((8 * M)) "$(vmbio cfr "$S" $((2 * M)) "$D4" 0 $((8 * M)))"
check "copy over data: identical bytes" cmp -i $((2 * M)):0 -n $((8 * M)) "$S" "$D4"
assert_eq "copy over data: source holes became holes" "$((3 * M)) $K,$((7 * M)) 53248" "$(vmbio map "$D4" | tr '\n' ',' | sed 's/,$//')"

# Copy within the same file (non-overlapping ranges).
assert_eq "copy within one file" $((2 * M)) "$(vmbio cfr "$D2" 0 "$D2" $((40 * M)) $((2 * M)))"
check "copy within one file: identical bytes" cmp -i 0:$((40 * M)) -n $((2 * M)) "$S" "$D2"
check "copy within one file: rest unchanged" cmp -n $((40 * M)) "$S" "$D2"
assert_eq "copy within one file: map" "$(printf '%s\n' "$SMAP" | awk -v a=$((40 * M)) -v l=$((2 * M)) '
    !d && $1 > a { print a, l; d = 1 } { print }')" "$(vmbio map "$D2")"

# cp inside the mount (default mode) keeps holes.
check "cp inside the mount" cp "$S" "$MNT/b/cp.img"
check "cp inside the mount: identical bytes" cmp "$S" "$MNT/b/cp.img"
assert_eq "cp inside the mount: same map" "$SMAP" "$(vmbio map "$MNT/b/cp.img")"

remount
check "after remount: whole copy still identical" cmp "$S" "$D"
assert_eq "after remount: map" "$SMAP" "$(vmbio map "$D")"
finish
