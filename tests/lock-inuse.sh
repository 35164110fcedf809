#!/bin/sh
# In-use enforcement: while a bundle's aux-storage file (or, under the default rule,
# any of its files) is locked (any kind), the bundle is in use: removing, renaming, replacing and truncating anything in it fail
# with EBUSY (except for the holder's own process) and the daemon log names the
# holder; readers are never blocked; `vmbundlefs ls` and the user.vmbundlefs.lock
# xattr name the holder; aux-storage names come from the defaults, the store's
# .vmbundlefs/aux-patterns and -o aux_patterns; the narrower aux-only rule comes from
# .vmbundlefs/in-use or -o in_use=aux (the last three checks of each patterns section
# used to hold under the default; since issue 9 they need that rule).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
. "$(dirname "$0")/lock-lib.sh"
mount_store
XA=user.vmbundlefs.lock

make_bundle() {   # make_bundle DIR [AUXNAME]
    mkdir -p "$1/sub/deeper" "$1/emptydir" || fail "mkdir $1"
    echo '{"name": "vm", "cpus": 2}' >"$1/config.json"
    truncate -s 8M "$1/disk.img"
    head -c 300000 /dev/urandom | dd of="$1/disk.img" bs=4096 seek=100 conv=notrunc 2>/dev/null
    head -c 131072 /dev/urandom >"$1/${2:-nvram.bin}"
    echo note >"$1/sub/deeper/notes.txt"
    echo other >"$1/spare.txt"
}

busy() {   # busy DESC CMD...: CMD fails and says "Device or resource busy"
    local desc=$1 out rc
    shift
    out=$("$@" 2>&1)
    rc=$?
    if [ $rc -ne 0 ] && printf '%s' "$out" | grep -q 'Device or resource busy'; then
        ok "$desc"
    else
        notok "$desc" "command: $*" "exit status $rc (want non-zero with EBUSY), output:" "$(printf '%s\n' "$out" | head -n 5)"
    fi
}

make_bundle "$MNT/vm"
make_bundle "$MNT/other"
sum_before=$(cd "$STORE/vm" && find . -type f | sort | xargs sha256sum)
size_before=$(st_size "$MNT/vm/disk.img")

# ---- in use: every structural change refused ----
lh_bg H "$MNT/vm/nvram.bin" 'ofd w 0 0' 'hold'
wait_out H '^holding' || fail "holder did not start"
HP=$(pid_of H)
busy "rm of a file of an in-use bundle" rm "$MNT/vm/config.json"
check "... the file is still there" test -f "$MNT/vm/config.json"
assert_match "... the daemon log names the holder" \
    "refused to remove 'vm/config.json': bundle 'vm' is in use: pid $HP \(lockhelper\) holds a lock on 'vm/nvram.bin'" \
    "$(grep refused "$T/log" | tail -n 1)"
busy "rm of the aux-storage file itself" rm "$MNT/vm/nvram.bin"
busy "rm of a file in a subdirectory" rm "$MNT/vm/sub/deeper/notes.txt"
busy "rmdir of an empty subdirectory" rmdir "$MNT/vm/emptydir"
busy "rm -r of the bundle" rm -r "$MNT/vm"
check "... every file of the bundle is still there" test -f "$MNT/vm/config.json" -a -f "$MNT/vm/disk.img" -a -f "$MNT/vm/nvram.bin" -a -f "$MNT/vm/sub/deeper/notes.txt" -a -d "$MNT/vm/emptydir"
busy "mv of the bundle" mv "$MNT/vm" "$MNT/vm-renamed"
check "... the bundle keeps its name" test -d "$MNT/vm" -a ! -e "$MNT/vm-renamed"
busy "mv of a file within the bundle" mv "$MNT/vm/config.json" "$MNT/vm/config.old"
busy "mv of a file out of the bundle" mv "$MNT/vm/spare.txt" "$MNT/other/spare-from-vm.txt"
busy "mv of another bundle's file over a file of the bundle" mv "$MNT/other/config.json" "$MNT/vm/config.json"
check "... the other bundle's file is still there" test -f "$MNT/other/config.json"
busy "mv of a file of the bundle over another of its files" mv "$MNT/vm/spare.txt" "$MNT/vm/config.json"
busy "mv of a bundle over the in-use bundle" sh -c "mkdir '$MNT/empty' && mv -T '$MNT/empty' '$MNT/vm'"
# a new name elsewhere would take the in-use mark (or the aux storage) out of it
busy "ln of the locked aux-storage file within the bundle" ln "$MNT/vm/nvram.bin" "$MNT/vm/nv-link"
busy "ln of another file of the bundle within it" ln "$MNT/vm/spare.txt" "$MNT/vm/spare-link"
expect_errno "ln into another bundle: EXDEV, in use or not" EXDEV vmbio link "$MNT/vm/spare.txt" "$MNT/other/spare-link"
busy "... the bundle is still in use after them: rm refused" rm "$MNT/vm/spare.txt"
check "... and no link was made" test ! -e "$MNT/vm/nv-link" -a ! -e "$MNT/vm/spare-link" -a ! -e "$MNT/other/spare-link"
rmdir "$MNT/empty" 2>/dev/null
busy "truncate -s 0 of the disk image" truncate -s 0 "$MNT/vm/disk.img"
busy "truncate -s (grow) of the disk image" truncate -s 16M "$MNT/vm/disk.img"
busy "O_TRUNC of the disk image (shell '>')" sh -c ": > '$MNT/vm/disk.img'"
busy "O_TRUNC of config.json (shell '>')" sh -c "echo '{}' > '$MNT/vm/config.json'"
busy "truncate of the aux-storage file" truncate -s 0 "$MNT/vm/nvram.bin"
assert_eq "the disk image keeps its size" "$size_before" "$(st_size "$MNT/vm/disk.img")"
assert_eq "nothing in the bundle changed" "$sum_before" "$(cd "$STORE/vm" && find . -type f | sort | xargs sha256sum)"
assert_match "the log has a line for a refused rename" "refused to rename 'vm/config.json': bundle 'vm' is in use: pid $HP \(lockhelper\)" "$(grep refused "$T/log")"
assert_match "the log has a line for a refused truncate" "refused to truncate 'vm/disk.img': bundle 'vm' is in use: pid $HP \(lockhelper\)" "$(grep refused "$T/log")"

# what stays allowed
check "the VM may write into its disk image" vmbio pwrite "$MNT/vm/disk.img" 4096 4096 p7
check "the VM may write its aux storage" vmbio pwrite "$MNT/vm/nvram.bin" 0 512 p8
check "another bundle can still be changed" sh -c "mv '$MNT/other/spare.txt' '$MNT/other/spare2.txt' && rm '$MNT/other/spare2.txt'"

# ---- readers are not blocked ----
check "cp -a of the in-use bundle" cp -a "$MNT/vm" "$T/copy"
check "... the copy matches" diff -r "$MNT/vm" "$T/copy"
check "tar -cf of the in-use bundle" tar -C "$MNT" -cf "$T/vm.tar" vm
check "tar --sparse -cf of the in-use bundle" tar -C "$MNT" --sparse -cf "$T/vm-sparse.tar" vm
check "rsync -a of the in-use bundle" rsync -a "$MNT/vm/" "$T/rsync/"
assert_eq "sha256sum through the mount equals the backing files'" \
    "$(cd "$STORE/vm" && find . -type f | sort | xargs sha256sum)" \
    "$(cd "$MNT/vm" && find . -type f | sort | xargs sha256sum)"
check "the locked aux-storage file itself can be read" cmp "$MNT/vm/nvram.bin" "$STORE/vm/nvram.bin"

# ---- who holds it: ls and xattr ----
ls_out=$("$VMB_BIN" ls "$STORE" 2>&1)
assert_match "vmbundlefs ls marks the bundle in use with pid and command" "^vm .*in use by pid $HP \(lockhelper\)" "$ls_out"
check "vmbundlefs ls does not mark the other bundle" sh -c "printf '%s\n' \"\$1\" | grep '^other ' | grep -vq 'in use'" sh "$ls_out"
assert_eq "the xattr on the locked file names the holder" "pid $HP (lockhelper) holds a write lock" "$(vmbio getxattr "$MNT/vm/nvram.bin" $XA 2>&1)"
expect_errno "the xattr on an unlocked file: ENODATA" ENODATA vmbio getxattr "$MNT/vm/config.json" $XA

# ---- the holder's own process may change its bundle ----
lh_kill H
lh_bg H "$MNT/vm/nvram.bin" 'ofd w 0 0' 'hold' \
    "rename $MNT/vm/spare.txt $MNT/vm/spare.old" "unlink $MNT/vm/spare.old" \
    "trunc $MNT/vm/disk.img 4194304" "otrunc $MNT/vm/config.json" \
    "rmdir $MNT/vm/emptydir" 'hold'
wait_out H '^holding' || fail "holder did not start"
busy "(another process is still refused)" rm "$MNT/vm/spare.txt"
kill -USR1 "$(pid_of H)"
wait_lines H 8 5
assert_eq "the holder may rename, remove, truncate, O_TRUNC and rmdir in its own bundle" \
    "ok ok ok ok ok" "$(out_of H | sed -n 4,8p | tr '\n' ' ' | sed 's/ $//')"
lh_kill H

# a multithreaded holder: the lock taken by one thread, the change made by another
echo thr >"$MNT/vm/thr.txt"
lh_bg H "$MNT/vm/nvram.bin" 'tposix w 0 0' 'hold' "rename $MNT/vm/thr.txt $MNT/vm/thr.old" \
    "rename $MNT/vm/thr.old $MNT/vm/thr.txt" 'hold'
wait_out H '^holding' || fail "holder did not start"
busy "(a lock taken by a thread: another process is refused)" rm "$MNT/vm/thr.txt"
assert_match "... the log names the holder's pid (not its thread's id)" "is in use: pid $(pid_of H) \\(lockhelper\\) holds a lock" "$(grep refused "$T/log" | tail -n 1)"
assert_match "... vmbundlefs ls names the holder's pid" "^vm .*in use by pid $(pid_of H) \\(lockhelper\\)" "$("$VMB_BIN" ls "$STORE" 2>&1)"
kill -USR1 "$(pid_of H)"
wait_lines H 6 5
assert_eq "a lock taken by one thread: another thread of the holder may rename" "ok ok" "$(out_of H | sed -n 4,5p | tr '\n' ' ' | sed 's/ $//')"
lh_kill H

# ---- released: everything allowed again, ls and xattr clear ----
sleep 0.1
assert_eq "after the holder's SIGKILL: no xattr" ENODATA "$(vmbio getxattr "$MNT/vm/nvram.bin" $XA 2>/dev/null)"
check "after the holder's SIGKILL: ls does not mark the bundle" sh -c "! '$VMB_BIN' ls '$STORE' | grep '^vm ' | grep -q 'in use'"
check "after the holder's SIGKILL: mv of a file" mv "$MNT/vm/sub/deeper/notes.txt" "$MNT/vm/sub/notes.txt"
check "after the holder's SIGKILL: truncate" truncate -s 1M "$MNT/vm/disk.img"

# ---- every lock kind makes the bundle in use ----
for spec in 'posix r 0 0:read' 'posix w 0 1:write' 'ofd r 100 1:read' 'flock sh:flock' 'flock ex:flock'; do
    lk=${spec%%:*} word=${spec##*:}
    lh_bg H "$MNT/vm/nvram.bin" "$lk" 'hold'
    wait_out H '^holding' || fail "holder ($lk) did not start"
    busy "in use while the aux file has a '$lk' lock: rm refused" rm "$MNT/vm/sub/notes.txt"
    assert_eq "... xattr says '$word'" "pid $(pid_of H) (lockhelper) holds a $word lock" "$(vmbio getxattr "$MNT/vm/nvram.bin" $XA 2>&1)"
    assert_match "... ls names the holder" "^vm .*in use by pid $(pid_of H) \(lockhelper\)" "$("$VMB_BIN" ls "$STORE" 2>&1)"
    lh_kill H
done
lh_bg H "$STORE/vm/nvram.bin" 'posix w 0 0' 'hold'
wait_out H '^holding' || fail "direct holder did not start"
busy "in use while the backing aux file is locked directly: rm refused" rm "$MNT/vm/sub/notes.txt"
assert_match "... the log names the direct holder" "pid $(pid_of H) \(lockhelper\) holds a lock on 'vm/nvram.bin'" "$(grep refused "$T/log" | tail -n 1)"
lh_kill H
lh_bg H "$MNT/vm/disk.img" 'ofd w 0 0' 'hold'
wait_out H '^holding' || fail "holder did not start"
busy "default rule: a lock on a file that is not aux storage makes the bundle in use too" mv "$MNT/vm/sub/notes.txt" "$MNT/vm/sub/notes2.txt"
lh_kill H

# ---- default names ----
for name in AuxiliaryStorage efi_vars.fd my.nvram OVMF_VARS.fd; do
    make_bundle "$MNT/b-$name" "$name"
    lh_bg H "$MNT/b-$name/$name" 'flock ex' 'hold'
    wait_out H '^holding' || fail "holder did not start"
    busy "default aux name '$name': in use while locked" rm "$MNT/b-$name/config.json"
    lh_kill H
    check "... removable after release" rm -r "$MNT/b-$name"
done

# ---- patterns from the store's .vmbundlefs/aux-patterns ----
unmount_store
printf '# test patterns\nvmstate.dat\n*.uefivars\n' >"$STORE/.vmbundlefs/aux-patterns"
printf '# only aux-storage locks\nrule aux\n' >"$STORE/.vmbundlefs/in-use"
mount_store
make_bundle "$MNT/s1" vmstate.dat
lh_bg H "$MNT/s1/vmstate.dat" 'ofd w 0 0' 'hold'
wait_out H '^holding' || fail "holder did not start"
busy "store aux-patterns: a locked 'vmstate.dat' makes the bundle in use" rm "$MNT/s1/config.json"
lh_kill H
make_bundle "$MNT/s2" x.uefivars
lh_bg H "$MNT/s2/x.uefivars" 'posix w 0 0' 'hold'
wait_out H '^holding' || fail "holder did not start"
busy "store aux-patterns: a locked '*.uefivars' makes the bundle in use" mv "$MNT/s2" "$MNT/s2b"
assert_match "store aux-patterns: vmbundlefs ls uses them" "^s2 .*in use by pid $(pid_of H)" "$("$VMB_BIN" ls "$STORE" 2>&1)"
lh_kill H
lh_bg H "$MNT/s1/spare.txt" 'ofd w 0 0' 'hold'
wait_out H '^holding' || fail "holder did not start"
check "store aux-patterns and 'rule aux': a locked file matching no pattern does not" rm "$MNT/s1/config.json"
check "... and vmbundlefs ls does not call the bundle in use" sh -c "! '$VMB_BIN' ls '$STORE' | grep '^s1 ' | grep -q 'in use'"
lh_kill H
rm -f "$STORE/.vmbundlefs/aux-patterns" "$STORE/.vmbundlefs/in-use"

# ---- patterns from -o aux_patterns ----
unmount_store
mount_store -o 'aux_patterns=*.aux:efi.store,in_use=aux'
make_bundle "$MNT/o1" vm.aux
make_bundle "$MNT/o2" efi.store
lh_bg H "$MNT/o1/vm.aux" 'flock ex' 'hold'
wait_out H '^holding' || fail "holder did not start"
busy "-o aux_patterns: a locked '*.aux' makes the bundle in use" rm "$MNT/o1/disk.img"
lh_kill H
lh_bg H "$MNT/o2/efi.store" 'ofd r 0 0' 'hold'
wait_out H '^holding' || fail "holder did not start"
busy "-o aux_patterns: a locked 'efi.store' makes the bundle in use" truncate -s 0 "$MNT/o2/disk.img"
lh_kill H
lh_bg H "$MNT/o1/spare.txt" 'ofd w 0 0' 'hold'
wait_out H '^holding' || fail "holder did not start"
check "-o aux_patterns,in_use=aux: a locked file matching no pattern does not" rm "$MNT/o1/config.json"
lh_kill H

# ---- a hard link of a locked file in another bundle (made in the store directly:
# the mount refuses one, EXDEV) ----
# Looking up the other name used to move the file (and its lock) to the other
# bundle: the VM's bundle could then be renamed and emptied under it.
make_bundle "$MNT/h1" vm.aux   # this mount's aux pattern (*.aux)
make_bundle "$MNT/h2"
expect_errno "a hard link into another bundle, not in use: EXDEV" EXDEV vmbio link "$MNT/h1/vm.aux" "$MNT/h2/nv-link"
ln "$STORE/h1/vm.aux" "$STORE/h2/nv-link" || fail "ln in the store"
lh_bg H "$MNT/h1/vm.aux" 'ofd w 0 0' 'hold'
wait_out H '^holding' || fail "holder did not start"
for k in 1 2 3; do cat "$MNT/h2/nv-link" >/dev/null; stat "$MNT/h2/nv-link" >/dev/null; done
busy "the other name looked up while the file is locked: the bundle it was opened in stays in use" mv "$MNT/h1" "$MNT/h1-renamed"
busy "... its aux file cannot be removed" rm "$MNT/h1/vm.aux"
busy "... nor the file truncated through the other name" truncate -s 0 "$MNT/h2/nv-link"
assert_match "ls: the bundle opened is in use" "^h1 .*in use by pid $(pid_of H) \(lockhelper\)" "$("$VMB_BIN" ls "$STORE" | grep '^h1 ')"
assert_eq "ls: the other bundle is not" "" "$("$VMB_BIN" ls "$STORE" | grep '^h2 ' | grep -o 'in use.*')"
check "the other bundle's name can go (the file keeps its first name)" rm "$MNT/h2/nv-link"
lh_kill H
check "with the lock gone, h1 can be renamed" mv "$MNT/h1" "$MNT/h1-renamed"

# ---- a bad rule is refused with a clear message ----
unmount_store
printf 'rule sometimes\n' >"$STORE/.vmbundlefs/in-use"
out=$("$VMB_BIN" ls "$STORE" 2>&1)
assert_match "a malformed .vmbundlefs/in-use: ls says what it found and expects" "unknown in-use rule 'sometimes' \(expected 'any'" "$out"
rm -f "$STORE/.vmbundlefs/in-use"
out=$("$VMB_BIN" mount -o in_use=maybe "$STORE" "$MNT" 2>&1); rc=$?
check "-o in_use=maybe is refused" test "$rc" -ne 0
assert_match "... naming the option" "in_use=maybe" "$out"
mount_store

lh_cleanup
finish
