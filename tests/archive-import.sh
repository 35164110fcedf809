#!/bin/sh
# Import from archives made by other tools: GNU tar --sparse in each sparse format,
# bsdtar, compressed tars recognised by content (.gz .xz .zst .bz2, and a .tar.gz
# named .bin), a zipped .utm bundle (zip -r), an OVA, standard input, a plain tar
# whose zeros become holes; bundle names; silence on success.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
vmb_setup nofuse
. "$(dirname "$0")/archive-lib.sh"
need tar bsdtar gzip xz zstd bzip2

SRC=$T/src/vm
mkbundle "$SRC" $((2 * G)) || fail "cannot make the source bundle"
DATA=$(data_bytes "$SRC/disk.img")

# imported NAME DESC: the bundle equals the source, its disk holds about its data.
imported() {
    check "$2: same tree and bytes" same_tree "$SRC" "$STORE/$1"
    assert_near "$2: disk allocation is about its data" \
        "$(alloc_bytes "$STORE/$1/disk.img")" "$DATA" $((64 * K))
}

n=0
for fmt in "gnu" "pax 0.0" "pax 0.1" "pax 1.0" "pax"; do
    set -- $fmt
    n=$((n + 1))
    opts="--format=$1 --sparse${2:+ --sparse-version=$2}"
    tar -C "$T/src" $opts -cf "$T/g$n.tar" vm || fail "tar $opts failed"
    assert_num "GNU tar $opts made a small archive" "$(stat -c %s "$T/g$n.tar")" -le $((DATA + 512 * K))
    out=$(vmb import "$STORE" "$T/g$n.tar" "g$n" 2>&1)
    assert_eq "import of GNU tar $opts succeeds silently" "" "$out"
    imported "g$n" "GNU tar $opts"
done

bsdtar -C "$T/src" -cf "$T/b.tar" vm || fail "bsdtar failed"
check "import of a bsdtar archive" vmb import "$STORE" "$T/b.tar" bsd
imported bsd "bsdtar"

# Compression by content, not by name.
tar -C "$T/src" --sparse -cf "$T/plain.tar" vm || fail "tar failed"
for z in gzip xz zstd bzip2; do
    $z -c <"$T/plain.tar" >"$T/c.$z" || fail "$z failed"
    check "import of a $z-compressed tar (no telling extension)" vmb import "$STORE" "$T/c.$z" "c-$z"
    imported "c-$z" "$z"
done
gzip -c <"$T/plain.tar" >"$T/vm.tar.gz" && cp "$T/vm.tar.gz" "$T/renamed.bin"
check "import of a .tar.gz renamed to .bin" vmb import "$STORE" "$T/renamed.bin" renamed
imported renamed ".bin"
check "standard input (name from the top-level directory)" \
    bash -c 'rm -rf "$2/vm"; zstd -c <"$3" | "$1" import "$2" -' _ "$VMB_BIN" "$STORE" "$T/plain.tar"
imported vm "stdin"

# Names: without a single top-level directory, the archive's name less extensions.
tar -C "$SRC" --sparse -czf "$T/flat-bundle.tar.gz" . || fail "tar failed"
check "import of a flat archive" vmb import "$STORE" "$T/flat-bundle.tar.gz"
imported flat-bundle "flat archive named after the file"
check_fails "a flat archive on stdin needs a NAME" \
    bash -c '"$1" import "$2" - <"$3"' _ "$VMB_BIN" "$STORE" "$T/flat-bundle.tar.gz"
check_fails "an invalid NAME is refused" vmb import "$STORE" "$T/plain.tar" "a/b"
check_fails "the reserved name is refused" vmb import "$STORE" "$T/plain.tar" .vmbundlefs
check_fails "... and .snapshots (a mount's root shows its snapshots there)" vmb import "$STORE" "$T/plain.tar" .snapshots
check_fails "... which was not made" test -e "$STORE/.snapshots"

# A plain (not sparse) ustar: runs of zero blocks become holes.
mkdir -p "$T/u/plain"
mkimg "$T/u/plain/disk.img" $((96 * M)) 50
tar -C "$T/u" --format=ustar -cf "$T/u.tar" plain || fail "tar failed"
assert_num "the plain tar holds the zeros" "$(stat -c %s "$T/u.tar")" -ge $((96 * M))
check "import of a plain tar" vmb import "$STORE" "$T/u.tar"
check "plain tar: same bytes" cmp "$T/u/plain/disk.img" "$STORE/plain/disk.img"
assert_near "plain tar: zeros became holes" "$(alloc_bytes "$STORE/plain/disk.img")" \
    "$(data_bytes "$T/u/plain/disk.img")" $((64 * K))

# A zipped UTM bundle, made with zip -r (holes stored as deflated zeros).
if command -v zip >/dev/null 2>&1; then ZIP="zip -q -r -y"; else ZIP=; fi
mkdir -p "$T/utm/Debian.utm/Data"
mkimg "$T/utm/Debian.utm/Data/disk-0.qcow2" $((64 * M)) 60
printf '<plist/>\n' >"$T/utm/Debian.utm/config.plist"
truncate -s $((64 * K)) "$T/utm/Debian.utm/Data/efi_vars.fd"
ln -s Data/disk-0.qcow2 "$T/utm/Debian.utm/disk.link"
if [ -n "$ZIP" ]; then
    (cd "$T/utm" && $ZIP "$T/Debian.utm.zip" Debian.utm) || fail "zip failed"
else
    bsdtar -C "$T/utm" --format zip -cf "$T/Debian.utm.zip" Debian.utm || fail "bsdtar zip failed"
fi
check "import of a zipped .utm bundle" vmb import "$STORE" "$T/Debian.utm.zip"
check "zip: named after its top-level directory" test -d "$STORE/Debian.utm"
check "zip: same tree and bytes" same_tree "$T/utm/Debian.utm" "$STORE/Debian.utm"
check "zip: the symlink is a symlink" test -L "$STORE/Debian.utm/disk.link"
assert_near "zip: zeros became holes" "$(alloc_bytes "$STORE/Debian.utm/Data/disk-0.qcow2")" \
    "$(data_bytes "$T/utm/Debian.utm/Data/disk-0.qcow2")" $((64 * K))
check "zip from standard input" bash -c '"$1" import "$2" - zipstdin <"$3"' _ "$VMB_BIN" "$STORE" "$T/Debian.utm.zip"
check "zip from stdin: same tree and bytes" same_tree "$T/utm/Debian.utm" "$STORE/zipstdin"

# An OVA: a ustar of the OVF descriptor first, then the disks.
mkdir -p "$T/ova"
printf '<?xml version="1.0"?><Envelope/>\n' >"$T/ova/appliance.ovf"
mkimg "$T/ova/appliance-disk1.vmdk" $((32 * M)) 70
printf 'SHA256(appliance.ovf)= 0\n' >"$T/ova/appliance.mf"
tar -C "$T/ova" --format=ustar -cf "$T/appliance.ova" appliance.ovf appliance-disk1.vmdk appliance.mf
check "import of an OVA" vmb import "$STORE" "$T/appliance.ova"
check "OVA: named after the file" test -d "$STORE/appliance"
check "OVA: same files and bytes" same_tree "$T/ova" "$STORE/appliance"
assert_near "OVA: zeros became holes" "$(alloc_bytes "$STORE/appliance/appliance-disk1.vmdk")" \
    "$(data_bytes "$T/ova/appliance-disk1.vmdk")" $((64 * K))

check "no staging leftovers" staging_clean
check "help" vmb import --help
check "version" vmb export --version
check_fails "usage error" vmb import "$STORE"
finish
