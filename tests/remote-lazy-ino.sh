#!/bin/sh
# remote-lazy-ino.sh - the inode numbers of a URL mount's bundles: the root's
# listing (readdir's d_ino) and stat (st_ino) agree for every bundle from the
# start, before its pull, after it and after a remount (find, rsync and du compare
# them); the numbers are unique, and the files inside keep their own.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
need_mkpub
command -v python3 >/dev/null 2>&1 || skip "python3 is not installed"

for b in vmA vmB vmC; do
    mkdir -p "$T/src/$b"
    echo "config of $b" >"$T/src/$b/config.json"
done
"$MKPUB" -c 65536 "$T/pub" "$T/src/vmA" "$T/src/vmB" "$T/src/vmC" || hard_error "mkpub failed"
export VMB_TEST_MOUNT_OPTS="cache=$T/cache"

# inos DIR [NAME...]: "name d_ino st_ino" for each entry of DIR (os.scandir's
# inode() is d_ino; os.stat follows the lookup) - only NAMEs when given, else all.
inos() {
    python3 - "$@" <<'PY'
import os, sys
d, only = sys.argv[1], sys.argv[2:]
for e in sorted(os.scandir(d), key=lambda e: e.name):
    if only and e.name not in only:
        continue
    print(e.name, e.inode(), os.stat(os.path.join(d, e.name)).st_ino)
PY
}
# the names whose d_ino and st_ino differ
mismatch() { awk '$2 != $3 { printf "%s ", $1 }'; }
dino() { python3 -c 'import os, sys; print(sorted((e.name, e.inode()) for e in os.scandir(sys.argv[1])))' "$1"; }

STORE="file://$T/pub" mount_store
before=$(dino "$MNT")
out=$(inos "$MNT" vmA)
assert_eq "the first lookup (vmA pulled by it): d_ino = st_ino" "" "$(echo "$out" | mismatch)"
assert_eq "... the root's listing did not change with the pull" "$before" "$(dino "$MNT")"
out=$(inos "$MNT")
assert_eq "every bundle, pulled by its stat now: d_ino = st_ino" "" "$(echo "$out" | mismatch)"
assert_eq "... three bundles with three numbers" 3 "$(echo "$out" | awk '{ print $3 }' | sort -u | wc -l)"
assert_eq "... still the listing's numbers" "$before" "$(dino "$MNT")"
assert_eq "ls -i shows the stat numbers" "$(echo "$out" | awk '{ print $3, $1 }' | tr '\n' ' ')" \
    "$(ls -i "$MNT" | awk '{ print $1, $2 }' | tr '\n' ' ')"
a=$(stat -c %i "$MNT/vmA")
check "the bundle's contents read" grep -q "config of vmA" "$MNT/vmA/config.json"
assert_eq "st_ino of a bundle stays after reads inside" "$a" "$(stat -c %i "$MNT/vmA")"
out=$(inos "$MNT/vmA")
assert_eq "inside a bundle: d_ino = st_ino" "" "$(echo "$out" | mismatch)"
check "find with its leaf optimization sees every file" test "$(find "$MNT" -name config.json | wc -l)" = 3
unmount_store

STORE="file://$T/pub" mount_store
assert_eq "a second mount: the same listing" "$before" "$(dino "$MNT")"
out=$(inos "$MNT")
assert_eq "... and d_ino = st_ino" "" "$(echo "$out" | mismatch)"
unmount_store

finish
