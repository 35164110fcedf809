#!/bin/sh
# remote-preload.sh - a mount of a published store's URL pulls a bundle at its
# first lookup, which loads the indexes of the bundle's images (vfs_lazy.c), and
# keeps them: stats and opens of the images load no index again (the root's
# remote_index_loads stays at one per image), and once loaded the first open
# needs neither CACHE/meta nor the network (the published directory moved away
# and CACHE/meta removed: cached chunks read, equal to their source). Nothing is
# loaded before a bundle is looked up, and the background start of the fetcher
# never makes a mount fail or wait: offline (the saved top index) the mount
# works, and an unmount right after it is prompt.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
need_mkpub

mkdir -p "$T/src/vmA" "$T/src/vmB"
truncate -s 64M "$T/src/vmA/disk.img"
vmbio pwrite "$T/src/vmA/disk.img" 0 300000 p2 >/dev/null
vmbio pwrite "$T/src/vmA/disk.img" 33554432 65536 p3 >/dev/null
echo config >"$T/src/vmA/config"
truncate -s 8M "$T/src/vmB/disk.img"
vmbio pwrite "$T/src/vmB/disk.img" 1048576 1048576 p4 >/dev/null
"$MKPUB" -c 65536 "$T/pub" "$T/src/vmA" "$T/src/vmB" >/dev/null || hard_error "mkpub failed"
URL="file://$T/pub"
export VMB_TEST_MOUNT_OPTS="cache=$T/cache"

# remote_stat NAME: a counter of the daemon (the mount root's user.vmbundlefs.remote)
remote_stat() {
	getfattr --only-values -n user.vmbundlefs.remote "$MNT" 2>/dev/null |
		awk -v k="$1" '$1 == k { print $2 }'
}
# wait_loads N: until the daemon loaded N indexes (10 s at most)
wait_loads() {
	local i
	for i in $(seq 1 100); do
		[ "$(remote_stat remote_index_loads)" = "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

STORE=$URL mount_store
sleep 0.3
loads=$(remote_stat remote_index_loads)
assert_eq "no index is loaded before a bundle is looked up" "0" "${loads:-0}"
check "the first lookups pull both bundles" ls -d "$MNT/vmA" "$MNT/vmB"
check "... which loads both images' indexes" wait_loads 2
for i in 1 2 3; do
	stat "$MNT/vmA/disk.img" "$MNT/vmB/disk.img" >/dev/null
done
check "vmA's image equals its source" cmp "$T/src/vmA/disk.img" "$MNT/vmA/disk.img"
check "vmB's image equals its source" cmp "$T/src/vmB/disk.img" "$MNT/vmB/disk.img"
for i in 1 2 3; do
	assert_eq "open $i of vmA's image reads its first 4 KiB" "ok" "$(vmbio verify "$MNT/vmA/disk.img" 0 4096 p2)"
done
assert_eq "stats and opens load no index again" "2" "$(remote_stat remote_index_loads)"
assert_eq "both images are kept" "2" "$(remote_stat remote_images_kept)"
unmount_store

# offline, CACHE/meta gone once the indexes are loaded: the first open still reads
mv "$T/pub" "$T/pub.away"
STORE=$URL mount_store
ok "offline: the URL mounts (its saved index)"
check "offline: the first lookups pull both bundles (from the cache)" ls -d "$MNT/vmA" "$MNT/vmB"
check "offline: ... loading both indexes from the cache" wait_loads 2
rm -rf "$T/cache/meta"
check "offline, no CACHE/meta: the first open of vmA's image reads it all (cached)" \
	cmp "$T/src/vmA/disk.img" "$MNT/vmA/disk.img"
check "... and vmB's" cmp "$T/src/vmB/disk.img" "$MNT/vmB/disk.img"
assert_eq "... loading no index" "2" "$(remote_stat remote_index_loads)"
unmount_store
mv "$T/pub.away" "$T/pub"

# an unmount right after the mount (the background load may still run) is prompt
start=$(date +%s)
for i in 1 2 3; do
	STORE=$URL mount_store
	unmount_store
done
took=$(($(date +%s) - start))
limit=30
[ -n "${VMB_SAN_CFLAGS:-}" ] && limit=60   # each exit's leak check, on a loaded machine
assert_num "three mounts and unmounts take under $limit s (took $took s)" "$took" -lt $limit
assert_eq "no shadow store left" "" "$(ls "$T/cache/mnt")"

# a daemon with a relative cache=: the same cache, the index loaded in the background
REL=rel-$$-cache
(cd "$T" && "$VMB_BIN" mount -o "cache=$REL" --log="$T/log.d" "$URL" "$MNT") ||
	fail "mount of the URL as a daemon failed"
check "daemon: the first lookups pull both bundles" ls -d "$MNT/vmA" "$MNT/vmB"
check "daemon: ... loading both indexes" wait_loads 2
assert_eq "daemon: its cache is the one given" "$T/$REL" "$(remote_stat cache_dir)"
check "daemon: vmA's image equals its source" cmp "$T/src/vmA/disk.img" "$MNT/vmA/disk.img"
fusermount3 -u "$MNT"
shadow_gone() { [ -z "$(ls "$T/$REL/mnt")" ]; }
wait_for 30 shadow_gone   # the daemon removes it after the unmount (slow under ASan)
assert_eq "daemon: its shadow store is removed at unmount" "" "$(ls "$T/$REL/mnt")"
check_fails "daemon: no cache made under /" test -e "/$REL"
rm -rf "/$REL"   # only there when the check above failed

finish
