#!/bin/sh
# vmbundlefs fsck --cache (the shared chunk cache, vmbundlefs(5) CACHE): a good chunk
# passes, a corrupt chunk, a stale temporary and stray files are reported one line
# each with a summary; -n changes nothing; repair removes them (a stray directory is
# only reported); exit statuses 0/1/4/8/2 as for a store. No mount, no network.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup noinit nofuse

run_cmd() {
    local out=$1
    shift
    timeout 60 "$@" >"$out" 2>"$out.err"
    RC=$?
}

C=$T/cache
run_cmd "$T/o" "$VMB_BIN" fsck --cache="$T/none"
assert_eq "fsck --cache of a missing directory: exit 8" 8 $RC
assert_match "... says so" "no cache at '$T/none'" "$(cat "$T/o.err")"
check "... and makes nothing" test ! -e "$T/none"
mkdir "$T/notcache" && echo precious >"$T/notcache/file"
run_cmd "$T/o" "$VMB_BIN" fsck --cache "$T/notcache"
assert_eq "fsck --cache DIR of a directory with other files: exit 8" 8 $RC
assert_match "... says it is not a cache" "is not a vmbundlefs cache" "$(cat "$T/o.err")"
run_cmd "$T/o" "$VMB_BIN" fsck --cache="$T/c" "$T/store"
assert_eq "fsck --cache=DIR with a STORE too: usage error" 2 $RC

mkdir "$C"
run_cmd "$T/o" "$VMB_BIN" fsck --cache="$C"
assert_eq "an empty directory becomes an empty cache: clean, exit 0" 0 $RC
assert_match "... summary" "0 objects \\(0 bytes\\) checked.*; clean" "$(cat "$T/o")"
assert_eq "... with its version file" "vmbundlefs-cache 1" "$(cat "$C/version")"

# a good chunk, a corrupt one, a stale temporary, stray files and a stray directory
put() {   # put FILE: store FILE as the chunk named by its SHA-256; prints the digest
    local h
    h=$(sha256sum "$1" | cut -c1-64)
    mkdir -p "$C/chunks/${h:0:2}"
    cp "$1" "$C/chunks/${h:0:2}/$h"
    echo "$h"
}
head -c 300000 /dev/urandom >"$T/good"
head -c 200000 /dev/urandom >"$T/bad"
good=$(put "$T/good")
bad=$(put "$T/bad")
printf 'X' | dd of="$C/chunks/${bad:0:2}/$bad" bs=1 seek=1000 conv=notrunc status=none
: >"$C/tmp/$good.4242.0123456789abcdef"
: >"$C/chunks/${good:0:2}/junk"
mkdir "$C/chunks/zz"
run_cmd "$T/o" "$VMB_BIN" fsck -n --cache="$C"
assert_eq "fsck -n --cache: problems left, exit 4" 4 $RC
out=$(cat "$T/o")
assert_match "... names the corrupt chunk" "chunks/${bad:0:2}/$bad: its bytes do not match its name" "$out"
assert_match "... the stale temporary" "tmp/$good.4242.0123456789abcdef: a temporary of an interrupted fill$" "$out"
assert_match "... the stray file" "chunks/${good:0:2}/junk: a stray file$" "$out"
assert_match "... the stray directory" "chunks/zz: a stray directory \\(left alone\\)" "$out"
assert_match "... the summary" "2 objects \\(500000 bytes\\) checked: 1 bad, 1 stale temporaries, 2 stray files, 0 malformed pins" "$out"
check "... and changes nothing" test -e "$C/chunks/${bad:0:2}/$bad" -a -e "$C/chunks/${good:0:2}/junk" -a -e "$C/tmp/$good.4242.0123456789abcdef"

rmdir "$C/chunks/zz"
run_cmd "$T/o" "$VMB_BIN" fsck --cache "$C"
assert_eq "fsck --cache: all repaired, exit 1" 1 $RC
assert_match "... removed the corrupt chunk" "$bad: its bytes do not match its name.*\\(removed\\)" "$(cat "$T/o")"
check "... which is gone" test ! -e "$C/chunks/${bad:0:2}/$bad"
check "... the good one stays" cmp -s "$T/good" "$C/chunks/${good:0:2}/$good"
assert_eq "... tmp/ is empty" "" "$(ls -A "$C/tmp")"
run_cmd "$T/o" "$VMB_BIN" fsck --cache="$C"
assert_eq "then clean: exit 0" 0 $RC
assert_match "... 1 object" "1 objects \\(300000 bytes\\) checked: 0 bad.*; clean" "$(cat "$T/o")"

# meta/ (manifests and image indexes of remote layers): checked as chunks/ (r27 G14)
putm() {   # putm FILE: store FILE as a meta/ object; prints the digest
    local h
    h=$(sha256sum "$1" | cut -c1-64)
    mkdir -p "$C/meta/${h:0:2}"
    cp "$1" "$C/meta/${h:0:2}/$h"
    chmod 644 "$C/meta/${h:0:2}/$h"
    echo "$h"
}
head -c 5000 /dev/urandom >"$T/mgood"
head -c 6000 /dev/urandom >"$T/mbad"
head -c 7000 /dev/urandom >"$T/mopen"
mgood=$(putm "$T/mgood")
mbad=$(putm "$T/mbad")
mopen=$(putm "$T/mopen")
printf 'X' | dd of="$C/meta/${mbad:0:2}/$mbad" bs=1 seek=10 conv=notrunc status=none
chmod 666 "$C/meta/${mopen:0:2}/$mopen"
: >"$C/meta/${mgood:0:2}/.$mgood.4242.0badf00d"
: >"$C/meta/${mgood:0:2}/junk"
run_cmd "$T/o" "$VMB_BIN" fsck -n --cache="$C"
assert_eq "fsck -n --cache with damaged meta/ objects: exit 4" 4 $RC
out=$(cat "$T/o")
assert_match "... names the corrupt manifest or index" "meta/${mbad:0:2}/$mbad: its bytes do not match its name" "$out"
assert_match "... the one others could change" "meta/${mopen:0:2}/$mopen: owned by uid [0-9]+, mode 0666: others could change its bytes" "$out"
assert_match "... the stale temporary" "meta/${mgood:0:2}/.$mgood.4242.0badf00d: a temporary of an interrupted write" "$out"
assert_match "... the stray file" "meta/${mgood:0:2}/junk: a stray file$" "$out"
assert_match "... the summary counts them" "4 objects \\(318000 bytes\\) checked: 2 bad, 1 stale temporaries, 1 stray files" "$out"
run_cmd "$T/o" "$VMB_BIN" fsck --cache "$C"
assert_eq "fsck --cache: meta/ repaired, exit 1" 1 $RC
check "... the corrupt one is gone" test ! -e "$C/meta/${mbad:0:2}/$mbad"
check "... the one others could change is gone" test ! -e "$C/meta/${mopen:0:2}/$mopen"
check "... the temporary and the stray file are gone" test ! -e "$C/meta/${mgood:0:2}/.$mgood.4242.0badf00d" -a ! -e "$C/meta/${mgood:0:2}/junk"
check "... the good one stays" cmp -s "$T/mgood" "$C/meta/${mgood:0:2}/$mgood"
run_cmd "$T/o" "$VMB_BIN" fsck --cache="$C"
assert_eq "then clean: exit 0" 0 $RC

# a symbolic link where chunks/<aa> goes: a mount refuses the cache (cache-perms.sh),
# fsck reports it as a stray file and removes it (then fills make the directory)
mkdir "$T/elsewhere"
rmdir "$C/chunks/00" 2>/dev/null; ln -s "$T/elsewhere" "$C/chunks/00"
run_cmd "$T/o" "$VMB_BIN" fsck --cache="$C"
assert_eq "a symbolic link at chunks/00: repaired, exit 1" 1 $RC
assert_match "... reported as a stray file, removed" "chunks/00: a stray file \(removed\)" "$(cat "$T/o")"
check "... gone, and what it pointed to untouched" test ! -L "$C/chunks/00" -a -d "$T/elsewhere"

# a user who cannot write the cache: a clear error, exit 8
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
    chmod 755 "$T"
    run_cmd "$T/o" setpriv --reuid=65534 --regid=65534 --clear-groups "$VMB_BIN" fsck --cache="$C"
    assert_eq "fsck --cache as a user who cannot write it: exit 8" 8 $RC
    assert_match "... says who and why" "is not writable by this process.*uid 65534" "$(cat "$T/o.err")"
fi
finish
