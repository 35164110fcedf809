#!/bin/sh
# remote-prefetch-kept.sh - prefetch does not report success when what it fetched
# did not stay in the cache (outside report r27 G7): with -o cache_max= smaller
# than the image's data, prefetch of a pulled bundle (store not mounted, and
# through a mount whose cache_max= is as small) exits 1 saying how much stayed and
# why; with room it exits 0 and every chunk is cached.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/remote-lib.sh"

vmb_setup
remote_need_cli prefetch
M=$((1024 * 1024))
remote_fixture          # about 5 MiB of data chunks
export VMBUNDLEFS_CACHE=$T/X
check "pull -o cache=X" "$VMB_BIN" pull -o cache="$T/X" "$STORE" "file://$PUB#vm" vmr

out=$("$VMB_BIN" prefetch -o cache="$T/X",cache_max=1048576 "$STORE/vmr" 2>&1); rc=$?
assert_eq "prefetch with cache_max= below the data: exit 1" 1 $rc || say "$out"
assert_match "... saying how much stayed, where and why" \
    "only .* of the .* stayed in the cache '$T/X' \(cache_max=1(\.0)? MiB" "$out"
out=$("$VMB_BIN" prefetch -o cache="$T/X" "$STORE/vmr" 2>&1); rc=$?
assert_eq "prefetch with room: exit 0" 0 $rc || say "$out"
check "... every data chunk cached" test "$(find "$T/X/chunks" -type f | wc -l)" -ge "$N_OBJ_CHUNKS"

# through a mount whose cache is as small
rm -rf "$T/Y"
export VMB_TEST_MOUNT_OPTS="cache=$T/Y,cache_max=1048576"
mount_store
out=$("$VMB_BIN" prefetch "$MNT/vmr" 2>&1); rc=$?
assert_eq "prefetch through a mount with a small cache_max=: exit 1" 1 $rc || say "$out"
assert_match "... saying so" "only .* stayed in the cache of the mount" "$out"
check "... the image still reads right" cmp "$REF" "$MNT/vmr/disk.img"
unmount_store
finish
