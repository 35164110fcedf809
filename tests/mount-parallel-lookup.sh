#!/bin/sh
# Lookups and readdirs of one directory side by side (FUSE_PARALLEL_DIROPS, see
# fs/fuse_io.c): threads stat existing and missing names, list and walk the mount's
# root (many bundles), a bundle (many files and hard links), a layered bundle and
# the snapshot view, all at once, while others create, write, rename and remove
# files and bundles, and snapshot, clone, snapshot --delete and gc run through the
# CLI. Then: no lookup of an existing name failed, no missing name was found, the
# same name gave the same st_ino each time (nothing renames those), hard links one
# st_ino, every file's bytes are right (live, clones, the snapshot view), the
# daemon lived, its log holds no sanitizer report, and fsck is clean.
# The daemon keeps few idle descriptors (-o idle_fds=8,open_fds=2, unless
# VMB_TEST_MOUNT_OPTS says otherwise): lookups bring parked nodes back all the time.
# VMB_STRESS_SECONDS (default 12) sets how long the storm lasts.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
command -v python3 >/dev/null || skip "python3 is not installed"
SECS=${VMB_STRESS_SECONDS:-12}
export VMB_TEST_MOUNT_OPTS=${VMB_TEST_MOUNT_OPTS-idle_fds=8,open_fds=2}
NB=40      # bundles at the root
NF=60      # files in the fixed bundle (and hard links to the first NH of them)
NH=20
NG=30      # files in the layered bundle
mount_store

# ---- the tree ----
for i in $(seq -w 0 $((NB - 1))); do
    mkdir "$MNT/r$i" && printf 'bundle r%s\n' "$i" >"$MNT/r$i/x" || fail "make bundle r$i"
done
mkdir "$MNT/fixed" "$MNT/fixed/sub" "$MNT/big" || fail mkdir
for i in $(seq -w 0 $((NF - 1))); do
    printf 'fixed file %s\n' "$i" >"$MNT/fixed/f$i" || fail "write f$i"
    printf 'sub file %s\n' "$i" >"$MNT/fixed/sub/s$i" || fail "write s$i"
done
for i in $(seq -w 0 $((NH - 1))); do
    ln "$MNT/fixed/f$i" "$MNT/fixed/h$i" || fail "link h$i"
done
for i in $(seq 0 $((NG - 1))); do
    "$VMBIO" pwrite "$MNT/big/g$i" 0 $((4096 + i * 1024)) p$((i + 1)) >/dev/null || fail "write g$i"
done
for i in $(seq 0 9); do ln "$MNT/big/g$i" "$MNT/big/l$i" || fail "link l$i"; done
"$VMBIO" pwrite "$MNT/big/disk.img" 0 $((4 * 1024 * 1024)) p99 >/dev/null || fail "write disk.img"
out=$("$VMB_BIN" snapshot "$MNT" big s0 2>&1)
assert_eq "snapshot big@s0 (a layered bundle)" 0 $? || say "$out"
"$VMBIO" pwrite "$MNT/big/disk.img" $((1024 * 1024)) 65536 p77 >/dev/null || fail "write over the layer"

t0=$(date +%s%N)
"$VMB_BIN" snapshot "$MNT" big idle >/dev/null 2>&1 || fail "snapshot big@idle"
"$VMB_BIN" clone "$MNT" big cidle >/dev/null 2>&1 || fail "clone cidle"
"$VMB_BIN" clone "$MNT" big@idle didle >/dev/null 2>&1 || fail "clone didle"
idle_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
rm -rf "$MNT/cidle" "$MNT/didle"
"$VMB_BIN" snapshot --delete "$MNT" big@idle >/dev/null 2>&1 || fail "snapshot --delete big@idle"
say "# snapshot and two clones, nothing else running: $idle_ms ms"

# ---- the storm ----
cat >"$T/storm.py" <<'EOF'
import errno, fcntl, os, random, stat, sys, threading, time
mnt, secs, nb, nf, nh, ng = sys.argv[1], float(sys.argv[2]), *map(int, sys.argv[3:7])
end = time.time() + secs
errs, lock = [], threading.Lock()
counts = {}
def bad(msg):
    with lock:
        if len(errs) < 40:
            errs.append(msg)
def count(k):
    with lock:
        counts[k] = counts.get(k, 0) + 1
P = lambda *a: os.path.join(mnt, *a)
rn = ['r%02d' % i for i in range(nb)]
fn = ['f%02d' % i for i in range(nf)]
hn = ['h%02d' % i for i in range(nh)]
sn = ['s%02d' % i for i in range(nf)]
gn = ['g%d' % i for i in range(ng)] + ['l%d' % i for i in range(10)] + ['disk.img']
ino = {}
for n in rn + ['fixed', 'big']:
    ino[n] = os.lstat(P(n)).st_ino
for n in fn + hn:
    ino['fixed/' + n] = os.lstat(P('fixed', n)).st_ino
for n in sn:
    ino['fixed/sub/' + n] = os.lstat(P('fixed', 'sub', n)).st_ino
for i in range(nh):
    if ino['fixed/h%02d' % i] != ino['fixed/f%02d' % i]:
        bad('h%02d and f%02d: two inodes before the storm' % (i, i))
sv = P('.snapshots', 'big@s0')
svino = {n: os.lstat(os.path.join(sv, n)).st_ino for n in gn}
svdata = {n: open(os.path.join(sv, n), 'rb').read() for n in ('g3', 'g17', 'l4')}
live = {n: open(P('big', n), 'rb').read() for n in gn if n != 'disk.img'}
live.update({'fixed/' + n: open(P('fixed', n), 'rb').read() for n in fn + hn})
def same_ino(key, path):
    try:
        st = os.lstat(path)
    except OSError as e:
        bad('lstat %s: %s' % (path, e)); return
    if st.st_ino != ino[key]:
        bad('%s: st_ino %d, was %d' % (path, st.st_ino, ino[key]))
def missing(path):
    try:
        os.lstat(path)
        bad('%s: found, should not exist' % path)
    except FileNotFoundError:
        pass
    except OSError as e:
        bad('lstat %s: %s (not ENOENT)' % (path, e))
def listing(path, must):
    try:
        names = set(os.listdir(path))
    except OSError as e:
        bad('listdir %s: %s' % (path, e)); return
    lost = [n for n in must if n not in names]
    if lost:
        bad('listdir %s: lost %s' % (path, lost[:5]))
def lsl(path):   # ls -l: readdir, then a lookup of each entry
    try:
        with os.scandir(path) as it:
            for de in it:
                try:
                    de.stat(follow_symlinks=False)
                except FileNotFoundError:
                    pass   # removed meanwhile by a writer
    except OSError as e:
        bad('scandir %s: %s' % (path, e))
def reader(seed):
    r = random.Random(seed)
    while time.time() < end:
        k = r.randrange(14)
        count('r%d' % k)
        if k == 0:
            for n in r.sample(rn, 8):
                same_ino(n, P(n))
            missing(P('nx%d-%d' % (seed, r.randrange(1 << 30))))
        elif k == 1:
            for n in r.sample(fn, 10):
                same_ino('fixed/' + n, P('fixed', n))
            missing(P('fixed', 'nx%d' % r.randrange(1 << 30)))
        elif k == 2:
            i = r.randrange(nh)
            same_ino('fixed/h%02d' % i, P('fixed', 'h%02d' % i))
            same_ino('fixed/f%02d' % i, P('fixed', 'f%02d' % i))
        elif k == 3:
            listing(mnt, rn + ['fixed', 'big'])
        elif k == 4:
            listing(P('fixed'), fn + hn + ['sub'])
        elif k == 5:
            lsl(r.choice([mnt, P('fixed'), P('big'), P('fixed', 'sub')]))
        elif k == 6:
            for dp, dn, fs in os.walk(P('fixed')):
                for f in fs:
                    try:
                        os.lstat(os.path.join(dp, f))
                    except FileNotFoundError:
                        pass
        elif k == 7:
            for n in r.sample(gn, 6):
                try:
                    os.lstat(P('big', n))   # st_ino changes at a freeze: exists
                except OSError as e:
                    bad('lstat big/%s: %s' % (n, e))
            missing(P('big', 'nx%d' % r.randrange(1 << 30)))
        elif k == 8:
            listing(P('.snapshots'), ['big@s0'])
            missing(P('.snapshots', 'big@nx%d' % r.randrange(1 << 30)))
            missing(P('.snapshots', 'nx%d' % r.randrange(1 << 30)))
        elif k == 9:
            for n in r.sample(gn, 6):
                p = os.path.join(sv, n)
                try:
                    if os.lstat(p).st_ino != svino[n]:
                        bad('%s: st_ino changed' % p)
                except OSError as e:
                    bad('lstat %s: %s' % (p, e))
            missing(os.path.join(sv, 'nx%d' % r.randrange(1 << 30)))
            lsl(sv)
        elif k == 10:
            n = r.choice(list(svdata))
            try:
                if open(os.path.join(sv, n), 'rb').read() != svdata[n]:
                    bad('%s/%s: other bytes' % (sv, n))
            except OSError as e:
                bad('read %s/%s: %s' % (sv, n, e))
        elif k == 12:   # files open (and flock'ed) while their names are looked up
            names = r.sample(list(live), 4)
            fs = []
            try:
                for n in names:
                    f = open(P(n) if n.startswith('fixed/') else P('big', n), 'rb')
                    fs.append(f)
                    if r.randrange(2):
                        fcntl.flock(f, fcntl.LOCK_SH)
                for n in names:
                    same = P(n) if n.startswith('fixed/') else P('big', n)
                    os.lstat(same)
                for n, f in zip(names, fs):
                    if f.read() != live[n]:
                        bad('%s: other bytes' % n)
            except OSError as e:
                bad('open/read %s: %s' % (names, e))
            for f in fs:
                f.close()
        elif k == 13:   # both names of a hard link at once, the file open
            i = r.randrange(nh)
            try:
                with open(P('fixed', 'f%02d' % i), 'rb') as f:
                    same_ino('fixed/h%02d' % i, P('fixed', 'h%02d' % i))
                    if f.read() != live['fixed/f%02d' % i]:
                        bad('fixed/f%02d: other bytes' % i)
            except OSError as e:
                bad('open fixed/f%02d: %s' % (i, e))
        else:
            for n in r.sample(sn, 10):
                same_ino('fixed/sub/' + n, P('fixed', 'sub', n))
def writer(w):
    i = 0
    while time.time() < end:
        i += 1
        count('w')
        a, b = P('fixed', 'w%d-%d' % (w, i)), P('fixed', 'W%d-%d' % (w, i))
        d, e = P('t%d-%d' % (w, i)), P('T%d-%d' % (w, i))
        step = 'create ' + a
        try:
            with open(a, 'wb') as f:
                f.write(b'w%d-%d\n' % (w, i))
            step = 'rename to ' + b
            os.rename(a, b)
            step = 'read ' + b
            if open(b, 'rb').read() != b'w%d-%d\n' % (w, i):
                bad('%s: other bytes' % b)
            if i % 3 == 0:
                step = 'link/unlink ' + a
                os.link(b, a); os.unlink(a)
            step = 'unlink ' + b
            os.unlink(b)
            step = 'mkdir ' + d
            os.mkdir(d)
            step = 'create %s/y' % d
            with open(os.path.join(d, 'y'), 'wb') as f:
                f.write(b'y')
            step = 'rename to ' + e
            os.rename(d, e)
            step = 'unlink %s/y' % e
            os.unlink(os.path.join(e, 'y'))
            step = 'rmdir ' + e
            os.rmdir(e)
        except OSError as x:
            bad('writer %d: %s: %s' % (w, step, x))
ts = [threading.Thread(target=reader, args=(s,)) for s in range(8)]
ts += [threading.Thread(target=writer, args=(w,)) for w in range(2)]
for t in ts: t.start()
for t in ts: t.join()
for n in rn:   # once more, after the storm
    same_ino(n, P(n))
print('ops', sum(counts.values()), ' '.join('%s=%d' % kv for kv in sorted(counts.items())))
for e in errs:
    print('ERR', e)
sys.exit(1 if errs else 0)
EOF
python3 "$T/storm.py" "$MNT" "$SECS" $NB $NF $NH $NG >"$T/storm.out" 2>&1 &
storm=$!
on_exit "kill $storm 2>/dev/null"
# the CLI meanwhile: snapshot, clone (of the live bundle and of a snapshot), a
# clone removed through the mount, snapshot --delete, gc
cli_bad=
cli_ms=
k=0
t_end=$((SECONDS + SECS))
while [ $SECONDS -lt $t_end ]; do
    k=$((k + 1))
    t0=$(date +%s%N)
    "$VMB_BIN" snapshot "$MNT" big s$k >"$T/cli.out" 2>&1 || cli_bad="$cli_bad snapshot$k($(head -c 200 "$T/cli.out"))"
    "$VMB_BIN" clone "$MNT" big c$k >"$T/cli.out" 2>&1 || cli_bad="$cli_bad clone$k($(head -c 200 "$T/cli.out"))"
    "$VMB_BIN" clone "$MNT" big@s$k d$k >"$T/cli.out" 2>&1 || cli_bad="$cli_bad clone@$k($(head -c 200 "$T/cli.out"))"
    t1=$(date +%s%N)
    ls -l "$MNT/.snapshots/big@s$k" >/dev/null 2>&1 || cli_bad="$cli_bad view$k"
    "$VMBIO" verify "$MNT/c$k/g7" 0 $((4096 + 7 * 1024)) p8 >/dev/null || cli_bad="$cli_bad c$k/g7"
    "$VMBIO" verify "$MNT/d$k/disk.img" $((1024 * 1024)) 65536 p77 >/dev/null || cli_bad="$cli_bad d$k/disk.img"
    rm -rf "$MNT/c$k" || cli_bad="$cli_bad rm-c$k"
    if [ $((k % 2)) = 0 ]; then
        rm -rf "$MNT/d$((k - 1))" || cli_bad="$cli_bad rm-d$((k - 1))"
        "$VMB_BIN" snapshot --delete "$MNT" big@s$((k - 1)) >"$T/cli.out" 2>&1 ||
            cli_bad="$cli_bad delete$((k - 1))($(head -c 200 "$T/cli.out"))"
        "$VMB_BIN" gc "$MNT" >"$T/cli.out" 2>&1 || cli_bad="$cli_bad gc$k($(head -c 200 "$T/cli.out"))"
    fi
    cli_ms="$cli_ms $(( (t1 - t0) / 1000000 ))/$(( ($(date +%s%N) - t0) / 1000000 ))"
done
wait $storm
rc=$?
say "# storm: $(head -n 1 "$T/storm.out"); CLI rounds: $k (ms snapshot+clones/round:$cli_ms)"
assert_eq "no lookup, listing or change failed or saw a wrong inode: $(grep -v '^ops' "$T/storm.out" | head -n 12)" 0 $rc
assert_eq "the CLI's snapshot/clone/delete/gc all worked beside it" "" "$cli_bad"
check "the daemon is alive" daemon_alive
check "the CLI ran at least 2 rounds" test $k -ge 2

# ---- the bytes ----
bad=
for i in $(seq -w 0 $((NF - 1))); do
    [ "$(cat "$MNT/fixed/f$i")" = "fixed file $i" ] || bad="$bad f$i"
    [ "$(cat "$MNT/fixed/sub/s$i")" = "sub file $i" ] || bad="$bad s$i"
done
for i in $(seq -w 0 $((NH - 1))); do
    [ "$(st_ino "$MNT/fixed/h$i")" = "$(st_ino "$MNT/fixed/f$i")" ] || bad="$bad h$i(ino)"
done
for i in $(seq -w 0 $((NB - 1))); do
    [ "$(cat "$MNT/r$i/x")" = "bundle r$i" ] || bad="$bad r$i"
done
for i in $(seq 0 $((NG - 1))); do
    "$VMBIO" verify "$MNT/big/g$i" 0 $((4096 + i * 1024)) p$((i + 1)) >/dev/null || bad="$bad g$i"
    "$VMBIO" verify "$MNT/.snapshots/big@s0/g$i" 0 $((4096 + i * 1024)) p$((i + 1)) >/dev/null || bad="$bad s0/g$i"
done
for i in $(seq 0 9); do
    cmp -s "$MNT/big/g$i" "$MNT/big/l$i" || bad="$bad l$i"
done
"$VMBIO" verify "$MNT/big/disk.img" 0 $((1024 * 1024)) p99 >/dev/null || bad="$bad disk.img(head)"
"$VMBIO" verify "$MNT/big/disk.img" $((1024 * 1024)) 65536 p77 >/dev/null || bad="$bad disk.img(layer)"
"$VMBIO" verify "$MNT/.snapshots/big@s0/disk.img" 0 $((4 * 1024 * 1024)) p99 >/dev/null || bad="$bad s0/disk.img"
assert_eq "every file's bytes are right (live, links, the snapshot view)" "" "$bad"
assert_eq "no writer's leftovers" "" "$(ls "$MNT" | grep '^[tT][0-9]'; ls "$MNT/fixed" | grep '^[wW]')"
for b in $(ls "$MNT" | grep '^d[0-9]'); do
    "$VMBIO" verify "$MNT/$b/disk.img" $((1024 * 1024)) 65536 p77 >/dev/null || bad="$bad $b"
done
assert_eq "the clones of snapshots left read right" "" "$bad"

unmount_store
"$VMB_BIN" fsck -n "$STORE" >"$T/fsck.out" 2>&1
assert_eq "fsck -n is clean: $(head -c 300 "$T/fsck.out")" 0 $?
finish
