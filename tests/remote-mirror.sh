#!/bin/sh
# remote-mirror.sh - one image pulled from two published stores (file:// URLs, no
# server): the second pull adds its URL to the remote layer as a mirror (deps
# shows both), and a read whose first URL is gone fetches from the other, with
# right bytes and one log line; with every URL gone, EIO naming the first URL's
# error and the other's; a URL that sends wrong bytes: the second try goes to the
# other; a layer's mirrors survive a remount and a third pull;
# a damaged mirror line makes the layer damaged, as any other line does.
# Hard mode (-o hard): a first URL that keeps failing for a cause that may pass
# (HTTP 503 from tests/helpers/faultsrv) gives way to the mirror once its soft
# retry budget runs out, instead of being waited for forever; with every URL
# failing the read waits (hard mode), the log says so once, and it completes with
# the right bytes as soon as one URL comes back; a reader killed while it waits
# ends.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/remote-lib.sh"

vmb_setup
need_mkpub
export VMB_TEST_MOUNT_OPTS="cache=$T/cache"
export VMBUNDLEFS_CACHE=$T/cache

SRC=$T/src/vm
mkdir -p "$SRC"
truncate -s 16M "$SRC/disk.img"
vmbio pwrite "$SRC/disk.img" 0 1048576 p3 >/dev/null
vmbio pwrite "$SRC/disk.img" 8388608 262144 p4 >/dev/null
printf '{"cpu": 2}\n' >"$SRC/config.json"
"$MKPUB" -c 65536 "$T/pubA" "$SRC" || hard_error "mkpub A failed"
"$MKPUB" -c 65536 "$T/pubB" "$SRC" || hard_error "mkpub B failed"
A="file://$T/pubA" B="file://$T/pubB"

check "pull A#vm as a" "$VMB_BIN" pull "$STORE" "$A#vm" a
check "pull B#vm as b (the same image)" "$VMB_BIN" pull "$STORE" "$B#vm" b
assert_eq "one remote layer for the image" "1" "$(ls "$STORE/.vmbundlefs/layers/" | grep -c '\.remote$')"
deps=$("$VMB_BIN" deps "$STORE" b)
assert_match "deps of b: the layer's first URL (A's)" "^remote [0-9a-f]{32} $A\$" "$deps"
assert_match "... and B as a mirror" "^mirror [0-9a-f]{32} $B\$" "$deps"
check "pull A#vm again as a2: no second mirror line for A" "$VMB_BIN" pull "$STORE" "$A#vm" a2
assert_eq "... the layer still has one mirror" "1" "$("$VMB_BIN" deps "$STORE" a2 | grep -c '^mirror ')"

# ---- A gone: every bundle over the layer reads from B ----
mv "$T/pubA" "$T/pubA.away"
mount_store
check "a (pulled from A) reads from B, byte-equal to the source" cmp "$SRC/disk.img" "$MNT/a/disk.img"
check "b reads too" cmp "$SRC/disk.img" "$MNT/b/disk.img"
sleep 0.2
assert_eq "one log line says the reads moved to B" "1" "$(grep -c "reading from '$B'" "$T/log")"
assert_match "... naming what failed at A" "reading from '$B' \\(.*$A" "$(grep "reading from" "$T/log")"
assert_match "the status xattr names the URL in use" "^url $B\$" \
    "$(getfattr --only-values -n user.vmbundlefs.remote "$MNT/a/disk.img" 2>/dev/null | head -n 1)"
unmount_store

# ---- every URL gone, a cold cache: EIO naming both ----
mv "$T/pubB" "$T/pubB.away"
rm -rf "$T/cache/chunks"
mount_store
assert_eq "with A and B gone, an uncached chunk: EIO" "EIO" "$(vmbio read "$MNT/a/disk.img")"
sleep 0.2
line=$(grep -a "disk.img" "$T/log" | grep -a "offset" | tail -n 1)
assert_match "the log line names A's error" "$A" "$line"
assert_match "... and the other URL's" "and from its 1 other URL: .*$B" "$line"
check "holes still read" vmbio verify "$MNT/a/disk.img" 2097152 65536 0
unmount_store

# ---- A back: it serves again (B still gone) ----
mv "$T/pubA.away" "$T/pubA"
mount_store
check "A back, B gone: a reads from A" cmp "$SRC/disk.img" "$MNT/a/disk.img"
unmount_store
mv "$T/pubB.away" "$T/pubB"

# ---- A sends wrong bytes: the second try of each chunk goes to B ----
cp -a "$T/pubA" "$T/pubA.good"
for f in $(find "$T/pubA/objects" -type f); do
    printf 'X' | dd of="$f" bs=1 count=1 conv=notrunc status=none
done
rm -rf "$T/cache/chunks"
: >"$T/log"
mount_store
check "A's objects all wrong, B's right: a reads right" cmp "$SRC/disk.img" "$MNT/a/disk.img"
sleep 0.2
assert_eq "one log line says the reads moved to B" "1" "$(grep -c "reading from '$B'" "$T/log")"
assert_match "... because A's bytes did not match" "reading from '$B' \(object [0-9a-f]{64} from '$A' did not match its digest\)" "$(grep "reading from" "$T/log")"
unmount_store
check "the cache holds no wrong bytes" "$VMB_BIN" fsck -n --cache="$T/cache"
rm -rf "$T/pubA"
mv "$T/pubA.good" "$T/pubA"

# ---- a damaged mirror line: the layer is damaged ----
R=$(ls "$STORE/.vmbundlefs/layers/"*.remote)
cp "$R" "$T/remote.good"
sed -i 's/^mirror file/mirror fi%zle/' "$R"
out=$("$VMB_BIN" deps "$STORE" a 2>&1)
assert_match "deps: no remote line for a layer with a bad mirror line" "^layer " "$out"
check_fails "... and no mirror line" sh -c "printf '%s\n' \"\$1\" | grep -q '^mirror '" _ "$out"
rc=0; "$VMB_BIN" fsck -n "$STORE" >"$T/fsck.out" 2>&1 || rc=$?
check "fsck -n reports the damaged layer" test "$rc" -ne 0
assert_match "... naming the file and the line" "remote layer '[0-9a-f]{32}' is corrupt \\((bad checksum|bad escape in a url)\\)" "$(cat "$T/fsck.out")"
cp "$T/remote.good" "$R"
check "fsck -n is clean again with the file restored" "$VMB_BIN" fsck -n "$STORE"

# ---- hard mode: a second store, whose layer's first URL is A over http ----
faultsrv_start "$T/pubA"
A=$FAULT_URL
STORE=$T/store2
export VMB_TEST_MOUNT_OPTS="cache=$T/cache2,hard"
export VMBUNDLEFS_CACHE=$T/cache2
check "init a second store" "$VMB_BIN" init "$STORE"
check "pull A#vm as a (A: http, faultsrv)" "$VMB_BIN" pull "$STORE" "$A#vm" a
check "pull B#vm as b (the same image: B becomes a mirror)" "$VMB_BIN" pull "$STORE" "$B#vm" b
assert_match "deps of a: B is a mirror" "^mirror [0-9a-f]{32} $B\$" "$("$VMB_BIN" deps "$STORE" a)"

# ---- A answers 503 to everything: the read comes from B ----
faultsrv_rules "503"
: >"$T/log"
mount_store
check "A failing (503), hard mode: a reads right, from B, within 60 s" \
    timeout 60 cmp "$SRC/disk.img" "$MNT/a/disk.img"
sleep 0.2
assert_eq "one log line says the reads moved to B" "1" "$(grep -c "reading from '$B'" "$T/log")"
assert_match "... naming A's error" "reading from '$B' \\(cannot fetch '$A/objects/.*HTTP 503" \
    "$(grep "reading from" "$T/log")"
unmount_store

# ---- ... with a cache that has no copy of the image index (not the pull's) ----
export VMB_TEST_MOUNT_OPTS="cache=$T/cache3,hard"
: >"$T/log"
mount_store
check "A failing, a new cache: the index and the chunks come from B, within 60 s" \
    timeout 60 cmp "$SRC/disk.img" "$MNT/a/disk.img"
unmount_store
export VMB_TEST_MOUNT_OPTS="cache=$T/cache2,hard"

# ---- A failing and B gone: the read waits, then B comes back ----
mv "$T/pubB" "$T/pubB.away"
rm -rf "$T/cache2/chunks"
: >"$T/log"
mount_store
( cmp "$SRC/disk.img" "$MNT/a/disk.img" >"$T/cmp.out" 2>&1; echo $? >"$T/cmp.rc" ) &
reader=$!
check "the log says it waits for the network (hard mode)" \
    wait_for 30 grep -q "retrying until it works (hard mode)" "$T/log"
assert_eq "... once for the image, however many chunks wait" 1 \
    "$(grep -c "retrying until it works (hard mode)" "$T/log")"
assert_match "... naming both URLs' errors" "HTTP 503.*and from its 1 other URL: .*$B" \
    "$(grep "retrying until it works" "$T/log" | head -n 1)"
sleep 2
check "with every URL failing, the reader still waits" test ! -e "$T/cmp.rc"
mv "$T/pubB.away" "$T/pubB"
check "B back: the read completes" wait_for 30 test -e "$T/cmp.rc"
assert_eq "... with the right bytes" "0" "$(cat "$T/cmp.rc" 2>/dev/null)"
wait $reader 2>/dev/null
assert_eq "the log says once that B answers again" 1 \
    "$(grep -c "'$B' answers again after [0-9]* s" "$T/log")"
unmount_store

# ---- every URL failing: a reader killed while it waits ends ----
mv "$T/pubB" "$T/pubB.away"
rm -rf "$T/cache2/chunks"
mount_store
"$VMBIO" read "$MNT/a/disk.img" >"$T/read.out" 2>&1 &
reader=$!
sleep 3
check "the reader waits" kill -0 $reader
kill -TERM $reader
check "killed, it ends within 10 s" wait_for 10 sh -c "! kill -0 $reader 2>/dev/null"
wait $reader 2>/dev/null
unmount_store
mv "$T/pubB.away" "$T/pubB"
faultsrv_rules
check "the cache holds no wrong bytes" "$VMB_BIN" fsck -n --cache="$T/cache2"
check "faultsrv did not crash" faultsrv_clean
finish
