#!/bin/sh
# Archives out and back: a bundle imported from a GNU tar, exported as .tar (pax
# sparse), extracted by GNU tar --sparse and by bsdtar (same bytes, same allocation,
# archive about the allocated size); .tar.zst/.tar.gz/.zip exports; re-import into a
# new empty store with the first one moved away (self-contained); --replace; deps.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
vmb_setup nofuse
. "$(dirname "$0")/archive-lib.sh"
need tar bsdtar

SRC=$T/src/vm
mkbundle "$SRC" $((4 * G)) || fail "cannot make the source bundle"
tar -C "$T/src" --sparse -cf "$T/vm.tar" vm || fail "GNU tar failed"
check "import a GNU tar --sparse archive" vmb import "$STORE" "$T/vm.tar"
check "the bundle is named after the top-level directory" test -d "$STORE/vm"
check "imported tree equals the source" same_tree "$SRC" "$STORE/vm"
assert_eq "mtimes kept" "$(tree_mtimes "$SRC")" "$(tree_mtimes "$STORE/vm")"
check "every regular file has a trusted sidecar map" \
    bash -c 'for f in "$1"/disk.img "$1"/nvram.bin "$1"/config.json "$1"/Data/aux.dat; do
        test -s "$2/.vmbundlefs/maps/$(printf %016x "$(stat -c %i "$f")").map" || exit 1; done' \
    _ "$STORE/vm" "$STORE"
DATA=$(data_bytes "$SRC/disk.img")
assert_near "imported disk allocation is about its data" "$(alloc_bytes "$STORE/vm/disk.img")" "$DATA" $((64 * K))
assert_match "vmbundlefs ls shows the allocated size" "^vm +4\.0G +[0-9.]+M +6 +[0-9.]+M +0B$" \
    "$(vmb ls "$STORE" | tail -n 1)"

# Export as pax sparse tar.
check "export .tar" vmb export "$STORE" vm "$T/out.tar"
ALLOC=0
for f in $(cd "$STORE/vm" && find . -type f); do ALLOC=$((ALLOC + $(data_bytes "$STORE/vm/$f"))); done
SIZE=$(stat -c %s "$T/out.tar")
assert_num "archive size ($SIZE) is about the allocated size ($ALLOC), not 4 GiB" "$SIZE" -le $((ALLOC + 256 * K))
assert_num "archive holds every data byte" "$SIZE" -ge $((ALLOC - 64 * K))
check "no temporary left beside OUT" test -z "$(ls "$T" | grep 'out\.tar\.tmp')"

mkdir "$T/gnu" "$T/bsd"
check "GNU tar -x --sparse extracts it" tar -C "$T/gnu" -x --sparse -f "$T/out.tar"
check "GNU tar: identical tree and bytes" same_tree "$SRC" "$T/gnu/vm"
check "GNU tar: same allocation" same_alloc "$SRC" "$T/gnu/vm" $((64 * K))
check "bsdtar extracts it" bsdtar -C "$T/bsd" -xf "$T/out.tar"
check "bsdtar: identical tree and bytes" same_tree "$SRC" "$T/bsd/vm"
check "bsdtar: same allocation" same_alloc "$SRC" "$T/bsd/vm" $((64 * K))

# Compressed tars (streams to bsdtar) and stdout.
for fmt in tar.zst tar.gz; do
    rm -rf "$T/x" && mkdir "$T/x"
    check "export .$fmt" vmb export "$STORE" vm "$T/out.$fmt"
    assert_num ".$fmt is small" "$(stat -c %s "$T/out.$fmt")" -le $((ALLOC + 256 * K))
    check ".$fmt extracts with bsdtar" bsdtar -C "$T/x" -xf "$T/out.$fmt"
    check ".$fmt: identical tree and bytes" same_tree "$SRC" "$T/x/vm"
done
check "export to stdout needs --format" bash -c '! "$1" export "$2" vm - >/dev/null 2>&1' _ "$VMB_BIN" "$STORE"
rm -rf "$T/x" && mkdir "$T/x"
check "export - --format=tar | tar -x --sparse" bash -c \
    '"$1" export --format=tar "$2" vm - | tar -C "$3" -x --sparse -f -' _ "$VMB_BIN" "$STORE" "$T/x"
check "stdout export: identical" same_tree "$SRC" "$T/x/vm"

# zip: a smaller bundle (zip has no sparse entries: holes are deflated zeros).
mkdir -p "$T/zsrc"
mkbundle "$T/zsrc/small" $((64 * M)) || fail "cannot make the small bundle"
tar -C "$T/zsrc" --sparse -cf "$T/small.tar" small
check "import small" vmb import "$STORE" "$T/small.tar"
check "export .zip" vmb export "$STORE" small "$T/small.zip"
rm -rf "$T/x" && mkdir "$T/x"
check ".zip extracts with bsdtar" bsdtar -C "$T/x" -xf "$T/small.zip"
assert_eq ".zip: same content" "$(cd "$T/zsrc/small" && find . -type f ! -name config.hard -exec sha256sum {} + | sort)" \
    "$(cd "$T/x/small" && find . -type f ! -name config.hard -exec sha256sum {} + | sort)"
check "zip re-imports with holes" vmb import "$STORE" "$T/small.zip" small2
check "zip round trip: identical tree (hard links become copies)" same_tree_nolinks "$T/zsrc/small" "$STORE/small2"
check "zip round trip: cmp of the disk" cmp "$T/zsrc/small/disk.img" "$STORE/small2/disk.img"
check "zip round trip: holes are holes" same_alloc "$T/zsrc/small" "$STORE/small2" $((64 * K))

# Self-contained: export, move the store away, import into a new empty store.
check "export for the move" vmb export "$STORE" vm "$T/move.tar.zst"
mv "$STORE" "$T/old-store" || fail "cannot move the store away"
STORE=$T/store2
check "init a new empty store" vmb init "$STORE"
check "import into the new store" vmb import "$STORE" "$T/move.tar.zst"
check "deps: nothing outside the bundle" test -z "$(vmb deps "$STORE" vm)"
check "every byte is there" same_tree "$SRC" "$STORE/vm"
check_fails "deps of a missing bundle fails" vmb deps "$STORE" nosuch

# Existing names, --replace.
check_fails "importing over an existing bundle is refused" vmb import "$STORE" "$T/small.tar" vm
check "the existing bundle is untouched" same_tree "$SRC" "$STORE/vm"
INO_OLD=$(stat -c %i "$STORE/vm/disk.img")
SC_OLD=$(printf '%s/.vmbundlefs/maps/%016x.map' "$STORE" "$INO_OLD")
check "--replace replaces it" vmb import --replace "$STORE" "$T/small.tar" vm
check "the new content is in place" same_tree "$T/zsrc/small" "$STORE/vm"
check "the old bundle's maps are gone" test ! -e "$SC_OLD"
check "no staging leftovers" staging_clean
assert_eq "no other bundles appeared" "vm" "$(ls "$STORE")"
finish
