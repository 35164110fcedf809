#!/bin/sh
# The structural commands on a store (not mounted) with a 16 GiB sparse image:
# clone (O(1): well under 100 ms, no data space, both sides independent through a
# mount), snapshot (path printed, --list, --delete, clone of a snapshot), deps, ls
# own/shared, export of a clone and of a snapshot into an empty store (same
# bytes), flatten (plain
# files: no base xattr, same bytes), gc (what nothing uses), and bad input.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
vmb_setup
command -v getfattr >/dev/null 2>&1 || skip "getfattr is not installed (package attr)"

M=$((1024 * 1024))
G=$((1024 * M))
vmb() { "$VMB_BIN" "$@"; }
run_cmd() {   # OUTFILE CMD...: sets RC
    local out=$1
    shift
    timeout 120 "$@" >"$out" 2>"$out.err" </dev/null
    RC=$?
}
# same_regions A B: same size, and the same bytes in the data regions and around them.
same_regions() {
    local off
    [ "$(stat -c %s "$1")" = "$(stat -c %s "$2")" ] || return 1
    for off in 0 $((8 * G)) $((16 * G - 4 * M)) $((4 * G)) $((12 * G + 123 * M)); do
        cmp -s -n $((4 * M + 4096)) -i $off "$1" "$2" || return 1
    done
}
stored_bytes() { du -s --block-size=1 "$1" | cut -f1; }

# ---- a bundle with a 16 GiB image (12 MiB of data), a small config, a symlink ----
mkdir -p "$STORE/vm/Data"
truncate -s $((16 * G)) "$T/ref.img"
for off in 0 $((8 * G)) $((16 * G - 4 * M)); do
    dd if=/dev/urandom of="$T/ref.img" bs=1M count=4 seek=$((off / M)) conv=notrunc status=none
done
cp --sparse=always "$T/ref.img" "$STORE/vm/disk.img"
printf '{"cpu": 4}\n' >"$STORE/vm/config.json"
chmod 0640 "$STORE/vm/config.json"
setfattr -n user.tag -v hello "$STORE/vm/config.json"
setfattr -n user.big -v imagetag "$STORE/vm/disk.img"
ln -s disk.img "$STORE/vm/Data/link"
touch -d '2020-01-02 03:04:05' "$STORE/vm/disk.img" "$STORE/vm/config.json"

# Files put straight into the store get their maps from fsck, as after any
# direct change; the data is on disk before the clone is timed (a clone never
# copies it, but the freeze syncs a file, which includes its dirty pages).
"$VMB_BIN" fsck "$STORE" >/dev/null
sync -f "$STORE"

# ---- clone ----
# Timed as a whole command, five times; the fastest counts, less the fastest of
# five runs of a command that does nothing ('--version'): the machine running the
# tests is shared, and starting a process on it can take tens of milliseconds.
best=999999
base=999999
for n in 1 2 3 4 5; do
    t0=$(date +%s%N); "$VMB_BIN" --version >/dev/null; t1=$(date +%s%N)
    ms=$(((t1 - t0) / 1000000)); [ $ms -lt $base ] && base=$ms
    before=$(stored_bytes "$STORE")
    t0=$(date +%s%N)
    run_cmd "$T/o" "$VMB_BIN" clone "$STORE" vm vmt$n
    t1=$(date +%s%N)
    after=$(stored_bytes "$STORE")
    assert_eq "clone $n: exit 0" 0 $RC
    assert_eq "clone $n: prints nothing" "" "$(cat "$T/o" "$T/o.err")"
    assert_num "clone $n uses no data space (du grew by $((after - before)) bytes)" \
        $((after - before)) -lt $((256 * 1024))
    ms=$(((t1 - t0) / 1000000))
    [ $ms -lt $best ] && best=$ms
    say "# clone $n of a 16 GiB image (12 MiB of data): $ms ms"
done
say "# fastest clone $best ms; fastest 'vmbundlefs --version' $base ms"
case ${VMB_SAN_CFLAGS:-} in
*sanitize=*) assert_num "clone takes well under a second (sanitizer build): $best ms" $best -lt 1000 ;;
*) assert_num "clone takes well under 100 ms beyond starting the command: $((best - base)) ms" \
       $((best - base)) -lt 100
   assert_num "clone takes under a second in all" $best -lt 1000 ;;
esac
check "a clone is removed like any bundle" rm -rf "$STORE"/vmt[1-5]
"$VMB_BIN" fsck "$STORE" >/dev/null   # the maps of the removed files
run_cmd "$T/o" "$VMB_BIN" clone "$STORE" vm vm2
assert_eq "clone: exit 0" 0 $RC
assert_num "the clone's image has no data of its own (at most an xattr block)" \
    "$(stat -c %b "$STORE/vm2/disk.img")" -le 8
check "the clone's image has a base" getfattr -n trusted.vmbundlefs.base "$STORE/vm2/disk.img"
check_fails "the small file is copied: no base" getfattr -n trusted.vmbundlefs.base "$STORE/vm2/config.json"
check "the small file's bytes" cmp "$STORE/vm/config.json" "$STORE/vm2/config.json"
assert_eq "modes and times kept" "$(stat -c '%a %Y' "$STORE/vm/config.json" "$STORE/vm/disk.img")" \
    "$(stat -c '%a %Y' "$STORE/vm2/config.json" "$STORE/vm2/disk.img")"
assert_eq "user xattrs kept" "hello imagetag" \
    "$(getfattr --only-values -n user.tag "$STORE/vm2/config.json") $(getfattr --only-values -n user.big "$STORE/vm2/disk.img")"
assert_eq "symlink kept" "disk.img" "$(readlink "$STORE/vm2/Data/link")"

# Bad input: clear error, nothing created.
run_cmd "$T/o" "$VMB_BIN" clone "$STORE" vm vm2
assert_eq "clone onto an existing bundle: exit 1" 1 $RC
assert_match "... says it exists" "'vm2' exists" "$(cat "$T/o.err")"
run_cmd "$T/o" "$VMB_BIN" clone "$STORE" nosuch vm3
assert_eq "clone of a missing bundle: exit 1" 1 $RC
assert_match "... names it" "no bundle 'nosuch'" "$(cat "$T/o.err")"
run_cmd "$T/o" "$VMB_BIN" clone "$STORE" vm "a/b"
assert_eq "clone to a bad name: exit 1" 1 $RC
check "nothing was created" test ! -e "$STORE/vm3" -a ! -e "$STORE/a"
assert_eq "no staging leftovers" "" "$(ls "$STORE/.vmbundlefs/staging" 2>/dev/null)"

# ---- snapshot ----
# an empty attribute value, and the value "-" (the manifest's empty mark)
setfattr -n user.empty -v '' "$STORE/vm/config.json"
setfattr -n user.dash -v '-' "$STORE/vm/config.json"
run_cmd "$T/o" "$VMB_BIN" snapshot "$STORE" vm s1
assert_eq "snapshot: exit 0" 0 $RC
assert_eq "snapshot: prints its manifest's path" "$STORE/.vmbundlefs/snapshots/vm@s1" "$(cat "$T/o")"
run_cmd "$T/o" "$VMB_BIN" snapshot "$STORE" vm s1
assert_eq "snapshot with a name taken: exit 1" 1 $RC
for bad in 'a@b' '.x' 'a/b'; do
    run_cmd "$T/o" "$VMB_BIN" snapshot "$STORE" vm "$bad"
    assert_eq "snapshot named '$bad': exit 1" 1 $RC
done
run_cmd "$T/o" "$VMB_BIN" snapshot "$STORE" nosuch
assert_eq "snapshot of a missing bundle: exit 1" 1 $RC
assert_match "... names it" "no bundle 'nosuch'" "$(cat "$T/o.err")"
run_cmd "$T/o" "$VMB_BIN" snapshot --list "$STORE"
assert_eq "snapshot --list: exit 0" 0 $RC
assert_match "snapshot --list: one snapshot" "^vm@s1 +[0-9-]+T[0-9:]+Z +2 +$((16 * G + 11))$" "$(tail -n +2 "$T/o")"
assert_eq "... and only one" 2 "$(wc -l <"$T/o")"
check_fails "... not damaged (an empty attribute value)" grep -q damaged "$T/o"

# ---- through a mount: the clone and the source are independent ----
mount_store
vm2_own=4096   # its config's block; plus what the mount writes below
if ! head -c 4096 "$MNT/vm/disk.img" >/dev/null 2>&1 && grep -q "no layers were given" "$T/log"; then
    say "# SKIP (mount part): this build's mount does not serve files over layers"
else
check "clone reads as the source" same_regions "$T/ref.img" "$MNT/vm2/disk.img"
check "source reads as before" same_regions "$T/ref.img" "$MNT/vm/disk.img"
dd if=/dev/urandom of="$MNT/vm2/disk.img" bs=1M count=1 seek=$((8 * G / M)) conv=notrunc status=none
check "a write to the clone does not show in the source" same_regions "$T/ref.img" "$MNT/vm/disk.img"
cp --sparse=always "$T/ref.img" "$T/clone.img"
dd if="$MNT/vm2/disk.img" of="$T/clone.img" bs=1M count=1 skip=$((8 * G / M)) seek=$((8 * G / M)) conv=notrunc status=none
check "the clone has its write" same_regions "$T/clone.img" "$MNT/vm2/disk.img"
vm2_own=$((M + 4096))
fi
unmount_store

# ---- deps, ls ----
run_cmd "$T/o" "$VMB_BIN" deps "$STORE" vm2
assert_eq "deps: exit 0" 0 $RC
assert_match "deps: a layer shared with vm and vm@s1" "^layer [0-9a-f]{32} [0-9]+ vm,vm@s1$" "$(grep '^layer' "$T/o")"
assert_match "deps: the image and its chain" "^file $((16 * G)) [0-9]+ [0-9a-f]{32} disk.img$" "$(grep '^file' "$T/o")"
run_cmd "$T/o" "$VMB_BIN" deps "$STORE" vm@s1
assert_eq "deps of a snapshot: exit 0" 0 $RC
assert_eq "deps of a snapshot: its two files" 2 "$(grep -c '^file' "$T/o")"
run_cmd "$T/o" "$VMB_BIN" ls -b "$STORE"
assert_eq "ls: exit 0" 0 $RC
cat "$T/o" | sed 's/^/    | /'
assert_match "ls: vm shares its 12 MiB layer" "^vm +$((16 * G + 11)) +4096 +2 +[0-9]+ +$((12 * M))$" "$(grep '^vm ' "$T/o")"
assert_match "ls: vm2 owns its 1 MiB write and its config" "^vm2 +$((16 * G + 11)) +$vm2_own +2 +$vm2_own +$((12 * M))$" "$(grep '^vm2 ' "$T/o")"

# ---- export of the clone into an empty store ----
check "export the clone" vmb export "$STORE" vm2 "$T/vm2.tar"
vmb init "$T/store2" >/dev/null 2>&1
check "import it into an empty store" vmb import "$T/store2" "$T/vm2.tar"
check_fails "the imported image is a plain file" getfattr -n trusted.vmbundlefs.base "$T/store2/vm2/disk.img"
[ $vm2_own = 4096 ] && cp --sparse=always "$T/ref.img" "$T/clone.img"   # no write was made
check "the imported image has the clone's bytes" same_regions "$T/clone.img" "$T/store2/vm2/disk.img"
assert_num "the archive holds the data, not 16 GiB" "$(stat -c %s "$T/vm2.tar")" -lt $((20 * M))

# A file over layers with no hole at all (and a small one) exports whole too.
mkdir "$STORE/full"
dd if=/dev/urandom of="$T/full.ref" bs=1M count=2 status=none
cp "$T/full.ref" "$STORE/full/nvram.bin"
"$VMB_BIN" fsck "$STORE" >/dev/null
check "clone a bundle whose file is all data" vmb clone "$STORE" full full2
check "export that clone" vmb export "$STORE" full2 "$T/full2.tar"
check "import it" vmb import "$T/store2" "$T/full2.tar"
check "the all-data file has its bytes" cmp "$T/full.ref" "$T/store2/full2/nvram.bin"
check "the bundle and its clone go" rm -rf "$STORE/full" "$STORE/full2"
"$VMB_BIN" fsck "$STORE" >/dev/null
run_cmd "$T/o" "$VMB_BIN" gc "$STORE"
assert_match "gc: their layer goes" "^$STORE: 1 layers removed \\(2097152 bytes\\), 2 kept" "$(cat "$T/o")"

# ---- commands at once on a store that is not mounted: one after the other ----
# (the lock is let go once a clone has said it waits: a second or more; a
# loaded machine may start the clones late)
: >"$T/holder.go"
flock -x "$STORE/.vmbundlefs/lock" sh -c 'while [ -e "$0" ]; do sleep 0.05; done' "$T/holder.go" &
holder=$!
sleep 0.2
pids=
for i in 1 2 3; do
    vmb clone "$STORE" vm "par$i" >"$T/par$i.out" 2>"$T/par$i.err" &
    pids="$pids $!"
done
check "... one says it waits, while the lock is held" \
    wait_for 30 grep -q "waiting for another command (or fsck) working on store" "$T/par1.err" "$T/par2.err" "$T/par3.err"
rm -f "$T/holder.go"
rcs=
for p in $pids; do wait "$p"; rcs="$rcs $?"; done
wait "$holder"
assert_eq "three clones at once, the lock held meanwhile (as by fsck): all done" " 0 0 0" "$rcs"
check "... their bundles are there" test -d "$STORE/par1" -a -d "$STORE/par2" -a -d "$STORE/par3"
check "... and go" rm -rf "$STORE/par1" "$STORE/par2" "$STORE/par3"
"$VMB_BIN" fsck "$STORE" >/dev/null   # their maps go too

# ---- export of a snapshot ----
check "export the snapshot vm@s1" vmb export "$STORE" vm@s1 "$T/s1.tar"
vmb init "$T/store3" >/dev/null 2>&1
check "import it into an empty store" vmb import "$T/store3" "$T/s1.tar" vm
check "the snapshot's image, plain" same_regions "$T/ref.img" "$T/store3/vm/disk.img"
check "the snapshot's config" cmp "$STORE/vm/config.json" "$T/store3/vm/config.json"
assert_eq "the snapshot's modes and times" "$(stat -c '%a %Y' "$STORE/vm/config.json" "$STORE/vm/disk.img")" \
    "$(stat -c '%a %Y' "$T/store3/vm/config.json" "$T/store3/vm/disk.img")"
assert_eq "the snapshot's symlink" "disk.img" "$(readlink "$T/store3/vm/Data/link")"
check "clone the snapshot vm@s1" vmb clone "$STORE" vm@s1 fromsnap
assert_eq "the snapshot's empty attribute value" 'user.empty=""' \
    "$(getfattr --absolute-names -n user.empty "$STORE/fromsnap/config.json" 2>&1 | grep user)"
assert_eq "the snapshot's attribute value '-'" "-" \
    "$(getfattr --absolute-names --only-values -n user.dash "$STORE/fromsnap/config.json" 2>&1)"
check "the clone of the snapshot goes" rm -rf "$STORE/fromsnap"
"$VMB_BIN" fsck "$STORE" >/dev/null   # its maps go too
run_cmd "$T/o" "$VMB_BIN" export "$STORE" vm@nosuch "$T/x.tar"
assert_eq "export of a missing snapshot: exit 1" 1 $RC
assert_match "... names it" "no bundle or snapshot 'vm@nosuch'" "$(cat "$T/o.err")"

# ---- flatten ----
run_cmd "$T/o" "$VMB_BIN" flatten "$STORE" vm2
assert_eq "flatten: exit 0" 0 $RC
check "flatten: no file has a base" test -z "$(cd "$STORE/vm2" && find . -type f -exec getfattr --absolute-names -n trusted.vmbundlefs.base {} + 2>/dev/null)"
check "flatten: the plain file has the clone's bytes" same_regions "$T/clone.img" "$STORE/vm2/disk.img"
run_cmd "$T/o" "$VMB_BIN" deps "$STORE" vm2
assert_eq "deps of a flattened bundle: nothing" "" "$(cat "$T/o")"

# ---- gc ----
run_cmd "$T/o" "$VMB_BIN" gc "$STORE"
assert_eq "gc: exit 0" 0 $RC
assert_match "gc: nothing to remove while vm and its snapshot use the layers" "0 layers removed" "$(cat "$T/o")"
run_cmd "$T/o" "$VMB_BIN" snapshot --delete "$STORE" vm@s1
assert_eq "snapshot --delete: exit 0" 0 $RC
run_cmd "$T/o" "$VMB_BIN" snapshot --delete "$STORE" vm@s1
assert_eq "snapshot --delete again: exit 1" 1 $RC
run_cmd "$T/o" "$VMB_BIN" flatten "$STORE" vm
run_cmd "$T/o" "$VMB_BIN" gc "$STORE"
assert_eq "gc: exit 0" 0 $RC
assert_match "gc: the layers nothing uses are removed" "^$STORE: [1-9][0-9]* layers removed \([1-9][0-9]* bytes\), 0 kept" "$(cat "$T/o")"
assert_eq "no layer left" "" "$(ls "$STORE/.vmbundlefs/layers")"
check "the source still reads the same" same_regions "$T/ref.img" "$STORE/vm/disk.img"
run_cmd "$T/o" "$VMB_BIN" fsck -n "$STORE"
assert_eq "fsck: clean" 0 $RC

# ---- a store copied without vmbundlefs: said once when it has layers ----
vmb init "$T/cs" >/dev/null
mkdir "$T/cs/p" && truncate -s 8M "$T/cs/p/disk.img"
cp -r --sparse=always "$T/cs" "$T/cs-plain"
check "clone in the store to copy" vmb clone "$T/cs" p pc
cp -r --sparse=always "$T/cs" "$T/cs-copy"
mkdir "$T/cm"
on_exit 'mountpoint -q "$T/cm" && fusermount3 -uz "$T/cm"'
for round in 1 2; do
    check "mount the copy (round $round)" vmb mount --log="$T/cs-log$round" "$T/cs-copy" "$T/cm"
    fusermount3 -u "$T/cm"
done
assert_match "the first mount of the copy says it is one, with layers" \
    "store '.*cs-copy' is a copy \\(or a restore\\) made without vmbundlefs, and has 1 layers" \
    "$(cat "$T/cs-log1")"
assert_eq "... once" "" "$(grep -c 'is a copy' "$T/cs-log2" | grep -v '^0$')"
check "mount the copy of a store with no layers" vmb mount --log="$T/cs-logp" "$T/cs-plain" "$T/cm"
fusermount3 -u "$T/cm"
check_fails "... says nothing of it" grep -q 'is a copy' "$T/cs-logp"
check "mount the store itself" vmb mount --log="$T/cs-logo" "$T/cs" "$T/cm"
fusermount3 -u "$T/cm"
check_fails "... says nothing of it either" grep -q 'is a copy' "$T/cs-logo"
finish
