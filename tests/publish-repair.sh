#!/bin/sh
# publish-repair.sh - a republish to a directory repairs damaged objects (outside
# report r27 G15): a chunk object changed in place (same length: a URL mount of
# DEST gets EIO for it) and a small file's object cut short are found by the
# republish (it reads what is there and compares), written again atomically and
# counted ("2 damaged at DEST repaired"; with -q a note on stderr); a URL mount
# with a fresh cache then reads the image byte for byte; a third republish
# repairs nothing.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/remote-lib.sh"

vmb_setup
remote_need_cli
M=$((1024 * 1024))
remote_fixture
[ -f "$T/publish.out" ] && grep -q '^published' "$T/publish.out" ||
    skip "the fixture was not published by 'vmbundlefs publish'"

# chunk 0 of the image (its bytes at [0, 256 KiB)), and the nvram's object
c0=$(dd if="$REF" bs=256K count=1 status=none | sha256sum | cut -d' ' -f1)
nv=$(sha256sum "$SRC/nvram" | cut -d' ' -f1)
O0=$PUB/objects/${c0:0:2}/$c0
ONV=$PUB/objects/${nv:0:2}/$nv
[ -f "$O0" ] && [ -f "$ONV" ] || hard_error "the fixture's objects are not where expected"
size0=$(stat -c %s "$O0")
printf 'X' | dd of="$O0" bs=1 seek=1000 conv=notrunc status=none
assert_eq "a chunk object damaged in place keeps its length" "$size0" "$(stat -c %s "$O0")"
check_fails "... and no longer matches its name" test "$(sha256sum "$O0" | cut -d' ' -f1)" = "$c0"
truncate -s 100 "$ONV"

# what clients see meanwhile: EIO for the damaged chunk
export VMB_TEST_MOUNT_OPTS="cache=$T/cache1"
STORE="file://$PUB" mount_store
check_fails "a URL mount of the damaged DEST cannot read the image" \
    cmp "$REF" "$MNT/vm/disk.img"
unmount_store

out=$("$VMB_BIN" publish --chunk-size=256K "$STORE" vm "$PUB" 2>&1)
assert_eq "a republish (exit 0)" 0 $? || say "$out"
assert_match "... says it repaired the 2 damaged objects" \
    "generation 2\): .* [0-9]+ objects written .* 2 damaged at DEST repaired" "$out"
assert_eq "... the chunk object holds its bytes again" "$c0" "$(sha256sum "$O0" | cut -d' ' -f1)"
assert_eq "... the nvram object too" "$nv" "$(sha256sum "$ONV" | cut -d' ' -f1)"
assert_eq "... no temporary left in DEST/.tmp" "" "$(ls -A "$PUB/.tmp")"

export VMB_TEST_MOUNT_OPTS="cache=$T/cache2"
STORE="file://$PUB" mount_store
check "a URL mount (fresh cache) reads the image byte for byte" cmp "$REF" "$MNT/vm/disk.img"
check "... and the nvram" cmp "$SRC/nvram" "$MNT/vm/nvram"
unmount_store

out=$("$VMB_BIN" publish --chunk-size=256K "$STORE" vm "$PUB" 2>&1)
assert_match "a republish of the same repairs nothing" "generation 3\): .* zero$" "$out"
printf 'Y' | dd of="$O0" bs=1 seek=7 conv=notrunc status=none
out=$("$VMB_BIN" publish -q --chunk-size=256K "$STORE" vm "$PUB" 2>&1)
assert_match "with -q: a note on stderr" "note: 1 object at '$PUB' damaged" "$out"
assert_eq "... repaired" "$c0" "$(sha256sum "$O0" | cut -d' ' -f1)"
finish
