#!/bin/bash
# contrib/demo.sh - a demo store with three sample VM bundles, mounted.
#
#   VMB_BIN=./build/vmbundlefs contrib/demo.sh
#
# Creates (and on every run re-creates) a store in $DEMO_DIR/store (default
# /var/tmp/vmbundlefs-demo/store), mounts it at $DEMO_DIR/mnt, and writes through
# the mount:
#   tart-macos/     Tart-like: config.json, disk.img (16 GiB, ~300 MiB data), nvram.bin
#   ubuntu.utm/     UTM-like: config.plist, Data/<UUID>.img (64 GiB, ~100 MiB data),
#                   Data/efi_vars.fd
#   lima-default/   Lima-like: lima.yaml, basedisk (10 GiB), diffdisk (100 GiB)
# then shows the store's listing and what to try. Needs root or FUSE access.
#
# Environment: VMB_BIN (default ./build/vmbundlefs), DEMO_DIR (default
# /var/tmp/vmbundlefs-demo), DEMO_STORE / DEMO_MNT (default $DEMO_DIR/store, /mnt).
set -euo pipefail

VMB_BIN=${VMB_BIN:-./build/vmbundlefs}
DEMO_DIR=${DEMO_DIR:-/var/tmp/vmbundlefs-demo}
STORE=${DEMO_STORE:-$DEMO_DIR/store}
MNT=${DEMO_MNT:-$DEMO_DIR/mnt}
LOG=$DEMO_DIR/vmbundlefs.log

MiB=$((1024 * 1024))
GiB=$((1024 * MiB))

die() {
	echo "demo.sh: $*" >&2
	exit 1
}
step() { printf '\n==> %s\n' "$*"; }
trap 'echo "demo.sh: failed at line $LINENO (daemon log: $LOG)" >&2' ERR

[ -x "$VMB_BIN" ] || die "no vmbundlefs binary at '$VMB_BIN' (build first, or set VMB_BIN)"
VMB_BIN=$(cd "$(dirname "$VMB_BIN")" && pwd -P)/$(basename "$VMB_BIN")
vmb() { "$VMB_BIN" "$@"; }

is_mounted() { mountpoint -q "$1" 2>/dev/null; }

# write_data FILE OFFSET_MIB LENGTH_MIB: LENGTH MiB of random data at OFFSET, in place.
write_data() {
	dd if=/dev/urandom of="$1" bs=1M seek="$2" count="$3" conv=notrunc iflag=fullblock \
		status=none
}

# ------------------------------------------------------------ a clean slate

mkdir -p "$DEMO_DIR"
if is_mounted "$MNT"; then
	step "unmounting the previous demo at $MNT"
	fusermount3 -u "$MNT" 2>/dev/null || umount "$MNT" 2>/dev/null ||
		fusermount3 -u -z "$MNT" 2>/dev/null || umount -l "$MNT"
	for _ in $(seq 50); do
		is_mounted "$MNT" || break
		sleep 0.1
	done
	is_mounted "$MNT" && die "$MNT is still mounted"
fi
# A mount point left behind by a killed daemon reports ENOTCONN; clear it.
if ! stat "$MNT" >/dev/null 2>&1 && grep -qF " $MNT " /proc/self/mounts; then
	fusermount3 -u -z "$MNT" 2>/dev/null || umount -l "$MNT"
fi
rm -rf --one-file-system "$STORE"
mkdir -p "$(dirname "$STORE")" "$MNT"
: >"$LOG"

step "vmbundlefs init $STORE"
vmb init "$STORE"

step "vmbundlefs mount --log=$LOG $STORE $MNT"
vmb mount --log="$LOG" "$STORE" "$MNT"
is_mounted "$MNT" || die "vmbundlefs mount returned but $MNT is not a mount point"

# ------------------------------------------------------------ tart-macos/ (Tart)

step "creating tart-macos/ (Tart-like macOS VM: 16 GiB disk, ~300 MiB data)"
B=$MNT/tart-macos
mkdir "$B"
cat >"$B/config.json" <<'EOF'
{
  "version" : 1,
  "os" : "darwin",
  "arch" : "arm64",
  "cpuCountMin" : 4,
  "cpuCount" : 4,
  "memorySizeMin" : 4294967296,
  "memorySize" : 8589934592,
  "macAddress" : "7e:3a:51:9c:04:d2",
  "display" : {
    "width" : 1024,
    "height" : 768
  },
  "hardwareModel" : "YnBsaXN0MDDTAQIDBAUGXxAZRGF0YVJlcHJlc2VudGF0aW9uVmVyc2lvbl8QD1BsYXRmb3JtVmVyc2lvbl8QEk1pbmltdW1TdXBwb3J0ZWRPUxQAAAAAAAAAAAAAAAAAAAABEAKjBwgJEA0QAAgPKztSY2VnAAAAAAAAAQEAAAAAAAAACgAAAAAAAAAAAAAAAAAAAGs=",
  "ecid" : "YnBsaXN0MDDRAQJURUNJRBMAAAAAAAAAAAAAAAgLEAAAAAAAAAEBAAAAAAAAAAMAAAAAAAAAAAAAAAAAAAAZ",
  "diskFormat" : "raw"
}
EOF
truncate -s 16G "$B/disk.img"
# Scattered like a real APFS container: start, metadata, system, data volumes.
for extent in 0:64 1024:32 3072:48 5120:40 8192:56 12288:36 15872:24; do
	write_data "$B/disk.img" "${extent%%:*}" "${extent##*:}"
done
head -c $((128 * 1024)) /dev/urandom >"$B/nvram.bin"

# ------------------------------------------------------------ ubuntu.utm/ (UTM)

step "creating ubuntu.utm/ (UTM-like Linux VM: 64 GiB disk, ~100 MiB data)"
UUID=3F1C9A52-6B0E-4D7A-9E21-58C4B7D0A613
B=$MNT/ubuntu.utm
mkdir -p "$B/Data"
cat >"$B/config.plist" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Backend</key>
	<string>QEMU</string>
	<key>ConfigurationVersion</key>
	<integer>4</integer>
	<key>Drive</key>
	<array>
		<dict>
			<key>Identifier</key>
			<string>$UUID</string>
			<key>ImageName</key>
			<string>$UUID.img</string>
			<key>ImageType</key>
			<string>Disk</string>
			<key>Interface</key>
			<string>VirtIO</string>
			<key>ReadOnly</key>
			<false/>
		</dict>
	</array>
	<key>Information</key>
	<dict>
		<key>Name</key>
		<string>ubuntu</string>
		<key>UUID</key>
		<string>8D2E41B7-0C93-4F5A-A6E8-2B17C9D4F380</string>
	</dict>
	<key>System</key>
	<dict>
		<key>Architecture</key>
		<string>aarch64</string>
		<key>CPUCount</key>
		<integer>4</integer>
		<key>MemorySize</key>
		<integer>4096</integer>
		<key>Target</key>
		<string>virt</string>
	</dict>
	<key>QEMU</key>
	<dict>
		<key>UEFIBoot</key>
		<true/>
		<key>RNGDevice</key>
		<true/>
	</dict>
</dict>
</plist>
EOF
truncate -s 64G "$B/Data/$UUID.img"
for extent in 0:40 2048:16 16384:24 40960:12 65000:8; do
	write_data "$B/Data/$UUID.img" "${extent%%:*}" "${extent##*:}"
done
truncate -s 64M "$B/Data/efi_vars.fd"
write_data "$B/Data/efi_vars.fd" 0 2

# ------------------------------------------------------------ lima-default/ (Lima)

step "creating lima-default/ (Lima-like: 10 GiB base disk, 100 GiB diff disk)"
B=$MNT/lima-default
mkdir "$B"
cat >"$B/lima.yaml" <<'EOF'
# Lima instance "default"
vmType: qemu
arch: x86_64
cpus: 4
memory: "4GiB"
disk: "100GiB"
images:
  - location: "/var/lib/images/ubuntu-24.04-server-cloudimg-amd64.img"
    arch: "x86_64"
mounts:
  - location: "~"
  - location: "/tmp/lima"
    writable: true
containerd:
  system: false
  user: true
ssh:
  localPort: 60022
  loadDotSSHPubKey: true
EOF
truncate -s 10G "$B/basedisk"
for extent in 0:24 1024:8 6144:8; do
	write_data "$B/basedisk" "${extent%%:*}" "${extent##*:}"
done
truncate -s 100G "$B/diffdisk"
write_data "$B/diffdisk" 0 4
write_data "$B/diffdisk" 51200 4
printf 'default\n' >"$B/instance-id"

# Make the maps durable, so that the store's listing below is current.
find "$MNT" -type f -exec sync {} +

# ------------------------------------------------------------ show it

step "vmbundlefs ls $STORE"
vmb ls "$STORE"

step "vmbundlefs ls -b $STORE"
vmb ls -b "$STORE"

step "files in the mount: logical size (du --apparent-size) vs allocated (du)"
(cd "$MNT" && du -sh --apparent-size -- */ && echo "--- allocated:" && du -sh -- */)

step "the disk images"
(cd "$MNT" && ls -lsh -- tart-macos/disk.img "ubuntu.utm/Data/$UUID.img" \
	lima-default/basedisk lima-default/diffdisk)

total_logical=$(du -sb --apparent-size "$MNT" | cut -f1)
total_alloc=$(du -sB1 "$MNT" | cut -f1)
printf '\n%s GiB logical, %s MiB allocated.\n' \
	$((total_logical / GiB)) $((total_alloc / MiB))

cat <<EOF

The demo store is mounted at $MNT (store: $STORE, daemon log: $LOG).
Things to try:

  # copy a 16 GiB disk out of the mount: cp finds the data with SEEK_DATA/SEEK_HOLE
  # and reads only the ~300 MiB that exist
  time cp --sparse=always $MNT/tart-macos/disk.img /var/tmp/disk-copy.img
  ls -ls /var/tmp/disk-copy.img

  # archive a bundle with its holes kept (GNU tar sparse members)
  time tar --sparse -cf /var/tmp/utm.tar -C $MNT ubuntu.utm && ls -lh /var/tmp/utm.tar

  # rsync -S keeps holes at the receiver, but reads every hole (they cost no disk
  # I/O here, but rsync still scans 16 GiB of zeros: a minute or two)
  time rsync -aS $MNT/tart-macos/ /var/tmp/tart-copy/

  # a copy inside the mount: only the data extents are read and written
  time cp --sparse=always $MNT/lima-default/diffdisk $MNT/lima-default/diffdisk.bak

  # bundles are directories: mkdir, mv and rm -r work at the top level
  mkdir $MNT/scratch && mv $MNT/scratch $MNT/scratch2 && rmdir $MNT/scratch2

  # the store itself is a plain directory, usable without vmbundlefs
  ls -lsR $STORE | head -20
  $VMB_BIN ls -b $STORE

  # unmount (re-run this script to start over)
  fusermount3 -u $MNT
EOF
