#!/bin/sh
# The command line: --help/--version everywhere, usage errors, init, mount of
# bad stores (fails with exit 1 and a clear message, mounting nothing), ls.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup noinit nofuse

# run_cmd OUTFILE CMD...: run with a timeout; sets RC; stdout+stderr in OUTFILE.
run_cmd() {
    local out=$1
    shift
    timeout 30 "$@" >"$out" 2>"$out.err"
    RC=$?
}

for sub in "" init mount ls fsck; do
    name=${sub:-vmbundlefs}
    run_cmd "$T/h" "$VMB_BIN" $sub --help
    assert_eq "$name --help exits 0" 0 $RC
    assert_match "$name --help prints a usage text on stdout" '[Uu]sage' "$(cat "$T/h")"
    [ -n "$sub" ] && assert_match "$name --help mentions the subcommand" "$sub" "$(cat "$T/h")"
    run_cmd "$T/v" "$VMB_BIN" $sub --version
    assert_eq "$name --version exits 0" 0 $RC
    assert_match "$name --version prints the version" '^vmbundlefs [0-9]+\.[0-9]+' "$(cat "$T/v")"
done

run_cmd "$T/o" "$VMB_BIN"
assert_eq "no arguments: usage error (exit 2)" 2 $RC
run_cmd "$T/o" "$VMB_BIN" frobnicate
assert_eq "unknown subcommand: exit 2" 2 $RC
assert_match "unknown subcommand: message starts with 'vmbundlefs: '" '^vmbundlefs: ' "$(cat "$T/o.err")"
run_cmd "$T/o" "$VMB_BIN" ls --no-such-option "$T/x"
assert_eq "unknown option: exit 2" 2 $RC
run_cmd "$T/o" "$VMB_BIN" init
assert_eq "init without STORE: exit 2" 2 $RC
run_cmd "$T/o" "$VMB_BIN" mount "$T/store"
assert_eq "mount without MOUNTPOINT: exit 2" 2 $RC

# ---- init ----
run_cmd "$T/o" "$VMB_BIN" init "$T/store"
assert_eq "init of a new path: exit 0" 0 $RC
assert_eq "layout file" "vmbundlefs-store-layout 1" "$(cat "$T/store/.vmbundlefs/layout" 2>&1)"
assert_eq "layout file ends with a newline, nothing else" 26 "$(st_size "$T/store/.vmbundlefs/layout")"
check "maps/ directory exists" test -d "$T/store/.vmbundlefs/maps"
check "lock file exists" test -f "$T/store/.vmbundlefs/lock"
run_cmd "$T/o" "$VMB_BIN" init "$T/store"
assert_eq "init of an existing store: exit 1" 1 $RC
assert_match "init of an existing store: says so" "^vmbundlefs: .*'$T/store'.* is already a vmbundlefs store" "$(cat "$T/o.err")"
mkdir "$T/empty"
run_cmd "$T/o" "$VMB_BIN" init "$T/empty"
assert_eq "init of an empty directory: exit 0" 0 $RC
check "init of an empty directory made a store" test -f "$T/empty/.vmbundlefs/layout"
mkdir "$T/full"
echo hello >"$T/full/file"
run_cmd "$T/o" "$VMB_BIN" init "$T/full"
assert_eq "init of a non-empty directory: exit 1" 1 $RC
assert_match "init of a non-empty directory: message" '^vmbundlefs: ' "$(cat "$T/o.err")"
check "init of a non-empty directory created nothing" test ! -e "$T/full/.vmbundlefs"
run_cmd "$T/o" "$VMB_BIN" init "$T/no/such/parent"
assert_eq "init with a missing parent: exit 1" 1 $RC
assert_match "init with a missing parent: message" '^vmbundlefs: ' "$(cat "$T/o.err")"

# ---- mounts that must fail (only if FUSE is usable) ----
fuse_ok=1
[ -c /dev/fuse ] && command -v fusermount3 >/dev/null 2>&1 || fuse_ok=0
if [ $fuse_ok = 1 ]; then
    bad_mount() {   # DESC STORE PATTERN
        local desc=$1 store=$2 pat=$3
        run_cmd "$T/o" "$VMB_BIN" mount "$store" "$MNT"
        assert_eq "mount $desc: exit 1" 1 $RC
        assert_match "mount $desc: clear message" "$pat" "$(cat "$T/o.err")"
        if mountpoint -q "$MNT"; then
            notok "mount $desc: nothing is mounted"
            fusermount3 -u "$MNT" || fusermount3 -uz "$MNT"
        else
            ok "mount $desc: nothing is mounted"
        fi
    }
    bad_mount "of a missing store" "$T/missing" "^vmbundlefs: .*$T/missing"
    mkdir "$T/plain"
    echo x >"$T/plain/file"
    bad_mount "of a directory that is not a store" "$T/plain" "^vmbundlefs: .*not a vmbundlefs store"
    "$VMB_BIN" init "$T/v2" >/dev/null 2>&1
    echo "vmbundlefs-store-layout 2" >"$T/v2/.vmbundlefs/layout"
    bad_mount "of a store with layout 2" "$T/v2" "^vmbundlefs: store '$T/v2' has layout version 2; this vmbundlefs understands up to 1"
    run_cmd "$T/o" "$VMB_BIN" mount -f "$T/store" "$T/no-such-mountpoint"
    assert_eq "mount on a missing mount point: exit 1" 1 $RC

    # A daemonized mount (no -f) returns once the mount is ready.
    run_cmd "$T/o" "$VMB_BIN" mount "$T/store" "$MNT"
    assert_eq "mount without -f: exit 0" 0 $RC
    if mountpoint -q "$MNT"; then
        ok "mount without -f: mounted when it returns"
        check "mount without -f: usable" mkdir "$MNT/bundle"
        check "unmount of the daemonized mount" fusermount3 -u "$MNT"
        check "its daemon ends" wait_store_free "$T/store"
        check "the bundle is in the store" test -d "$T/store/bundle"
        rmdir "$T/store/bundle"
    else
        notok "mount without -f: mounted when it returns" "$(cat "$T/o.err")"
    fi
fi

# ---- ls ----
rm -rf "$T/store"
"$VMB_BIN" init "$T/store" >/dev/null 2>&1 || fail "init"
run_cmd "$T/o" "$VMB_BIN" ls -b "$T/store"
assert_eq "ls of an empty store: exit 0" 0 $RC
assert_eq "ls of an empty store: only the header" 1 "$(wc -l <"$T/o")"
if [ $fuse_ok = 1 ]; then
    STORE=$T/store
    _vmb_prereqs
    mount_store
    M=1048576
    mkdir "$MNT/a" "$MNT/e" "$MNT/a/Data"
    vmbio pwrite "$MNT/a/f1" 0 8192 p1 >/dev/null
    truncate -s $M "$MNT/a/f1"
    truncate -s $((16 * M)) "$MNT/a/f2"
    vmbio pwrite "$MNT/a/f2" $((8 * M)) 4096 p2 >/dev/null
    vmbio pwrite "$MNT/a/Data/x.img" 0 100 p3 >/dev/null
    ln -s f1 "$MNT/a/link"
    unmount_store
    run_cmd "$T/o" "$VMB_BIN" ls -b "$T/store"
    assert_eq "ls -b: exit 0" 0 $RC
    cat "$T/o" | sed 's/^/    | /'
    assert_match "ls -b: header line" 'NAME' "$(head -n 1 "$T/o")"
    assert_eq "ls -b: bundle a (LOGICAL ALLOCATED FILES, files in subdirectories counted)" \
        "a $((M + 16 * M + 100)) 16384 3" "$(awk '$1 == "a" { print $1, $2, $3, $4 }' "$T/o")"
    assert_eq "ls -b: empty bundle e" "e 0 0 0" "$(awk '$1 == "e" { print $1, $2, $3, $4 }' "$T/o")"
    assert_eq "ls -b: .vmbundlefs is not listed" "" "$(awk '$1 == ".vmbundlefs"' "$T/o")"
    run_cmd "$T/o" "$VMB_BIN" ls --bytes "$T/store"
    assert_eq "ls --bytes: exit 0" 0 $RC
    run_cmd "$T/o" "$VMB_BIN" ls "$T/store"
    assert_eq "ls: exit 0" 0 $RC
    assert_match "ls: human-readable sizes" '^a +17(\.0)?M +16(\.0)?K +3 +16(\.0)?K +0B$' "$(grep '^a ' "$T/o")"
fi
run_cmd "$T/o" "$VMB_BIN" ls "$T/missing"
assert_eq "ls of a missing store: exit 1" 1 $RC
assert_match "ls of a missing store: message" '^vmbundlefs: ' "$(cat "$T/o.err")"
finish
