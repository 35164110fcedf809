#!/bin/sh
# rsync -S out of the mount (rsync reads every hole; holes must read as zeros,
# cheaply) and a full cmp of a large sparse file against a local reference.
# VMB_RSYNC_SIZE (bytes, default 1 GiB: rsync and cmp read every hole, so
# 16 GiB takes minutes) sets the file size.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

command -v rsync >/dev/null 2>&1 || skip "rsync is not installed"
vmb_setup
mount_store

G=$((1024 * 1024 * 1024))
M=$((1024 * 1024))
SIZE=${VMB_RSYNC_SIZE:-$((1 * G))}
B=$MNT/r
F=$B/disk.img
R=$T/ref.img
mkdir "$B" || fail "mkdir $B"
truncate -s "$SIZE" "$F" "$R" || fail truncate
n=0
for off in 0 $((SIZE / 7 + 4096 * 3)) $((SIZE / 3 + 1234)) $((SIZE / 2)) $((SIZE * 5 / 6)) $((SIZE - 4096)); do
    n=$((n + 1))
    len=$(( n % 2 ? M : 4096 * n ))
    [ $((off + len)) -le "$SIZE" ] || len=$((SIZE - off))
    vmbio pwrite "$F" $off $len p$n >/dev/null && vmbio pwrite "$R" $off $len p$n >/dev/null || fail "pwrite $off $len"
done
REF_BLOCKS=$(st_blocks "$R")
assert_near "st_blocks of the mounted file equals the local reference's" "$(st_blocks "$F")" "$REF_BLOCKS" 16

s=$(date +%s)
check "rsync -S out of the mount" rsync -S "$F" "$T/rsync.img"
say "# rsync -S of $SIZE bytes took $(($(date +%s) - s)) s"
check "rsync -S: identical bytes" vmbio cmpsparse "$T/rsync.img" "$R"
assert_near "rsync -S: destination allocation matches the source" "$(st_blocks "$T/rsync.img")" "$REF_BLOCKS" 512
rm -f "$T/rsync.img"

s=$(date +%s)
check "cmp of the whole mounted file with the reference" cmp "$F" "$R"
say "# cmp took $(($(date +%s) - s)) s"
finish
