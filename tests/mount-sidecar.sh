#!/bin/sh
# Bad input in the store: corrupt, truncated and missing sidecars, files put
# into the store directly; fsck (repair, -n, clean store, refusal while mounted).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
mount_store
M=1048576
mkdir "$MNT/b" "$MNT/c"
for f in f t m g; do
    vmbio pwrite "$MNT/b/$f" 0 $M p1 >/dev/null
    truncate -s $((64 * M)) "$MNT/b/$f"
    vmbio pwrite "$MNT/b/$f" $((32 * M)) $M p2 >/dev/null
done
vmbio pwrite "$MNT/c/h" 0 $((2 * M)) p3 >/dev/null
EXP_MAP="0 $M
$((32 * M)) $M"
unmount_store

for f in b/f b/t b/m b/g c/h; do
    sc=$(sidecar_of "$STORE/$f")
    check "sidecar of $f exists ($(basename "$sc"))" test -f "$sc"
done
check "sidecar size is a multiple of 4096 and has extent pages" \
    sh -c "s=\$(stat -c %s '$(sidecar_of "$STORE/b/f")'); [ \$((s % 4096)) -eq 0 ] && [ \$s -ge 8192 ]"
assert_eq "sidecar magic" VMBMAP01 "$(head -c 8 "$(sidecar_of "$STORE/b/f")")"
"$VMB_BIN" fsck "$STORE" >"$T/fsck0.out" 2>&1
rc=$?
assert_eq "fsck of a clean store exits 0: $(head -c 300 "$T/fsck0.out")" 0 $rc

# flip_byte FILE OFFSET
flip_byte() {
    local b
    b=$(od -A n -t u1 -j "$2" -N 1 "$1" | tr -d ' ')
    printf "$(printf '\\%03o' $((b ^ 0xff)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
SC_F=$(sidecar_of "$STORE/b/f")
SC_T=$(sidecar_of "$STORE/b/t")
flip_byte "$SC_F" 5000
check_fails "byte 5000 of b/f's sidecar was flipped (test sanity)" cmp -s "$SC_F" "$(sidecar_of "$STORE/b/g")"
truncate -s 6000 "$SC_T"
rm -f "$(sidecar_of "$STORE/b/m")"
# Files put into the store directly, without vmbundlefs.
vmbio pwrite "$T/direct.img" 0 8192 p5 >/dev/null
truncate -s $((16 * M)) "$T/direct.img"
vmbio pwrite "$T/direct.img" $((10 * M)) 4096 p6 >/dev/null
cp --sparse=always "$T/direct.img" "$STORE/b/direct.img"
mkdir "$STORE/newbundle"
printf 'made outside\n' >"$STORE/newbundle/readme.txt"

mount_store
expect_errno "reading b/f with a corrupt sidecar fails with EIO" EIO vmbio read "$MNT/b/f"
check_fails "cat b/f fails" cat "$MNT/b/f"
assert_match "cat b/f says Input/output error" 'Input/output error' "$(cat "$MNT/b/f" 2>&1 >/dev/null)"
assert_match "the log names the file and says the sidecar map is corrupt" \
    "cannot open 'b/f': sidecar map is corrupt" "$(cat "$T/log" 2>/dev/null)"
expect_errno "reading b/t with a truncated sidecar fails with EIO" EIO vmbio read "$MNT/b/t"
assert_match "the log names b/t and says truncated" "cannot open 'b/t': sidecar map is .*truncated" "$(cat "$T/log" 2>/dev/null)"
check "other file in the same bundle reads fine" vmbio verify "$MNT/b/g" 0 $M p1
check "file in another bundle reads fine" vmbio verify "$MNT/c/h" 0 $((2 * M)) p3
check "file with a missing sidecar reads fine" vmbio verify "$MNT/b/m" $((32 * M)) $M p2
check "... and its first extent" vmbio verify "$MNT/b/m" 0 $M p1
assert_eq "file with a missing sidecar: map built from the backing" "$EXP_MAP" "$(vmbio map "$MNT/b/m")"
check "file put into the store directly is readable" cmp "$MNT/b/direct.img" "$T/direct.img"
assert_eq "file put into the store directly: map" "$(vmbio map "$T/direct.img")" "$(vmbio map "$MNT/b/direct.img")"
assert_eq "file put into the store directly: st_blocks" "$(vmbio mapsum "$T/direct.img")" "$(( $(st_blocks "$MNT/b/direct.img") * 512 ))"
check "bundle made in the store directly is listed" test -d "$MNT/newbundle"
assert_eq "... and its file readable" "made outside" "$(cat "$MNT/newbundle/readme.txt")"
expect_errno "b/f still fails (not silently rebuilt)" EIO vmbio read "$MNT/b/f"
"$VMB_BIN" fsck "$STORE" >"$T/fsck-mounted.out" 2>&1
rc=$?
assert_eq "fsck refuses a mounted store (exit 8): $(head -c 300 "$T/fsck-mounted.out")" 8 $rc
unmount_store
# The daemon logged EIO-class failures; they are not sanitizer reports.
cp "$T/log" "$T/log.first"

SUM_F=$(cksum <"$SC_F")
"$VMB_BIN" fsck -n "$STORE" >"$T/fsck-n.out" 2>&1
rc=$?
sed 's/^/    | /' "$T/fsck-n.out"
assert_eq "fsck -n with problems: exit 4 (left unrepaired)" 4 $rc
assert_eq "fsck -n did not touch the corrupt sidecar" "$SUM_F" "$(cksum <"$SC_F")"
"$VMB_BIN" fsck "$STORE" >"$T/fsck1.out" 2>&1
rc=$?
sed 's/^/    | /' "$T/fsck1.out"
assert_eq "fsck with repairable problems: exit 1" 1 $rc
assert_match "fsck reports rebuilding b/f's map" 'b/f: .*rebuilt.*corrupt' "$(cat "$T/fsck1.out")"
assert_match "fsck reports rebuilding b/t's map" 'b/t: .*rebuilt.*truncated' "$(cat "$T/fsck1.out")"
"$VMB_BIN" fsck "$STORE" >"$T/fsck2.out" 2>&1
rc=$?
assert_eq "fsck again: clean (exit 0): $(head -c 300 "$T/fsck2.out")" 0 $rc

mount_store
check "after fsck: b/f reads back identical (first extent)" vmbio verify "$MNT/b/f" 0 $M p1
check "after fsck: b/f reads back identical (second extent)" vmbio verify "$MNT/b/f" $((32 * M)) $M p2
check "after fsck: b/f holes are zero" vmbio checkholes "$MNT/b/f"
assert_eq "after fsck: b/f map" "$EXP_MAP" "$(vmbio map "$MNT/b/f")"
check "after fsck: b/t reads back identical" cmp "$MNT/b/t" "$MNT/b/g"
assert_eq "after fsck: b/t map" "$EXP_MAP" "$(vmbio map "$MNT/b/t")"
unmount_store

# Bad magic / a header that does not parse.
printf 'XXXXXXXX' | dd of="$(sidecar_of "$STORE/c/h")" bs=1 seek=0 conv=notrunc status=none
mount_store
expect_errno "a sidecar with a bad magic -> EIO" EIO vmbio read "$MNT/c/h"
assert_match "the log names c/h" "'c/h'.*sidecar map is corrupt" "$(cat "$T/log")"
unmount_store
"$VMB_BIN" fsck "$STORE" >/dev/null 2>&1
rc=$?
assert_eq "fsck repairs the bad magic (exit 1)" 1 $rc

# A sidecar of a file that no longer exists is removed by fsck.
cp "$(sidecar_of "$STORE/b/g")" "$STORE/.vmbundlefs/maps/00000000deadbeef.map"
"$VMB_BIN" fsck "$STORE" >"$T/fsck3.out" 2>&1
rc=$?
assert_eq "fsck with an orphan sidecar: exit 1: $(head -c 300 "$T/fsck3.out")" 1 $rc
check "the orphan sidecar is gone" test ! -e "$STORE/.vmbundlefs/maps/00000000deadbeef.map"

# fsck operational errors.
"$VMB_BIN" fsck "$T/missing" >/dev/null 2>&1
rc=$?
assert_eq "fsck of a missing store: exit 8" 8 $rc
mkdir "$T/notstore"
"$VMB_BIN" fsck "$T/notstore" >/dev/null 2>&1
rc=$?
assert_eq "fsck of a directory that is not a store: exit 8" 8 $rc
finish
