#!/bin/sh
# remote-read.sh - reads of a URL mount's image from the chunk cache: after a
# remount, the cached chunks' bytes are spliced to the kernel (the daemon's read(2)
# bytes stay far below the bytes read), whole and in O_DIRECT reads that straddle
# chunks; ranges over zero chunks and over a chunk missing from the cache (removed
# behind the daemon's back) take the copying path and fetch it: bytes always equal
# to the source.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
need_mkpub
M=$((1024 * 1024))
# 32 MiB: data in [0, 10 MiB) and [11 MiB, 24 MiB), zeros elsewhere; 256 KiB chunks
mkdir -p "$T/src/vm"
IMG=$T/src/vm/disk.img
truncate -s $((32 * M)) "$IMG"
head -c $((10 * M)) /dev/urandom | dd of="$IMG" conv=notrunc status=none
head -c $((13 * M)) /dev/urandom | dd of="$IMG" bs=1M seek=11 conv=notrunc status=none
"$MKPUB" -c 262144 "$T/pub" "$T/src/vm" >"$T/mkpub.out" 2>&1 || { cat "$T/mkpub.out"; hard_error "mkpub failed"; }
URL="file://$T/pub"
export VMB_TEST_MOUNT_OPTS="cache=$T/cache"

STORE=$URL mount_store
check "cold: the image reads back equal to its source" cmp "$IMG" "$MNT/vm/disk.img"
unmount_store

# warm: every chunk cached, a new mount (no pages in the kernel's cache)
STORE=$URL mount_store
rchar() { awk '/^rchar:/ { print $2 }' "/proc/$(daemon_pid)/io"; }
before=$(rchar)
check "warm: the image reads back equal to its source" cmp "$IMG" "$MNT/vm/disk.img"
after=$(rchar)
assert_num "warm: bytes the daemon read(2) for 32 MiB (spliced from the cache, not copied)" \
    $((after - before)) -lt $((4 * M))
# O_DIRECT reads of 300 KiB (4 KiB aligned, chunk boundaries inside), all through
dd if="$MNT/vm/disk.img" of="$T/direct.img" bs=300K iflag=direct status=none ||
    fail "O_DIRECT reads of the image"
check "O_DIRECT reads straddling chunks equal the source" cmp "$IMG" "$T/direct.img"
unmount_store

# a chunk gone from the cache (at 5 MiB): read, it is fetched again
gone=$(dd if="$IMG" bs=256K skip=20 count=1 status=none | sha256sum | cut -d' ' -f1)
c=$(find "$T/cache" -type f -name "$gone")
[ -n "$c" ] || fail "chunk $gone is not in the cache"
rm -f "$c"
STORE=$URL mount_store
check "a range over a chunk missing from the cache reads equal to its source" \
    cmp <(dd if="$IMG" bs=1M skip=4 count=2 status=none) \
        <(dd if="$MNT/vm/disk.img" bs=1M skip=4 count=2 iflag=direct status=none)
# present once the flusher has made it durable, moments after the read returned
in_cache() { [ -n "$(find "$T/cache/chunks" -type f -name "$1")" ]; }
check "the chunk is back in the cache (within 20 s)" wait_for 20 in_cache "$gone"
check "ranges over zero chunks equal the source" \
    cmp <(dd if="$IMG" bs=1M skip=9 count=3 status=none) \
        <(dd if="$MNT/vm/disk.img" bs=1M skip=9 count=3 iflag=direct status=none)
check "and the whole image" cmp "$IMG" "$MNT/vm/disk.img"
unmount_store
finish
