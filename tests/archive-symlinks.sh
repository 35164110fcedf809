#!/bin/sh
# Symlinks through export and import (issue #12 §3): one rule for both directions.
# A symlink is stored as it is, wherever it points (inside the bundle, out of it
# with ../.., absolute: a shared ISO), and import recreates it as an inert link, so
# export -> import into an empty store reproduces the bundle and import -> export
# gives the same entries. The importer (root) never follows such a link: an archive
# that tries to write, link, chown or touch through one is refused or leaves the
# target alone, and --replace of a bundle with such links never reaches their targets.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
vmb_setup nofuse
. "$(dirname "$0")/archive-lib.sh"
need tar python3

# Outside targets: a shared "ISO" and a directory that must stay untouched.
OUT=$T/outside
mkdir -p "$OUT/dir"
printf 'iso\n' >"$OUT/shared.iso"
printf 'keep\n' >"$OUT/dir/keep"
chmod 0600 "$OUT/shared.iso"
touch -d '2001-01-01 00:00:00' "$OUT/shared.iso" "$OUT/dir" "$OUT/dir/keep"
outside_state() { (cd "$OUT" && find . -printf '%p %y %m %s %U:%G %T@\n' | sort && find . -type f | sort | xargs sha256sum); }
OUTSIDE=$(outside_state)

# ---- export -> import: a bundle with inside, ../.. and absolute links ----
B=$STORE/vm
mkdir -p "$B/Data/deep"
printf 'cfg\n' >"$B/config.json"
mkimg "$B/disk.img" $((64 * M)) 3 || fail "mkimg"
ln -s config.json "$B/config.link"                # inside
ln -s ../disk.img "$B/Data/disk.link"            # inside, climbing
ln -s ../../config.json "$B/Data/deep/cfg.link"  # inside, two levels
ln -s ../../x "$B/Data/out.rel"                  # outside (into the store)
ln -s ../../../../../../etc/passwd "$B/passwd.rel"  # far outside
ln -s "$OUT/shared.iso" "$B/cdrom.iso"           # absolute, to a shared ISO
ln -s "$OUT/dir" "$B/Data/outdir"                 # absolute, to a directory
ln -s /nonexistent/target "$B/dangling"          # absolute, dangling
ln -s d/../../escape "$B/dotdot-after-name"      # '..' after a name
touch -h -d '2019-05-06 07:08:09' "$B/cdrom.iso"
SRC_LIST=$(tree_listing "$B")
check "export of a bundle with links out of it succeeds" vmb export "$STORE" vm "$T/vm.tar"
assert_match "the archive stores the absolute link as it is" \
    "vm/cdrom.iso -> $OUT/shared.iso" "$(tar -tvf "$T/vm.tar")"
assert_match "... and the ../.. link" "vm/Data/out.rel -> \.\./\.\./x" "$(tar -tvf "$T/vm.tar")"
mv "$STORE" "$T/store1"
vmb init "$STORE" || fail "init"
check "import of that archive into an empty store succeeds" vmb import "$STORE" "$T/vm.tar"
assert_eq "import reproduces the bundle (every link, its target text)" "$SRC_LIST" "$(tree_listing "$STORE/vm")"
check "... and every file's bytes" same_tree "$T/store1/vm" "$STORE/vm"
assert_eq "the link's mtime is kept" "$(stat -c %Y "$T/store1/vm/cdrom.iso")" "$(stat -c %Y "$STORE/vm/cdrom.iso")"
assert_eq "nothing outside was touched" "$OUTSIDE" "$(outside_state)"
check "no staging leftovers" staging_clean

# ---- import -> export: an archive made by GNU tar with the same links ----
mkdir -p "$T/g"
cp -a "$T/store1/vm" "$T/g/gvm"
tar -C "$T/g" --sparse -cf "$T/g.tar" gvm || fail "GNU tar"
check "import of a GNU tar with links out of the bundle" vmb import "$STORE" "$T/g.tar"
assert_eq "imported tree equals the source tree" "$(tree_listing "$T/g/gvm")" "$(tree_listing "$STORE/gvm")"
check "export it again" vmb export "$STORE" gvm "$T/g2.tar"
lst() { tar --numeric-owner -tvf "$1" | awk '{ $3 = ""; $4 = ""; $5 = ""; print }' | sort; }
assert_eq "import -> export gives the same entries (types, modes, names, link targets)" \
    "$(lst "$T/g.tar")" "$(lst "$T/g2.tar")"
assert_eq "nothing outside was touched" "$OUTSIDE" "$(outside_state)"

# ---- without a single top-level directory: links relative to the bundle ----
python3 - "$T" "$OUT" <<'PY' || fail "cannot craft the archives"
import io, os, sys, tarfile
out, esc = sys.argv[1], sys.argv[2]
def tar(name, entries):
    with tarfile.open(os.path.join(out, name), "w", format=tarfile.PAX_FORMAT) as t:
        for e in entries:
            ti = tarfile.TarInfo(e["name"])
            ti.type = e.get("type", tarfile.REGTYPE)
            ti.linkname = e.get("link", "")
            ti.mode = e.get("mode", 0o644)
            ti.uid, ti.gid = e.get("uid", 0), e.get("gid", 0)
            ti.mtime = e.get("mtime", 1000000000)
            data = e.get("data", b"")
            ti.size = len(data) if ti.type == tarfile.REGTYPE else 0
            t.addfile(ti, io.BytesIO(data) if ti.type == tarfile.REGTYPE else None)
D = lambda n, **k: dict({"name": n, "type": tarfile.DIRTYPE, "mode": 0o755}, **k)
F = lambda n, d=b"evil\n", **k: dict({"name": n, "data": d}, **k)
L = lambda n, t, **k: dict({"name": n, "type": tarfile.SYMTYPE, "link": t}, **k)
H = lambda n, t: {"name": n, "type": tarfile.LNKTYPE, "link": t}
tar("flat.tar", [F("a.img", b"a\n"), L("iso", esc + "/shared.iso"), L("up", "../sibling")])
# Hostile: each tries to reach the outside through a link it brings along.
tar("write-through-abs.tar", [D("vm"), L("vm/d", esc + "/dir"), F("vm/d/keep")])
tar("write-through-rel.tar", [D("vm"), L("vm/d", "../../outside/dir"), F("vm/d/new")])
tar("mkdir-through.tar", [D("vm"), L("vm/d", esc + "/dir"), D("vm/d/sub")])
tar("replace-link-by-file.tar", [D("vm"), L("vm/iso", esc + "/shared.iso"), F("vm/iso")])
tar("replace-link-by-dir.tar", [D("vm"), L("vm/d", esc + "/dir"), D("vm/d")])
tar("hardlink-through.tar", [D("vm"), L("vm/d", esc + "/dir"), H("vm/h", "vm/d/keep")])
tar("hardlink-to-link.tar", [D("vm"), L("vm/iso", esc + "/shared.iso"), H("vm/h", "vm/iso")])
# Not refused, but the link's owner, mode and time must not reach the target.
tar("meta-through.tar", [D("vm"), L("vm/iso", esc + "/shared.iso", uid=4242, gid=4242,
    mode=0o777, mtime=1500000000)])
tar("dir-meta-through.tar", [D("vm"), L("vm/d", esc + "/dir", mode=0o777, uid=4242)])
PY

check "import of a flat archive with links" vmb import "$STORE" "$T/flat.tar" flat
assert_eq "the absolute link is kept" "$OUT/shared.iso" "$(readlink "$STORE/flat/iso")"
assert_eq "the link to a sibling is kept" "../sibling" "$(readlink "$STORE/flat/up")"

BEFORE=$(store_snapshot "$STORE")
refused() {   # DESC ERE ARCHIVE
    local out rc
    out=$("$VMB_BIN" import "$STORE" "$3" 2>&1)
    rc=$?
    assert_eq "$1: refused (exit 1)" 1 "$rc"
    assert_match "$1: message names the entry" "^vmbundlefs: cannot import '.*': .*$2" "$out"
    assert_eq "$1: the store is unchanged" "$BEFORE" "$(store_snapshot "$STORE")"
    assert_eq "$1: nothing outside was touched" "$OUTSIDE" "$(outside_state)"
    check "$1: no staging leftovers" staging_clean
}
refused "a file written through an absolute link" "'vm/d/keep' goes through 'vm/d', which is a symlink" "$T/write-through-abs.tar"
refused "a file written through a ../.. link" "goes through 'vm/d', which is a symlink" "$T/write-through-rel.tar"
refused "a directory made through a link" "goes through 'vm/d', which is a symlink" "$T/mkdir-through.tar"
refused "a file replacing a link" "duplicate entry 'vm/iso'" "$T/replace-link-by-file.tar"
refused "a directory replacing a link" "duplicate entry 'vm/d'" "$T/replace-link-by-dir.tar"
refused "a hard link through a link" "'vm/h'" "$T/hardlink-through.tar"
refused "a hard link to a symlink to outside" "'vm/h'" "$T/hardlink-to-link.tar"

check "a link whose owner, mode and time are recorded imports" vmb import "$STORE" "$T/meta-through.tar" meta
assert_eq "... its owner is the link's, not the target's" "4242:4242" "$(stat -c %u:%g "$STORE/meta/iso")"
assert_eq "... its time is the link's" 1500000000 "$(stat -c %Y "$STORE/meta/iso")"
check "a link to an outside directory with directory metadata imports" vmb import "$STORE" "$T/dir-meta-through.tar" dmeta
assert_eq "neither touched the target" "$OUTSIDE" "$(outside_state)"

# ---- --replace of a bundle whose links point outside: the targets stay ----
check "--replace of a bundle with links out of it" vmb import --replace "$STORE" "$T/meta-through.tar" dmeta
check "--replace of the bundle with the absolute links" vmb import --replace "$STORE" "$T/vm.tar"
assert_eq "the old bundle's link targets were never followed" "$OUTSIDE" "$(outside_state)"
check "/etc/passwd is still there" test -s /etc/passwd
finish
