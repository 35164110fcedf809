#!/bin/bash
# gc beside concurrent clones and snapshots (issue 10 §5: gc never removes a layer a
# bundle, snapshot or open file uses, safe against a concurrent clone): through the
# mount's daemon, two loops clone and snapshot a bundle whose image a writer keeps
# changing, while a third runs gc over and over and deletes old clones; afterwards
# every clone and snapshot reads back the bytes it was taken with (checksums recorded
# when each was made, from a frozen copy), fsck finds the store clean, and after a
# remount everything still reads the same.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
M=$((1024 * 1024))
ROUNDS=${VMB_TEST_GC_ROUNDS:-12}
mount_store
mkdir "$MNT/vm"
truncate -s 64M "$MNT/vm/disk.img"
head -c $((8 * M)) /dev/urandom | dd of="$MNT/vm/disk.img" bs=1M seek=8 conv=notrunc status=none
printf 'cpus 2\n' >"$MNT/vm/config"

# each round: change the image, snapshot it (the snapshot's bytes are the reference),
# clone the snapshot; the reference checksum is taken from the read-only snapshot
clones() {
	local i s
	for i in $(seq 1 "$ROUNDS"); do
		head -c 65536 /dev/urandom | dd of="$MNT/vm/disk.img" bs=64K seek=$((i * 7)) conv=notrunc status=none
		"$VMB_BIN" snapshot "$MNT" vm "s$i" >/dev/null 2>>"$T/loop.err" || { echo "snapshot $i" >>"$T/loop.fail"; continue; }
		s=$(sha256sum <"$MNT/.snapshots/vm@s$i/disk.img" | cut -d' ' -f1)
		echo "$i $s" >>"$T/sums"
		"$VMB_BIN" clone "$MNT" "vm@s$i" "c$i" >/dev/null 2>>"$T/loop.err" || echo "clone $i" >>"$T/loop.fail"
		if [ $((i % 3)) = 0 ]; then   # some go again: their layers become garbage for gc
			"$VMB_BIN" snapshot --delete "$MNT" "vm@s$i" >/dev/null 2>>"$T/loop.err" || echo "delete s$i" >>"$T/loop.fail"
		fi
	done
	touch "$T/clones.done"
}
gcs() {
	local n=0
	while [ ! -e "$T/clones.done" ]; do
		"$VMB_BIN" gc "$MNT" >>"$T/gc.out" 2>>"$T/loop.err" || echo "gc" >>"$T/loop.fail"
		n=$((n + 1))
	done
	echo "$n" >"$T/gc.count"
}
: >"$T/sums"
gcs &
g=$!
clones
wait $g
check "no clone, snapshot, delete or gc failed" test ! -e "$T/loop.fail"
[ -e "$T/loop.fail" ] && { cat "$T/loop.fail"; tail -n 5 "$T/loop.err"; }
assert_num "gc ran during the clones ($(cat "$T/gc.count") times)" "$(cat "$T/gc.count")" -ge 2
assert_match "... and removed layers" "[1-9][0-9]* layers removed" "$(cat "$T/gc.out")"

verify() { # verify WHEN
	local i s bad=0
	while read -r i s; do
		[ "$(sha256sum <"$MNT/c$i/disk.img" | cut -d' ' -f1)" = "$s" ] || { bad=1; say "clone c$i differs"; }
		if [ $((i % 3)) != 0 ]; then
			[ "$(sha256sum <"$MNT/.snapshots/vm@s$i/disk.img" | cut -d' ' -f1)" = "$s" ] ||
				{ bad=1; say "snapshot s$i differs"; }
		fi
	done <"$T/sums"
	check "$1: every clone and kept snapshot reads its bytes ($(wc -l <"$T/sums") rounds)" test $bad = 0
}
verify "after the race"
"$VMB_BIN" gc "$MNT" >/dev/null || notok "a last gc"
unmount_store
check "fsck finds the store clean" "$VMB_BIN" fsck -n "$STORE"
mount_store
verify "after gc and a remount"
unmount_store
finish
