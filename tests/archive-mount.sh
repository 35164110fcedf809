#!/bin/sh
# Import into a mounted store shows up through the mount; export while mounted;
# tar --sparse out of the mount and tar -x --sparse into it keep holes.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
vmb_setup
. "$(dirname "$0")/archive-lib.sh"
need tar
mount_store

SRC=$T/src/vm
mkbundle "$SRC" $((2 * G)) || fail "cannot make the source bundle"
tar -C "$T/src" --sparse -cf "$T/vm.tar" vm || fail "tar failed"
check "import into a mounted store" vmb import "$STORE" "$T/vm.tar"
for i in $(seq 30); do [ -d "$MNT/vm" ] && break; sleep 0.1; done
check "the new bundle shows through the mount" test -d "$MNT/vm"
check "its files read the same through the mount" same_tree "$SRC" "$MNT/vm"
assert_near "st_blocks through the mount is the allocation" \
    "$(alloc_bytes "$MNT/vm/disk.img")" "$(data_bytes "$SRC/disk.img")" $((64 * K))
check "export while mounted" vmb export "$STORE" vm "$T/out.tar"
mkdir "$T/x"
check "the export extracts" tar -C "$T/x" -x --sparse -f "$T/out.tar"
check "the export is identical" same_tree "$SRC" "$T/x/vm"

# Tools users already have, through the mount.
check "tar --sparse -c of a bundle in the mount" tar -C "$MNT" --sparse -cf "$T/m.tar" vm
assert_num "that archive is small" "$(stat -c %s "$T/m.tar")" -le $(( $(data_bytes "$SRC/disk.img") + 1024 * K))
mkdir "$MNT/back"
check "tar -x --sparse into the mount" tar -C "$MNT/back" -x --sparse -f "$T/m.tar"
check "what tar wrote is identical" same_tree "$SRC" "$MNT/back/vm"
assert_near "and keeps its holes" "$(alloc_bytes "$MNT/back/vm/disk.img")" \
    "$(data_bytes "$SRC/disk.img")" $((64 * K))
check "--replace while mounted (not in use)" vmb import --replace "$STORE" "$T/out.tar" vm
for i in $(seq 30); do same_tree "$SRC" "$MNT/vm" >/dev/null 2>&1 && break; sleep 0.1; done
check "the replaced bundle reads the same through the mount" same_tree "$SRC" "$MNT/vm"
# A bundle replaced while the kernel still caches its entries (for the entry
# timeout): a path through the mount reads the new bundle at once, never the old
# (removed) files, and finds the new bundle's names.
mkdir -p "$T/r1/rb" "$T/r2/rb"
printf 'old contents\n' >"$T/r1/rb/config"
printf 'new contents, longer\n' >"$T/r2/rb/config"
printf 'only in the new one\n' >"$T/r2/rb/added"
tar -C "$T/r1" -cf "$T/r1.tar" rb && tar -C "$T/r2" -cf "$T/r2.tar" rb || fail "tar failed"
check "import a small bundle" vmb import "$STORE" "$T/r1.tar"
for i in $(seq 30); do [ -e "$MNT/rb/config" ] && break; sleep 0.1; done
assert_eq "its file reads through the mount (now cached)" "old contents" "$(cat "$MNT/rb/config")"
check_fails "a name it lacks is not there" test -e "$MNT/rb/added"
check "replace it while mounted" vmb import --replace "$STORE" "$T/r2.tar" rb
assert_eq "at once: the path reads the new bundle's file" "new contents, longer" "$(cat "$MNT/rb/config" 2>&1)"
assert_eq "at once: the new bundle's other name is found" "only in the new one" "$(cat "$MNT/rb/added" 2>&1)"
check "no staging leftovers" staging_clean
finish
