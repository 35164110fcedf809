#!/bin/sh
# fallocate: PUNCH_HOLE, ZERO_RANGE (with and without KEEP_SIZE), mode 0,
# KEEP_SIZE; aligned and unaligned edges.  Every step is applied to a file in
# the mount and to a reference on the local filesystem; contents are compared
# with cmp, sizes with stat, and the mount's map with the expected extents.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
mount_store
M=1048576
K=4096
mkdir "$MNT/b"
F=$MNT/b/disk.img
R=$T/ref.img

both() {   # vmbio subcommand applied to F and R
    local sub=$1
    shift
    local a b
    a=$(vmbio "$sub" "$F" "$@" 2>&1)
    b=$(vmbio "$sub" "$R" "$@" 2>&1)
    if [ "$a" != "$b" ]; then
        notok "vmbio $sub $*: mount says '$a', local file says '$b'"
        return 1
    fi
    ok "vmbio $sub $* ($a)"
}

same() {   # DESC EXPECTED_SIZE EXPECTED_MAP
    assert_eq "$1: size" "$2" "$(st_size "$F")"
    assert_eq "$1: same size as the local reference" "$(st_size "$R")" "$(st_size "$F")"
    check "$1: same bytes as the local reference" cmp "$F" "$R"
    assert_eq "$1: map" "$3" "$(vmbio map "$F" | tr '\n' ',' | sed 's/,$//')"
    local sum
    sum=$(printf '%s' "$3" | tr ',' '\n' | awk -v K=$K 'NF == 2 { a = int($1 / K) * K; b = int(($1 + $2 + K - 1) / K) * K; s += b - a } END { printf "%.0f", s / 512 }')
    assert_eq "$1: st_blocks" "$sum" "$(st_blocks "$F")"
}

both pwrite 0 $((4 * M)) p1
same "4 MiB of data" $((4 * M)) "0 $((4 * M))"

both falloc punch $M $M
same "punch aligned [1M,2M)" $((4 * M)) "0 $M,$((2 * M)) $((2 * M))"
check "punched range reads zero" vmbio verify "$F" $M $M 0

# Unaligned punch: [2.5M+100, +300000): partial edge blocks stay data (zeroed
# bytes); whole blocks inside become a hole.
PS=$((2 * M + M / 2 + 100)); PL=300000
both falloc punch $PS $PL
HS=$(( (PS + K - 1) / K * K )); HE=$(( (PS + PL) / K * K ))
same "punch unaligned" $((4 * M)) "0 $M,$((2 * M)) $((HS - 2 * M)),$HE $((4 * M - HE))"
check "unaligned punch: bytes zero" vmbio verify "$F" $PS $PL 0
check "unaligned punch: byte before intact" vmbio verify "$F" $((PS - 100)) 100 p1
check "unaligned punch: byte after intact" vmbio verify "$F" $((PS + PL)) 100 p1

both falloc punch $((30 * M)) $M
same "punch beyond EOF changes nothing" $((4 * M)) "0 $M,$((2 * M)) $((HS - 2 * M)),$HE $((4 * M - HE))"

# Zero range, keep size, reaching past EOF: the last two blocks become a hole.
both falloc zero-keep $((4 * M - 2 * K)) $M
same "zero-range keep-size past EOF" $((4 * M)) "0 $M,$((2 * M)) $((HS - 2 * M)),$HE $((4 * M - 2 * K - HE))"

# Zero range without keep-size past EOF: size grows.
both falloc zero $((4 * M - K)) $((2 * M))
NS=$((4 * M - K + 2 * M))
same "zero-range growing the file" $NS "0 $M,$((2 * M)) $((HS - 2 * M)),$HE $((4 * M - 2 * K - HE))"
check "grown range reads zero" vmbio verify "$F" $((4 * M)) $((NS - 4 * M)) 0

# Unaligned zero range inside data: [100, 100+5000) -- inside blocks 0 and 1.
both falloc zero-keep 100 5000
same "zero-range unaligned inside data" $NS "0 $M,$((2 * M)) $((HS - 2 * M)),$HE $((4 * M - 2 * K - HE))"
check "zeroed bytes" vmbio verify "$F" 100 5000 0
check "bytes around intact" vmbio verify "$F" 0 100 p1
check "bytes around intact (2)" vmbio verify "$F" 5100 100 p1

# Unaligned zero range covering whole blocks: [M/2 + 1, +3*K): the one whole
# block inside becomes a hole... at least its bytes are zero.
both falloc zero $((M / 2 + 1)) $((3 * K))
check "zero-range spanning blocks: zero" vmbio verify "$F" $((M / 2 + 1)) $((3 * K)) 0
ZS=$((M / 2 + K)); ZE=$((M / 2 + 3 * K))
same "zero-range spanning blocks" $NS "0 $ZS,$ZE $((M - ZE)),$((2 * M)) $((HS - 2 * M)),$HE $((4 * M - 2 * K - HE))"

# Mode 0 past EOF: size grows, the new range reads zero (whether it is data
# or hole in the map is the filesystem's choice).
both falloc 0 $((7 * M)) $M
assert_eq "mode 0: size grows" $((8 * M)) "$(st_size "$F")"
check "mode 0: same bytes as the local reference" cmp "$F" "$R"
check "mode 0: new range reads zero" vmbio verify "$F" $((7 * M)) $M 0
check "mode 0: data before intact" vmbio verify "$F" 0 100 p1

# KEEP_SIZE past EOF: size unchanged.
both falloc keep $((8 * M)) $M
assert_eq "keep-size: size unchanged" $((8 * M)) "$(st_size "$F")"
check "keep-size: same bytes" cmp "$F" "$R"

# Write into a punched hole again.
both pwrite $((M + 5)) 10000 p2
check "write into a punched hole reads back" vmbio verify "$F" $((M + 5)) 10000 p2
check "same bytes after re-write" cmp "$F" "$R"

# Punch everything.
both falloc punch 0 $((8 * M))
assert_eq "punch all: no data left" "" "$(vmbio map "$F")"
assert_eq "punch all: st_blocks 0" 0 "$(st_blocks "$F")"
assert_eq "punch all: size kept" $((8 * M)) "$(st_size "$F")"
check "punch all: same bytes" cmp "$F" "$R"

# Remount keeps the result.
both pwrite $((3 * M)) $((2 * M)) p3
both falloc punch $((4 * M)) $K
MAP=$(vmbio map "$F")
remount
assert_eq "after remount: map" "$MAP" "$(vmbio map "$F")"
check "after remount: same bytes" cmp "$F" "$R"
expect_errno "fallocate on a directory fd fails" EISDIR vmbio falloc "$MNT/b" punch 0 4096
finish
