#!/bin/sh
# user.* extended attributes through archives (outside report r27 X-xattr): a
# bundle's xattrs on a file, a sparse image, a directory and the bundle's root go
# out in every tar format (pax SCHILY.xattr records) and come back in on import;
# GNU tar --xattrs archives' user.* ones are imported; other namespaces and the
# names vmbundlefs reserves are neither exported nor applied (a note says so);
# zip says on stderr that it keeps none; hostile counts and sizes are refused.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
vmb_setup nofuse
. "$(dirname "$0")/archive-lib.sh"
need tar bsdtar getfattr setfattr python3

# xattrs_of DIR: every path's user.* xattrs (and, with ALL=1, every namespace's),
# as getfattr -d prints them, relative to DIR.
xattrs_of() {
    local pat='^user\.'
    [ -z "${ALL:-}" ] || pat=-
    (cd "$1" && getfattr -h -R -d -m "$pat" --absolute-names . 2>/dev/null |
        sed 's/^# file: /F /')
}

SRC=$T/src/xb
mkdir -p "$SRC/Data" "$SRC/ro" || fail "mkdir"
mkimg "$SRC/disk.img" $((256 * M)) 40 || fail "cannot make the image"
printf '{"cpu": 2}\n' >"$SRC/config.json"
printf 'aux\n' >"$SRC/Data/aux.dat"
printf 'frozen\n' >"$SRC/ro/readonly.txt"
setfattr -n user.com.apple.quarantine -v 'q;1' "$SRC/disk.img" &&
setfattr -n user.binary -v 0x00ff0a2500 "$SRC/disk.img" &&
setfattr -n user.note -v 'a config' "$SRC/config.json" &&
setfattr -n user.empty "$SRC/config.json" &&
setfattr -n user.dir -v 'Data dir' "$SRC/Data" &&
setfattr -n user.root -v 'bundle root' "$SRC" &&
setfattr -n user.ro -v 'set before 0400' "$SRC/ro/readonly.txt" ||
    fail "cannot set xattrs on $T (filesystem without user xattrs?)"
chmod 0400 "$SRC/ro/readonly.txt" && chmod 0500 "$SRC/ro"
touch -d '2020-01-02 03:04:05.123456789' "$SRC/disk.img" "$SRC/Data" "$SRC"
WANT=$(xattrs_of "$SRC")
assert_match "the source has its xattrs" 'user.com.apple.quarantine="q;1"' "$WANT"

# A GNU tar --xattrs archive: its user.* ones are imported.
tar -C "$T/src" --xattrs --xattrs-include='user.*' --sparse -cf "$T/gnu.tar" xb ||
    fail "GNU tar failed"
check "import a GNU tar --xattrs archive" vmb import "$STORE" "$T/gnu.tar"
assert_eq "GNU tar --xattrs: the user.* xattrs are imported" "$WANT" "$(xattrs_of "$STORE/xb")"
check "GNU tar --xattrs: same tree" same_tree "$SRC" "$STORE/xb"
assert_eq "GNU tar --xattrs: mtimes kept" \
    "$(tree_mtimes "$SRC")" "$(tree_mtimes "$STORE/xb")"

# Every tar format out and back, into a second store.
STORE2=$T/store2
check "init a second store" vmb init "$STORE2"
for fmt in tar ova tar.zst tar.gz tar.xz; do
    check "export .$fmt" vmb export "$STORE" xb "$T/out.$fmt"
    n=x_${fmt//./_}
    check ".$fmt: import" vmb import "$STORE2" "$T/out.$fmt" "$n"
    assert_eq ".$fmt: xattrs equal after the round trip" "$WANT" "$(xattrs_of "$STORE2/$n")"
    check ".$fmt: same tree" same_tree "$SRC" "$STORE2/$n"
done
rm -rf "$T/gx" && mkdir "$T/gx"
check "GNU tar --xattrs extracts the export" \
    tar -C "$T/gx" --xattrs --xattrs-include='user.*' -x --sparse -f "$T/out.tar"
assert_eq "GNU tar reads the exported xattrs" "$WANT" "$(xattrs_of "$T/gx/xb")"

# A snapshot's export: its manifest's xattrs.
check "snapshot xb@s1" vmb snapshot "$STORE" xb s1
check "export xb@s1" vmb export "$STORE" xb@s1 "$T/snap.tar"
check "import the snapshot's archive" vmb import "$STORE2" "$T/snap.tar" snapx
assert_eq "snapshot export: xattrs kept" "$WANT" "$(xattrs_of "$STORE2/snapx")"

# Other namespaces and reserved names: not exported, not applied, a note.
setfattr -n trusted.vmbtest -v secret "$STORE/xb/config.json" &&
setfattr -n user.vmbundlefs.lock -v 'pid 1 holds' "$STORE/xb/config.json" ||
    fail "cannot set trusted.* (not root?)"
check "export with a trusted.* and a reserved xattr" vmb export "$STORE" xb "$T/tr.tar"
check "export: user.* xattrs in the archive, no trusted.* or reserved name" \
    bash -c 'grep -aq "SCHILY.xattr.user.note=a config" "$1" &&
        ! grep -aq -e "trusted.vmbtest" -e "user.vmbundlefs.lock" "$1"' _ "$T/tr.tar"
mkdir -p "$T/tsrc/tb" && printf 'x\n' >"$T/tsrc/tb/f" &&
setfattr -n user.keep -v yes "$T/tsrc/tb/f" &&
setfattr -n trusted.evil -v 1 "$T/tsrc/tb/f" &&
setfattr -n user.vmbundlefs.lock -v fake "$T/tsrc/tb/f" &&
setfattr -n trusted.evil2 -v 1 "$T/tsrc/tb" || fail "cannot set trusted.*"
tar -C "$T/tsrc" --xattrs --xattrs-include='*' -cf "$T/trusted.tar" tb || fail "GNU tar failed"
OUT=$("$VMB_BIN" import "$STORE2" "$T/trusted.tar" 2>&1)
assert_eq "import of an archive with trusted.* xattrs succeeds" 0 $?
assert_match "a note names what was not imported" \
    "note: 3 extended attributes outside the user.* namespace.*not imported" "$OUT"
assert_eq "trusted.* and reserved names are not applied, user.* ones are" \
    "$(printf 'F ./f\nuser.keep="yes"\n')" \
    "$(ALL=1 xattrs_of "$STORE2/tb" | grep -v '^$' | grep -v '^F \.$')"

# zip keeps none: one line on stderr says so.
OUT=$("$VMB_BIN" export "$STORE" xb "$T/out.zip" 2>&1)
assert_eq "export .zip succeeds" 0 $?
assert_match "export .zip says xattrs are not kept" \
    "^vmbundlefs: note: zip keeps no extended attributes" "$OUT"
assert_eq "export .zip: that one line only" \
    "vmbundlefs: note: zip keeps no extended attributes: the user.* xattrs of the bundle's directory (and of any other file) are not in the archive; export to a tar format to keep them" \
    "$OUT"
OUT=$("$VMB_BIN" export --format=tar "$STORE" xb "$T/quiet.tar" 2>&1)
assert_eq "export .tar says nothing" "" "$OUT"

# Hostile: too many xattrs on one entry, one too big, too many on directories.
python3 - "$T" <<'EOF' || fail "cannot write the hostile archives"
import io, sys, tarfile
t = sys.argv[1]
def arch(name, ents):
    with tarfile.open(f"{t}/{name}", "w", format=tarfile.PAX_FORMAT) as tf:
        for path, kind, px in ents:
            ti = tarfile.TarInfo(path)
            ti.pax_headers = px
            if kind == "d":
                ti.type = tarfile.DIRTYPE; ti.mode = 0o755
                tf.addfile(ti)
            else:
                ti.size = 2
                tf.addfile(ti, io.BytesIO(b"x\n"))
many = {f"SCHILY.xattr.user.a{i}": "v" for i in range(1100)}
arch("many.tar", [("h1", "d", {}), ("h1/f", "f", many)])
arch("big.tar", [("h2", "d", {}), ("h2/f", "f", {"SCHILY.xattr.user.big": "v" * 70000})])
val = "v" * 60000
dirs = [("h3", "d", {})] + [(f"h3/d{i}", "d", {f"SCHILY.xattr.user.x{j}": val
         for j in range(16)}) for i in range(72)]
arch("dirs.tar", dirs)
EOF
OUT=$("$VMB_BIN" import "$STORE2" "$T/many.tar" 2>&1)
assert_match "too many xattrs on an entry are refused" \
    "entry 'h1/f' has more than 1024 extended attributes" "$OUT"
OUT=$("$VMB_BIN" import "$STORE2" "$T/big.tar" 2>&1)
assert_match "a too big xattr value is refused" \
    "entry 'h2/f': extended attribute 'user.big' has 70000 bytes \(at most 65536\)" "$OUT"
OUT=$("$VMB_BIN" import "$STORE2" "$T/dirs.tar" 2>&1)
assert_match "the directories' xattrs are bounded in all" \
    "the directories' extended attributes pass 64 MiB in all" "$OUT"
check "nothing left of the refused imports" test ! -e "$STORE2/h1" -a ! -e "$STORE2/h2" -a ! -e "$STORE2/h3"
check "no staging leftovers" staging_clean
finish
