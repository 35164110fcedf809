#!/bin/bash
# remote-offline: a bundle pulled from a server, part of its image read (cached),
# then the server stopped: the store mounts (no remote is consulted to mount), the
# cached part reads correctly, holes read as zeros, the uncached part fails with EIO
# within the soft timeout and the daemon's log names the file and the URL, a local
# bundle of the same store is untouched, and a mount of the URL itself works from
# the cache (its last verified index). Restarted, the server serves the rest.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/remote-lib.sh"

vmb_setup
remote_pulled
tar -C "$T/src" --sparse -cf - vm | "$VMB_BIN" import "$S" - plain >/dev/null 2>&1 || fail "import of a local bundle"
STORE=$S
mount_store -o "cache=$C"
out=$("$RCMP" -s -b 262144 -n 16 "$MNT/$IMG" "$REF")
assert_eq "online: the first 4 MiB read (and are cached)" "ok=16 eio=0 wrong=0 err=0" "$out"
check "online: the small files read" cmp "$MNT/vm/config" "$SRC/config"
unmount_store

faultsrv_stop
say "# server stopped"
mount_store -o "cache=$C"
ok "offline: the store mounts"
out=$("$RCMP" -s -b 262144 -n 16 "$MNT/$IMG" "$REF")
assert_eq "offline: the cached 4 MiB read correctly" "ok=16 eio=0 wrong=0 err=0" "$out"
out=$("$RCMP" -s -b 262144 -O $((4 * M)) -n 16 "$MNT/$IMG" "$REF")
assert_eq "offline: the hole at 4-8 MiB reads as zeros (nothing to fetch)" "ok=16 eio=0 wrong=0 err=0" "$out"
check "offline: the small files read" cmp "$MNT/vm/config" "$SRC/config"
check "offline: a local bundle reads" cmp "$MNT/plain/disk.img" "$REF"
t0=$(date +%s)
out=$("$RCMP" -b 262144 -O $((8 * M)) -n 4 "$MNT/$IMG" "$REF")
dt=$(($(date +%s) - t0))
assert_eq "offline: the uncached 8-9 MiB fail with EIO" "ok=0 eio=4 wrong=0 err=0" "$out"
assert_num "offline: ... within the soft timeout ($dt s)" "$dt" -le 60
sleep 0.5
assert_match "offline: the log names the file" 'disk\.img' "$(cat "$T/log")"
assert_match "offline: the log names the URL" "127\\.0\\.0\\.1:$FAULT_PORT" "$(cat "$T/log")"
unmount_store

rmount u "$URL" -o "cache=$C"
ok "offline: the URL mounts from the cache"
out=$("$RCMP" -s -b 262144 -n 16 "$T/u/$IMG" "$REF")
assert_eq "offline: the URL mount reads the cached 4 MiB" "ok=16 eio=0 wrong=0 err=0" "$out"
rumount u || notok "the URL mount's daemon exits cleanly"

faultsrv_start "$PUB" -p "$FAULT_PORT"
mount_store -o "cache=$C"
out=$("$RCMP" -s -j 2 -b 65536 "$MNT/$IMG" "$REF")
assert_eq "server back: every block reads correctly (2 readers)" "ok=512 eio=0 wrong=0 err=0" "$out"
unmount_store
assert_match "the cache holds only verified chunks" '^[0-9]+$' "$(cache_verify "$C")"
finish
