#!/bin/sh
# Usage errors of every subcommand exit 2 (issue #9 §5), with nothing done;
# mount --help states the real readahead default; a damaged layout file is
# described (what it holds, what is expected).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup nofuse

run_cmd() {   # OUTFILE CMD...: sets RC; stdout in OUTFILE, stderr in OUTFILE.err
    local out=$1
    shift
    timeout 30 "$@" >"$out" 2>"$out.err" </dev/null
    RC=$?
}

usage_error() {   # DESC CMD...: exits 2 with a message or the usage text on stderr
    local desc=$1
    shift
    run_cmd "$T/u" "$@"
    assert_eq "$desc: exit 2" 2 $RC
    if [ -s "$T/u.err" ]; then ok "$desc: says why on stderr"; else notok "$desc: says why on stderr"; fi
}

echo data >"$T/file"
tar -cf "$T/a.tar" -C "$T" file
S=$STORE
mkdir "$T/m"

# ---- unknown options, missing and extra arguments, every subcommand ----
for sub in init mount ls fsck import export deps clone snapshot flatten gc; do
    usage_error "$sub --no-such-option" "$VMB_BIN" $sub --no-such-option "$S"
    usage_error "$sub without arguments" "$VMB_BIN" $sub
done
usage_error "init with two stores" "$VMB_BIN" init "$T/x1" "$T/x2"
usage_error "mount with three arguments" "$VMB_BIN" mount "$S" "$T/m" extra
usage_error "ls with two stores" "$VMB_BIN" ls "$S" "$S"
usage_error "fsck with two stores" "$VMB_BIN" fsck "$S" "$S"
usage_error "fsck -x" "$VMB_BIN" fsck -x "$S"
usage_error "import with only a store" "$VMB_BIN" import "$S"
usage_error "import with four arguments" "$VMB_BIN" import "$S" "$T/a.tar" n extra
usage_error "export with two arguments" "$VMB_BIN" export "$S" b
usage_error "deps with one argument" "$VMB_BIN" deps "$S"
usage_error "clone with two arguments" "$VMB_BIN" clone "$S" a
usage_error "clone with four arguments" "$VMB_BIN" clone "$S" a b c
usage_error "clone with an empty name" "$VMB_BIN" clone "$S" a ""
usage_error "snapshot with only a store" "$VMB_BIN" snapshot "$S"
usage_error "snapshot with four arguments" "$VMB_BIN" snapshot "$S" a b c
usage_error "snapshot --delete without a snapshot" "$VMB_BIN" snapshot --delete "$S"
usage_error "snapshot --delete --list" "$VMB_BIN" snapshot --delete --list "$S" a@b
usage_error "snapshot --list with three arguments" "$VMB_BIN" snapshot --list "$S" a b
usage_error "flatten with only a store" "$VMB_BIN" flatten "$S"
usage_error "flatten with three arguments" "$VMB_BIN" flatten "$S" a b
usage_error "gc with two stores" "$VMB_BIN" gc "$S" "$S"
for sub in clone snapshot flatten gc; do
    run_cmd "$T/u" "$VMB_BIN" $sub --help
    assert_eq "$sub --help: exit 0" 0 $RC
    assert_match "$sub --help: usage on stdout" "^Usage: vmbundlefs $sub" "$(head -n 1 "$T/u")"
done

# ---- bad option values ----
for o in bogus max_read=4096 readahead_kb=abc readahead_kb= max_threads=0 \
    max_threads=5000 idle_fds=0 aux_patterns= allow_other,nonsense=1; do
    usage_error "mount -o $o" "$VMB_BIN" mount -o "$o" "$S" "$T/m"
done
usage_error "mount -f -o max_read=4096 (foreground)" "$VMB_BIN" mount -f -o max_read=4096 "$S" "$T/m"
assert_match "mount -o max_read: says vmbundlefs sets it" "max_read.*sets max_read itself" "$(cat "$T/u.err")"
usage_error "mount -f -o bogus (foreground)" "$VMB_BIN" mount -f -o bogus "$S" "$T/m"
assert_match "mount -o bogus: names the option" "bogus" "$(cat "$T/u.err")"
if grep -q "$T/m" /proc/self/mounts; then
    notok "bad mount options mount nothing"
    fusermount3 -uz "$T/m"
else
    ok "bad mount options mount nothing"
fi
usage_error "import --max-size=abc" "$VMB_BIN" import --max-size=abc "$S" "$T/a.tar"
usage_error "import --max-size=0" "$VMB_BIN" import --max-size=0 "$S" "$T/a.tar"
usage_error "import NAME .vmbundlefs" "$VMB_BIN" import "$S" "$T/a.tar" .vmbundlefs
usage_error "import NAME with a slash" "$VMB_BIN" import "$S" "$T/a.tar" a/b
usage_error "import NAME .." "$VMB_BIN" import "$S" "$T/a.tar" ..
usage_error "export --format=rar" "$VMB_BIN" export --format=rar "$S" b "$T/o.tar"
usage_error "export to - without --format" "$VMB_BIN" export "$S" b -
usage_error "export NAME ../x" "$VMB_BIN" export "$S" ../x "$T/o.tar"
usage_error "deps NAME a/b" "$VMB_BIN" deps "$S" a/b
assert_eq "no bundle was made by the refused imports" "" "$(ls "$S")"
check "no archive was written by the refused exports" test ! -e "$T/o.tar"

# Errors that are not usage errors still exit 1 (fsck: 8).
run_cmd "$T/o" "$VMB_BIN" export "$S" missing "$T/o.tar"
assert_eq "export of a missing bundle: exit 1" 1 $RC
run_cmd "$T/o" "$VMB_BIN" fsck "$T/nostore"
assert_eq "fsck of a missing store: exit 8" 8 $RC

# ---- mount --help: the readahead default is the one in force and in the man page ----
run_cmd "$T/h" "$VMB_BIN" mount --help
help_ra=$(sed -n 's/.*readahead_kb=N (default \([0-9]*\)[;)].*/\1/p' "$T/h")
# ... and a URL's mount: 256 KiB (tests/remote-mount.sh checks the mount sets it)
help_url_ra=$(sed -n "s/.*readahead_kb=N (default [0-9]*; a URL's mount: \([0-9]*\)).*/\1/p" "$T/h")
man_ra=$(tr '\n' ' ' <"$VMB_SRCDIR/man/vmbundlefs.1" | sed -n 's/.*readahead_kb= n \.*[^(]*(default \([0-9]*\).*/\1/p')
assert_eq "mount --help: readahead_kb default is 1004 KiB (251 pages)" 1004 "$help_ra"
assert_eq "mount --help and vmbundlefs(1) give the same readahead default" "$man_ra" "$help_ra"
assert_eq "mount --help: a URL's mount's readahead default is 256 KiB" 256 "$help_url_ra"
assert_match "vmbundlefs(1) says the same" "mount of a published store's URL defaults to 256" \
    "$(tr '\n' ' ' <"$VMB_SRCDIR/man/vmbundlefs.1")"

# ---- a damaged layout file says what it holds and what is expected ----
L=$S/.vmbundlefs/layout
exp="expected 'vmbundlefs-store-layout 1'"
: >"$L"
run_cmd "$T/o" "$VMB_BIN" ls "$S"
assert_eq "empty layout file: ls exits 1" 1 $RC
assert_eq "empty layout file: message" "vmbundlefs: layout file '$L' is empty; $exp" "$(cat "$T/o.err")"
printf 'xyz\n' >"$L"
run_cmd "$T/o" "$VMB_BIN" fsck -n "$S"
assert_eq "garbage layout file: fsck exits 8" 8 $RC
assert_eq "garbage layout file: message" "vmbundlefs: layout file '$L' holds 'xyz\\n' (4 bytes); $exp" "$(cat "$T/o.err")"
printf 'vmbundlefs-store-layout 0\n' >"$L"
run_cmd "$T/o" "$VMB_BIN" ls "$S"
assert_match "layout version 0: says what it holds" "holds 'vmbundlefs-store-layout 0\\\\n' \\(26 bytes\\); $exp" "$(cat "$T/o.err")"
{ printf '\001\377\n'; head -c 200 /dev/zero | tr '\0' a; } >"$L"
run_cmd "$T/o" "$VMB_BIN" export "$S" b "$T/o.tar"
assert_eq "binary layout file: escaped bytes, its size, truncated with ..." \
    "vmbundlefs: layout file '$L' holds '\\x01\\xff\\naaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...' (203 bytes); $exp" "$(cat "$T/o.err")"
assert_eq "binary layout file: one line of message" 1 "$(wc -l <"$T/o.err")"
printf 'vmbundlefs-store-layout 1\n' >"$L"
run_cmd "$T/o" "$VMB_BIN" ls "$S"
assert_eq "a good layout file again: ls exits 0" 0 $RC

# The readahead the mount really sets is the default --help states.
if [ -c /dev/fuse ] && command -v fusermount3 >/dev/null 2>&1 && { exec 9<>/dev/fuse; } 2>/dev/null; then
    exec 9>&-
    _vmb_prereqs
    mount_store
    dev=$(mountpoint -d "$MNT")
    assert_eq "the mount's readahead is the stated default" "$help_ra" "$(cat "/sys/class/bdi/$dev/read_ahead_kb")"
fi
finish
