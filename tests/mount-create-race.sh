#!/bin/sh
# mount-create-race.sh: creating a name never opens, truncates or chowns another
# user's file that appears under that name (issue 12 §1).
#
# An unprivileged user (nobody) with write access to a shared bundle directory creates
# a name through an allow_other mount, again and again, while the same user renames a
# victim's mode-0600 file (owned by uid 4242) to that name and back: through a second
# mount of the store, then directly in the store. The daemon must create with O_EXCL
# and own nothing by name: the victim's file is never opened, truncated or chowned
# (its content, size, mtime, owner and mode stay), and the same for a victim's
# directory against mkdir.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

command -v setpriv >/dev/null || skip "no setpriv"
PY=/usr/bin/python3   # not a per-user shim: nobody runs it
[ -x "$PY" ] || skip "no /usr/bin/python3"
vmb_setup
chmod 755 "$T" "$STORE"
mount_store -o allow_other
MNT2=$T/mnt2
mkdir "$MNT2"
( sh -c 'echo $$ >"$0"; exec "$@"' "$T/daemon2.pid" "$VMB_BIN" mount -f --log="$T/log2" \
      -o allow_other "$STORE" "$MNT2"
  echo $? >"$T/daemon2.rc" ) </dev/null >>"$T/daemon2.out" 2>&1 &
on_exit 'grep -q " $MNT2 fuse" /proc/mounts && fusermount3 -uz "$MNT2"; [ -s "$T/daemon2.pid" ] && kill -9 "$(cat "$T/daemon2.pid")" 2>/dev/null; for _ in $(seq 1 50); do [ -e "$T/daemon2.rc" ] && break; sleep 0.1; done'
wait_for 30 mountpoint -q "$MNT2" || { cat "$T/daemon2.out" "$T/log2" 2>/dev/null; fail "the second mount did not appear"; }

mkdir -m 777 "$MNT/shared" || fail "mkdir shared"
V=$STORE/shared/victim
printf 'secret of uid 4242\n' >"$V" || fail "victim"
chown 4242:4242 "$V" && chmod 600 "$V" && touch -d '2020-01-02 03:04:05' "$V" || fail "victim setup"
mkdir -m 700 "$STORE/shared/vdir" && : >"$STORE/shared/vdir/keep" &&
    chown -R 4242:4242 "$STORE/shared/vdir" || fail "victim dir"
before=$(stat -c '%i %u %g %a %s %Y' "$V"; cat "$V"; stat -c '%i %u %g %a' "$STORE/shared/vdir")

INOS="$(stat -c %i "$V") $(stat -c %i "$STORE/shared/vdir")"
cat >"$T/race.py" <<'EOF'
import ctypes, errno, os, sys, time
role, racedir, mntdir, secs = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
victim, vdir = int(sys.argv[5]), int(sys.argv[6])
libc = ctypes.CDLL(None, use_errno=True)
def rename(a, b, flags):
    if libc.renameat2(-100, a.encode(), -100, b.encode(), flags) == 0:
        return 0
    return ctypes.get_errno()
end = time.monotonic() + secs
counts = {}
def count(k):
    counts[k] = counts.get(k, 0) + 1
if role == "racer":
    # Put the victims under the created names and back (never over the victim's name).
    while time.monotonic() < end:
        count(rename(racedir + "/victim", racedir + "/x", 1))        # NOREPLACE
        count(rename(racedir + "/x", racedir + "/victim", 1))
        count(rename(racedir + "/vdir", racedir + "/xd", 0))        # over an empty dir
        count(rename(racedir + "/xd", racedir + "/vdir", 1))
    for a, b in (("x", "victim"), ("xd", "vdir")):
        try:
            if os.lstat(racedir + "/" + a).st_ino in (victim, vdir):
                rename(racedir + "/" + a, racedir + "/" + b, 0)
        except FileNotFoundError:
            pass
    print("renames", counts.get(0, 0))
else:
    while time.monotonic() < end:
        try:
            fd = os.open(mntdir + "/x", os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
        except OSError as e:
            count(errno.errorcode.get(e.errno, e.errno))
        else:
            if os.fstat(fd).st_ino == victim:
                count("OPENED-VICTIM")
                os.close(fd)
            else:
                count("own")
                os.close(fd)
                try:
                    os.unlink(mntdir + "/x")   # only ours can be there (NOREPLACE)
                except OSError:
                    pass
        try:
            os.mkdir(mntdir + "/xd", 0o755)
        except OSError as e:
            count("mkdir-" + errno.errorcode.get(e.errno, str(e.errno)))
        else:
            count("mkdir-own")
            try:
                os.rmdir(mntdir + "/xd")      # the victim's is not empty
            except OSError:
                pass
    print(" ".join("%s=%s" % kv for kv in sorted(counts.items())))
EOF

# race RACEDIR SECONDS: nobody races creates in $MNT/shared against renames in RACEDIR.
race() {
    local out
    setpriv --reuid=65534 --regid=65534 --clear-groups \
        "$PY" "$T/race.py" racer "$1" "$MNT/shared" "$2" $INOS >"$T/racer.out" 2>&1 &
    out=$(setpriv --reuid=65534 --regid=65534 --clear-groups \
        "$PY" "$T/race.py" creator "$STORE/shared" "$MNT/shared" "$2" $INOS 2>&1)
    wait
    say "# creator: $out; racer: $(cat "$T/racer.out")" >&2
    printf '%s\n' "$out"
}

out=$(race "$MNT2/shared" 8)
assert_match "creates raced renames through a second mount" 'own=[0-9]+' "$out"
check "the create path never opened the victim's file (second mount)" \
    sh -c "! printf '%s' '$out' | grep -q OPENED-VICTIM"
out=$(race "$STORE/shared" 8)
assert_match "creates raced renames made directly in the store" 'own=[0-9]+' "$out"
check "the create path never opened the victim's file (store)" \
    sh -c "! printf '%s' '$out' | grep -q OPENED-VICTIM"
after=$(stat -c '%i %u %g %a %s %Y' "$V"; cat "$V"; stat -c '%i %u %g %a' "$STORE/shared/vdir")
assert_eq "the victim's file and directory are unchanged (owner, mode, size, mtime, bytes)" \
    "$before" "$after"
check "nothing is left under the raced names" sh -c "[ ! -e '$STORE/shared/x' ] && [ ! -e '$STORE/shared/xd' ]"

# What nobody creates is nobody's from the start, whatever the umask.
setpriv --reuid=65534 --regid=65534 --clear-groups sh -c \
    "cd '$MNT/shared' && : >f && mkdir d && ln -s f l && mkfifo p 2>/dev/null; true"
assert_eq "a new file, directory and symlink belong to their creator" \
    "65534:65534 65534:65534 65534:65534" \
    "$(stat -c %u:%g "$STORE/shared/f" "$STORE/shared/d" | tr '\n' ' ')$(stat -c %u:%g "$STORE/shared/l")"

fusermount3 -u "$MNT2" || fusermount3 -uz "$MNT2"
wait_for 30 test -e "$T/daemon2.rc"
assert_eq "the second daemon exits with status 0" 0 "$(cat "$T/daemon2.rc" 2>/dev/null)"
check "the second daemon's log has no sanitizer report" sh -c "! grep -Eq '$_VMB_BAD_LOG' '$T/log2' '$T/daemon2.out' 2>/dev/null"
finish
