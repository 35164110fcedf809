#!/bin/sh
# remote-flatten-cache.sh - flatten -o cache=DIR (outside report r27 G21): a bundle
# pulled and prefetched with a cache that is not the default one is flattened
# from that cache with the published store gone (no default cache, no
# VMBUNDLEFS_CACHE): exit 0, the image byte for byte, deps without the remote
# layer; -o with a bad option is a usage error.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/remote-lib.sh"

vmb_setup nofuse
remote_need_cli prefetch
M=$((1024 * 1024))
remote_fixture
unset VMBUNDLEFS_CACHE
export HOME=$T/home     # the default cache (~/.cache/vmbundlefs) stays empty
mkdir -p "$HOME"
[ "$(id -u)" = 0 ] && DEF=/var/cache/vmbundlefs || DEF=$HOME/.cache/vmbundlefs
[ "$(id -u)" = 0 ] && [ -e "$DEF" ] && defbefore=$(find "$DEF" -type f | wc -l)

check "pull -o cache=X" "$VMB_BIN" pull -o cache="$T/X" "$STORE" "file://$PUB#vm" vmr
check "prefetch -o cache=X" "$VMB_BIN" prefetch -o cache="$T/X" "$STORE/vmr"
assert_match "deps names the remote layer" "^remote " "$("$VMB_BIN" deps "$STORE" vmr)"
mv "$PUB" "$PUB.away"   # the server stopped: everything must come from X

out=$("$VMB_BIN" flatten -o hard,nosuch "$STORE" vmr 2>&1); rc=$?
assert_match "flatten -o with an unknown option: usage, naming it" "^2 .*unknown option 'nosuch'" "$rc $out"
out=$("$VMB_BIN" flatten -o cache="$T/X" "$STORE" vmr 2>&1)
assert_eq "flatten -o cache=X with the server gone (exit 0)" 0 $? || say "$out"
check "... the image byte for byte" cmp "$REF" "$STORE/vmr/disk.img"
check "... the small files" cmp "$SRC/nvram" "$STORE/vmr/nvram"
check_fails "... deps shows no remote layer" sh -c "'$VMB_BIN' deps '$STORE' vmr | grep -q '^remote '"
if [ "$(id -u)" = 0 ]; then
    assert_eq "... the default cache untouched" "${defbefore:-0}" \
        "$([ -e "$DEF" ] && find "$DEF" -type f | wc -l || echo 0)"
else
    check_fails "... no default cache made" test -e "$DEF"
fi
check "fsck is clean" "$VMB_BIN" fsck -n "$STORE"
finish
