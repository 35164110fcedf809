#!/bin/bash
# remote-evict-meta: the cache's meta/ objects (manifests, image indexes) count in
# its size and are evicted with the chunks (outside report r27 G8), but never the
# image index of a pulled bundle's layer: pull pins it (CACHE/pins/layers-<hex>).
# A pulled bundle read under a tiny cache_max (every chunk and the manifest
# evicted), then opened offline (its index is still there), then read in part under a larger one (cached, with what readahead fetched), then the server
# stopped: the store mounts, the image opens, the cached part reads correctly.
# A URL mount's shadow store is pinned too, and unpinned when it is swept.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/remote-lib.sh"

vmb_setup
remote_pulled
nmeta=$(find "$C/meta" -type f -name '????????????????????????????????????????????????????????????????' | wc -l)
assert_eq "the pull left the manifest and the image index in meta/" 2 "$nmeta"
pin=$(ls "$C/pins" | grep '^layers-' | head -1)
check "the pull pinned its layers' indexes" test -n "$pin"
idx=$(sed -n 2p "$C/pins/$pin")
check "... the pinned digest is in meta/" test -f "$C/meta/${idx:0:2}/$idx"
# everything old: the LRU alone would take the metadata first
find "$C" -type f -path '*/meta/*' -exec touch -d '3 hours ago' {} +

STORE=$S
mount_store -o "cache=$C,cache_max=64K"
out=$("$RCMP" -s -b 262144 "$MNT/$IMG" "$REF")
assert_eq "cache_max=64K: the whole image reads" "ok=64 eio=0 wrong=0 err=0" "$out"
sleep 1
unmount_store
nmeta=$(find "$C/meta" -type f -name '????????????????????????????????????????????????????????????????' | wc -l)
assert_eq "meta/ objects were evicted: only the pinned index is left" 1 "$nmeta"
check "... the index of the pulled bundle's layer is still there" test -f "$C/meta/${idx:0:2}/$idx"
nch=$(cache_verify "$C")
assert_num "the chunks were evicted down to the limit ($nch left)" "$nch" -le 1

faultsrv_stop
say "# server stopped"
mount_store -o "cache=$C,cache_max=64K"
ok "offline, after the eviction: the store mounts"
out=$("$RCMP" -s -b 262144 -O $((4 * M)) -n 4 "$MNT/$IMG" "$REF")
assert_eq "offline, after the eviction: the image opens (its index), a hole reads as zeros" "ok=4 eio=0 wrong=0 err=0" "$out"
unmount_store

faultsrv_start "$PUB" -p "$FAULT_PORT"
mount_store -o "cache=$C,cache_max=8M"
out=$("$RCMP" -s -b 262144 -n 2 "$MNT/$IMG" "$REF")
assert_eq "cache_max=8M: the first 512 KiB read (and are cached)" "ok=2 eio=0 wrong=0 err=0" "$out"
unmount_store

faultsrv_stop
say "# server stopped"
mount_store -o "cache=$C,cache_max=8M"
ok "offline: the store mounts"
check "offline: the image's size is known (its index read from the cache)" \
    test "$(stat -c %s "$MNT/$IMG")" = $((16 * M))
out=$("$RCMP" -s -b 262144 -n 2 "$MNT/$IMG" "$REF")
assert_eq "offline: the cached 512 KiB read correctly" "ok=2 eio=0 wrong=0 err=0" "$out"
out=$("$RCMP" -s -b 262144 -O $((4 * M)) -n 4 "$MNT/$IMG" "$REF")
assert_eq "offline: the hole at 4-5 MiB reads as zeros" "ok=4 eio=0 wrong=0 err=0" "$out"
check "offline: the small files read" cmp "$MNT/vm/config" "$SRC/config"
unmount_store

# a URL mount pulls into a shadow store, whose pin goes with it
faultsrv_start "$PUB" -p "$FAULT_PORT"
rmount u "$URL" -o "cache=$C"
check "a URL mount: the bundle reads" cmp "$T/u/vm/config" "$SRC/config"
assert_eq "... its shadow store's layers are pinned too" 2 "$(ls "$C/pins" | grep -c '^layers-')"
rumount u || notok "the URL mount's daemon exits cleanly"
rmount u "$URL" -o "cache=$C"
assert_eq "its unmount removed the shadow store's pin" 1 "$(ls "$C/pins" | grep -c '^layers-')"
rumount u || notok "the URL mount's daemon exits cleanly"
assert_match "the cache holds only verified chunks" '^[0-9]+$' "$(cache_verify "$C")"
finish
