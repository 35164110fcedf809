#!/bin/bash
# bench/run.sh -- side-by-side benchmark of vmbundlefs against the same work
# done on the native directory and through Debian's bindfs over that directory.
#
# Run on demand (not in CI), as root:
#
#   bench/run.sh [--quick] [--reps N] [--out FILE] [--keep] [--diag]
#
#   --quick    smaller sizes (4 GiB image, 512 MiB sequential, 256 MiB fio
#              file, 3 s fio runs, 2 repetitions, bindfs capped at 15 s);
#              3-5 minutes.  The full run takes about 20 minutes.
#   --reps N   repetitions of each measurement (default 3, quick 2); the
#              median is used.
#   --out FILE also write the result table (markdown) to FILE.
#   --keep     keep the work directory (store, copies, daemon logs).
#   --diag     after the table, trace the vmbundlefs daemon with strace during
#              a short sequential read and write and print its backing I/O
#              sizes (slows the daemon down; not part of the measurements).
#
# Environment:
#   VMB_BIN          vmbundlefs binary (default ./build/vmbundlefs)
#   BENCH_DIR        where the temporary work dir is made (default /var/tmp);
#                    it must be on a real disk, not tmpfs
#   VMB_MOUNT_OPTS   extra arguments for "vmbundlefs mount" (e.g. "-o readahead_kb=0")
#
# Set-up: a store made with "vmbundlefs init", mounted with
# "$VMB_BIN mount -f STORE MNT &" (so the daemon's pid is known); the data
# files are written through that mount, so their sidecars exist.  The native
# runs use the backing files STORE/bench/FILE directly, and bindfs is mounted
# over STORE ("bindfs -f STORE MNT2 &").  Native, vmbundlefs and bindfs runs
# are interleaved, rotating the order in every repetition.
#
# Ratios are vmbundlefs / other, of the measured quantity: for times lower is
# better, for MiB/s and IOPS higher is better.  Absolute figures on shared
# machines are noise; the ratios are the result.
set -u -o pipefail
export LC_ALL=C

PROG=bench
die() { echo "$PROG: $*" >&2; exit 1; }
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

QUICK=0 REPS='' OUT='' KEEP=0 DIAG=0
while [ $# -gt 0 ]; do
	case $1 in
	--quick) QUICK=1 ;;
	--reps) [ $# -ge 2 ] || die "--reps needs a number"; REPS=$2; shift ;;
	--reps=*) REPS=${1#--reps=} ;;
	--out) [ $# -ge 2 ] || die "--out needs a file"; OUT=$2; shift ;;
	--out=*) OUT=${1#--out=} ;;
	--keep) KEEP=1 ;;
	--diag) DIAG=1 ;;
	-h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument '$1' (try --help)" ;;
	esac
	shift
done
[ -n "$REPS" ] || REPS=$([ $QUICK = 1 ] && echo 2 || echo 3)
case $REPS in *[!0-9]*|0) die "--reps needs a positive number" ;; esac

# ---------------------------------------------------------------- sizes
MiB=$((1024 * 1024))
if [ $QUICK = 1 ]; then
	IMG_MB=4096 RUNS=64 RUN_MB=1 SEQ_MB=512 RAND_MB=256 FIO_T=3 CAP_MAX=15 BUDGET=20
else
	IMG_MB=16384 RUNS=64 RUN_MB=4 SEQ_MB=2048 RAND_MB=1024 FIO_T=10 CAP_MAX=180 BUDGET=150
fi
# CAP_MAX: longest single bindfs run of cp/tar/rsync (it reads every hole);
# BUDGET: once a copy benchmark has spent this many seconds, it stops after
# the current repetition (rsync of the full image reads 16 GiB per run).
ALLOC_B=$((RUNS * RUN_MB * MiB))

# ---------------------------------------------------------------- checks
[ "$(id -u)" = 0 ] || die "must run as root (drop_caches, mounts)"
VMB_BIN=${VMB_BIN:-./build/vmbundlefs}
case $VMB_BIN in /*) ;; *) VMB_BIN=$PWD/$VMB_BIN ;; esac
[ -x "$VMB_BIN" ] || die "no vmbundlefs binary at '$VMB_BIN' (set VMB_BIN)"
for t in bindfs fio rsync tar cp dd fusermount3 mountpoint timeout jq awk; do
	command -v $t >/dev/null || die "'$t' is not installed (apt-get install $t)"
done
[ -w /proc/sys/vm/drop_caches ] || die "cannot write /proc/sys/vm/drop_caches"

W='' SHM='' MNT='' MNT2='' VMB_PID='' BINDFS_PID=''

umount_one() {
	[ -n "$1" ] || return 0
	mountpoint -q "$1" 2>/dev/null || return 0
	fusermount3 -u "$1" 2>/dev/null || fusermount3 -uz "$1" 2>/dev/null || umount -l "$1" 2>/dev/null
}
stop_pid() {
	local p=$1 i
	[ -n "$p" ] || return 0
	for i in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$p" 2>/dev/null; then kill -TERM "$p" 2>/dev/null; sleep 1; fi
	kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
	wait "$p" 2>/dev/null
	return 0
}
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	umount_one "$MNT"; umount_one "$MNT2"
	stop_pid "$VMB_PID"; stop_pid "$BINDFS_PID"
	[ -n "$SHM" ] && rm -rf -- "$SHM"
	if [ -n "$W" ]; then
		if [ $KEEP = 1 ] || { mountpoint -q "$MNT" || mountpoint -q "$MNT2"; } 2>/dev/null; then
			log "work directory kept: $W"
		else
			rm -rf --one-file-system -- "$W"
		fi
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

BASE=${BENCH_DIR:-/var/tmp}
mkdir -p -- "$BASE" || die "cannot create '$BASE'"
W=$(mktemp -d "$BASE/vmbbench.XXXXXX") || die "cannot make a work dir under '$BASE'"
SHM=$(mktemp -d /dev/shm/vmbbench.XXXXXX) || die "cannot make a dir in /dev/shm"
STORE=$W/store MNT=$W/mnt MNT2=$W/mnt-bindfs DST=$W/dst
mkdir -p "$MNT" "$MNT2" "$DST"
[ "$(stat -f -c %T "$W")" != tmpfs ] || die "BENCH_DIR '$BASE' is tmpfs; use a disk"
need_mb=$((ALLOC_B / MiB * 6 + SEQ_MB * 3 + RAND_MB + 1024))
free_mb=$(df -Pm "$W" | awk 'NR==2{print $4}')
[ "$free_mb" -ge "$need_mb" ] || die "need about $need_mb MiB free in '$BASE', have $free_mb"

# ---------------------------------------------------------------- helpers
drop3() { sync; echo 3 >/proc/sys/vm/drop_caches; }
drop1() { sync; echo 1 >/proc/sys/vm/drop_caches; }
path_of() { # target file
	case $1 in
	native) echo "$STORE/bench/$2" ;;
	vmb) echo "$MNT/bench/$2" ;;
	bindfs) echo "$MNT2/bench/$2" ;;
	esac
}
pid_of() { case $1 in vmb) echo "$VMB_PID" ;; bindfs) echo "$BINDFS_PID" ;; *) echo "" ;; esac; }
rchar_of() { awk '$1=="rchar:"{print $2}' "/proc/$1/io" 2>/dev/null || echo 0; }
cpu_of() { # utime+stime in ticks, all threads
	sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12 + $13}' || echo 0
}
# bytes of file data read from the backing: vmbundlefs counts them itself (its
# spliced reads do not show in rchar); bindfs reads the backing with read(2).
bread_of() {
	if [ "$1" = "$VMB_PID" ]; then
		getfattr -n user.vmbundlefs.stats --only-values "$MNT" 2>/dev/null |
			awk '$1 == "backing_read_bytes" { print $2; f = 1 } END { if (!f) print 0 }'
	else
		rchar_of "$1"
	fi
}
TCK=$(getconf CLK_TCK)
SNAP_R=0 SNAP_C=0 SNAP_B=0
snap() { [ -n "$1" ] || return 0; SNAP_R=$(rchar_of "$1"); SNAP_C=$(cpu_of "$1"); SNAP_B=$(bread_of "$1"); }
# record daemon deltas since snap() under key prefix $2
unsnap() {
	[ -n "$1" ] || return 0
	local r c
	r=$(rchar_of "$1"); c=$(cpu_of "$1")
	add "$2.rchar" $((r - SNAP_R))
	add "$2.bread" $(( $(bread_of "$1") - SNAP_B ))
	add "$2.cpu" "$(awk -v a="$c" -v b="$SNAP_C" -v t="$TCK" 'BEGIN{printf "%.2f", (a-b)/t}')"
}

declare -A S LB
add() { S[$1]="${S[$1]:-} $2"; }
med() {
	printf '%s\n' ${S[$1]:-} | awk 'NF' | sort -g | awk '{a[NR]=$1}
		END { if (NR == 0) exit; if (NR % 2) print a[(NR+1)/2]; else printf "%.6f\n", (a[NR/2]+a[NR/2+1])/2 }'
}

# timed CAP CMD...: run CMD (an external command) under timeout; sets ELAPSED
# (wall seconds) and TIMED_OUT; returns CMD's status.
ELAPSED=0 TIMED_OUT=0
timed() {
	local cap=$1 t0 t1 rc
	shift
	t0=$EPOCHREALTIME
	timeout -k 10 "$cap" "$@"
	rc=$?
	t1=$EPOCHREALTIME
	ELAPSED=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.4f", b-a}')
	TIMED_OUT=0
	if [ $rc = 124 ] || [ $rc = 137 ]; then TIMED_OUT=1; fi
	return $rc
}
# dd_secs FILE: the seconds dd reported in its last status line (0 if none)
dd_secs() { awk '/copied/{for (i = 1; i <= NF; i++) if ($i == "s,") s = $(i-1)} END{print s+0}' "$1"; }

# order of the targets in repetition $1 (1-based), rotating
order() {
	case $((($1 - 1) % 3)) in
	0) echo "native vmb bindfs" ;;
	1) echo "vmb bindfs native" ;;
	2) echo "bindfs native vmb" ;;
	esac
}

FAILS=
fail_note() { FAILS="$FAILS$1"$'\n'; log "WARNING: $1"; }

mount_vmb() {
	# shellcheck disable=SC2086
	"$VMB_BIN" mount -f ${VMB_MOUNT_OPTS:-} "$STORE" "$MNT" >>"$W/vmbundlefs.log" 2>&1 &
	VMB_PID=$!
	wait_mounted "$MNT" "$VMB_PID" || { cat "$W/vmbundlefs.log" >&2; die "vmbundlefs did not mount"; }
}
mount_bindfs() {
	bindfs -f "$STORE" "$MNT2" >>"$W/bindfs.log" 2>&1 &
	BINDFS_PID=$!
	wait_mounted "$MNT2" "$BINDFS_PID" || { cat "$W/bindfs.log" >&2; die "bindfs did not mount"; }
}
wait_mounted() {
	local i
	for i in $(seq 200); do
		mountpoint -q "$1" && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}
alive() {
	kill -0 "$VMB_PID" 2>/dev/null && mountpoint -q "$MNT" ||
		{ tail -20 "$W/vmbundlefs.log" >&2; die "the vmbundlefs daemon died (log above)"; }
}

# ---------------------------------------------------------------- set-up
log "work dir $W; mode $([ $QUICK = 1 ] && echo quick || echo full), $REPS reps"
log "generating $SEQ_MB MiB of random data in $SHM"
SRC=$SHM/random.bin
head -c $((SEQ_MB * MiB)) /dev/urandom >"$SRC" || die "cannot fill $SRC"

"$VMB_BIN" init "$STORE" >>"$W/vmbundlefs.log" 2>&1 || { cat "$W/vmbundlefs.log" >&2; die "vmbundlefs init failed"; }
mount_vmb
mkdir "$MNT/bench" || die "cannot create bundle 'bench' through the mount"

log "writing sparse.img ($IMG_MB MiB, $RUNS runs of $RUN_MB MiB at random offsets) through the mount"
IMG=$MNT/bench/sparse.img
truncate -s $((IMG_MB * MiB)) "$IMG" || die "truncate through the mount failed"
# RUNS non-overlapping runs: slot k of 2*RUN, shifted by a random multiple of
# 4 KiB below RUN inside its slot; fixed seed, so every run uses the same layout.
RANDOM=20261122
slots=$((IMG_MB / (2 * RUN_MB)))
declare -A used=()
while [ ${#used[@]} -lt $RUNS ]; do
	s=$(((RANDOM << 15 | RANDOM) % slots))
	[ -n "${used[$s]:-}" ] && continue
	used[$s]=$(((s * 2 * RUN_MB * MiB) + (RANDOM % (RUN_MB * 256)) * 4096))
done
printf '%s\n' "${used[@]}" | sort -n >"$W/offsets"
i=0
while read -r off; do
	dd if="$SRC" of="$IMG" bs=1M count=$RUN_MB skip=$((i * RUN_MB % SEQ_MB)) \
		seek="$off" oflag=seek_bytes conv=notrunc status=none ||
		die "writing the data runs through the mount failed"
	i=$((i + 1))
done <"$W/offsets"
dd if=/dev/null of="$IMG" conv=notrunc,fsync status=none || die "fsync of $IMG failed"

log "writing seq.img ($SEQ_MB MiB) and rand.img ($RAND_MB MiB) through the mount"
dd if="$SRC" of="$MNT/bench/seq.img" bs=1M conv=fsync status=none || die "writing seq.img failed"
dd if="$SRC" of="$MNT/bench/rand.img" bs=1M count=$RAND_MB conv=fsync status=none || die "writing rand.img failed"
sync
mount_bindfs

blocks_b() { echo $(($(stat -c %b "$1") * 512)); }
for f in sparse.img seq.img rand.img; do
	[ "$(stat -c %s "$STORE/bench/$f")" = "$(stat -c %s "$MNT/bench/$f")" ] ||
		fail_note "$f: backing size $(stat -c %s "$STORE/bench/$f") != mount size $(stat -c %s "$MNT/bench/$f")"
done
SP_BACK=$(blocks_b "$STORE/bench/sparse.img")
SP_MNT=$(blocks_b "$MNT/bench/sparse.img")
SP_BFS=$(blocks_b "$MNT2/bench/sparse.img")
ls "$STORE/.vmbundlefs/maps/$(printf '%016x.map' "$(stat -c %i "$STORE/bench/sparse.img")")" >/dev/null 2>&1 ||
	fail_note "no sidecar map for sparse.img in $STORE/.vmbundlefs/maps"
[ "$SP_BACK" -ge "$ALLOC_B" ] && [ "$SP_BACK" -le $((ALLOC_B + ALLOC_B / 10)) ] ||
	fail_note "sparse.img: backing file has $SP_BACK bytes allocated (expected ~$ALLOC_B)"
[ "$SP_MNT" -le $((ALLOC_B + ALLOC_B / 10)) ] ||
	fail_note "sparse.img: st_blocks through the mount says $SP_MNT bytes allocated (expected ~$ALLOC_B)"

# ---------------------------------------------------------------- 1-3: cp, tar, rsync of the sparse image
# one_copy KIND TARGET CAP STATE: STATE cold = sync + drop_caches 3 first;
# warm = drop 1, then the backing file's data is read natively (the mount's
# cache stays cold).
one_copy() {
	local kind=$1 tg=$2 cap=$3 state=$4 src pid key rc
	src=$(path_of "$tg" sparse.img)
	pid=$(pid_of "$tg")
	key=$kind-$state.$tg
	rm -rf -- "$DST"; mkdir -p "$DST"
	if [ "$state" = cold ]; then
		drop3
	else
		drop1
		cp -- "$STORE/bench/sparse.img" "$DST/warm.img" && rm -f -- "$DST/warm.img"
	fi
	[ "$tg" = vmb ] && alive
	snap "$pid"
	case $kind in
	cp) timed "$cap" cp -- "$src" "$DST/out.img" 2>"$W/cmd.err" ;;
	tar) timed "$cap" tar --sparse -cf "$DST/out.tar" -C "${src%/*}" "${src##*/}" 2>"$W/cmd.err" ;;
	rsync) timed "$cap" rsync -S -- "$src" "$DST/" 2>"$W/cmd.err" ;;
	esac
	rc=$?
	unsnap "$pid" "$key"
	if [ $TIMED_OUT = 1 ]; then
		LB[$key]=1
		add "$key" "$cap"
		log "  $kind $state $tg: timed out after ${cap}s"
	elif [ $rc != 0 ]; then
		fail_note "$kind ($state) from $tg failed with status $rc: $(tail -2 "$W/cmd.err" | tr '\n' ' ')"
		add "$key" "$ELAPSED"
	else
		add "$key" "$ELAPSED"
		log "  $kind $state $tg: ${ELAPSED}s"
	fi
	# the copies must be the same bytes and sparse
	if [ "$kind" = cp ] && [ $rc = 0 ]; then
		if [ "$tg" = native ] && [ ! -e "$W/ref.img" ]; then
			mv -- "$DST/out.img" "$W/ref.img"
		elif [ "$tg" = vmb ] && [ -z "${CP_CHECKED:-}" ] && [ -e "$W/ref.img" ]; then
			CP_CHECKED=1
			# same size, same data runs, and no more allocated than the reference
			[ "$(stat -c %s "$DST/out.img")" = "$(stat -c %s "$W/ref.img")" ] ||
				fail_note "cp out of the mount has a different size than cp of the backing file"
			while read -r off; do
				cmp -s -i "$off:$off" -n $((RUN_MB * MiB)) -- "$W/ref.img" "$DST/out.img" ||
					{ fail_note "cp out of the mount differs from cp of the backing file at offset $off"; break; }
			done <"$W/offsets"
			CP_DST_ALLOC=$(blocks_b "$DST/out.img")
			[ "$CP_DST_ALLOC" -le $(($(blocks_b "$W/ref.img") + ALLOC_B / 10)) ] ||
				fail_note "cp out of the mount is not sparse ($CP_DST_ALLOC bytes allocated)"
		fi
	fi
	rm -rf -- "$DST"; mkdir -p "$DST"
	sync
}

# cap for the single bindfs run: FACTOR times the vmbundlefs median (110: long
# enough to show a 100x target), at least 20 s, at most CAP_MAX
bindfs_cap() {
	awk -v v="$(med "$1.vmb")" -v f="$2" -v m=$CAP_MAX 'BEGIN{c = int(v * f) + 1; if (c < 20) c = 20; if (c > m) c = m; print c}'
}
vmb_cap() { echo $((CAP_MAX * 3)); }

copy_bench() { # kind state bindfs-cap-factor (0: no bindfs run)
	local kind=$1 state=$2 r tg t0=$SECONDS
	log "$kind ($state caches) of sparse.img"
	for r in $(seq "$REPS"); do
		for tg in $(order "$r"); do
			[ "$tg" = bindfs ] && continue
			one_copy "$kind" "$tg" "$(vmb_cap)" "$state"
		done
		if [ $((SECONDS - t0)) -ge "$BUDGET" ] && [ "$r" -lt "$REPS" ]; then
			log "  (time budget used up after $r repetition(s))"
			break
		fi
	done
	if [ "$3" != 0 ]; then
		one_copy "$kind" bindfs "$(bindfs_cap "$kind-$state" "$3")" "$state"
	fi
}
copy_bench cp cold 110
copy_bench cp warm 0
copy_bench tar cold 110
copy_bench rsync cold 1.5

# ---------------------------------------------------------------- 3b: tar -x --sparse into the target
# GNU tar writes a sparse member's data in 512-byte write()s (issue 9: 7.5-10 s
# into the mount against 0.3 s native for the full-size image). The archive is
# made once from the backing file and kept warm in the page cache; the time is
# that of tar alone (no sync), as a user sees it.
log "tar -x --sparse of sparse.img's archive into each target"
tar --sparse -cf "$W/sparse.tar" -C "$STORE/bench" sparse.img || die "cannot make $W/sparse.tar"
one_untar() { # target cap
	local tg=$1 cap=$2 d pid rc
	d=$(path_of "$tg" "untar-$tg"); pid=$(pid_of "$tg")
	rm -rf -- "$d"; mkdir -p -- "$d" || die "cannot create $d"
	cat "$W/sparse.tar" >/dev/null
	sync
	[ "$tg" = vmb ] && alive
	snap "$pid"
	timed "$cap" tar --sparse -xf "$W/sparse.tar" -C "$d" 2>"$W/cmd.err"
	rc=$?
	unsnap "$pid" "untar.$tg"
	if [ $TIMED_OUT = 1 ]; then
		LB[untar.$tg]=1
		add "untar.$tg" "$cap"
		log "  untar $tg: timed out after ${cap}s"
	elif [ $rc != 0 ]; then
		fail_note "tar -x into $tg failed with status $rc: $(tail -2 "$W/cmd.err" | tr '\n' ' ')"
		add "untar.$tg" "$ELAPSED"
	else
		add "untar.$tg" "$ELAPSED"
		log "  untar $tg: ${ELAPSED}s"
		if [ "$tg" = vmb ] && [ -z "${UNTAR_CHECKED:-}" ]; then
			UNTAR_CHECKED=1
			cmp -s -- "$STORE/bench/sparse.img" "$d/sparse.img" ||
				fail_note "tar -x into the mount: the extracted image differs from the original"
			[ "$(blocks_b "$d/sparse.img")" -le $((ALLOC_B + ALLOC_B / 10)) ] ||
				fail_note "tar -x into the mount: the extracted image is not sparse"
		fi
	fi
	rm -rf -- "$d"
	sync
}
for r in $(seq "$REPS"); do
	for tg in $(order "$r"); do
		[ "$tg" = bindfs ] && continue
		one_untar "$tg" "$(vmb_cap)"
	done
done
one_untar bindfs "$(bindfs_cap untar 3)"
rm -f -- "$W/sparse.tar"

# ---------------------------------------------------------------- 4: sequential read
# per target: drop 1 (the mount's page cache goes), re-warm the backing file by
# reading it natively, then the first read and a reread through the target, and
# a third read (information only: FUSE caches in 4 KiB pages, and the second read
# of a page moves it to the active LRU list, page by page; the third read shows
# the cached read without that cost).
log "sequential read of seq.img ($SEQ_MB MiB)"
for r in $(seq "$REPS"); do
	for tg in $(order "$r"); do
		src=$(path_of "$tg" seq.img); pid=$(pid_of "$tg")
		drop1
		dd if="$STORE/bench/seq.img" of=/dev/null bs=1M status=none
		[ "$tg" = vmb ] && alive
		for pass in read1 read2 read3; do
			snap "$pid"
			timed "$(vmb_cap)" dd if="$src" of=/dev/null bs=1M 2>"$W/dd.err" ||
				fail_note "dd read of $src failed: $(tail -1 "$W/dd.err")"
			unsnap "$pid" "$pass.$tg"
			s=$(dd_secs "$W/dd.err"); [ "$s" != 0 ] || s=$ELAPSED
			add "$pass.$tg" "$(awk -v s="$s" -v m=$SEQ_MB 'BEGIN{printf "%.1f", m / s}')"
			log "  $pass $tg: ${s}s"
		done
	done
done

# ---------------------------------------------------------------- 5: sequential write + fsync
log "sequential write of $SEQ_MB MiB with fsync"
for r in $(seq "$REPS"); do
	for tg in $(order "$r"); do
		dstf=$(path_of "$tg" "write-$tg.img"); pid=$(pid_of "$tg")
		rm -f -- "$dstf"; sync
		[ "$tg" = vmb ] && alive
		snap "$pid"
		timed "$(vmb_cap)" dd if="$SRC" of="$dstf" bs=1M conv=fsync 2>"$W/dd.err" ||
			fail_note "dd write to $dstf failed: $(tail -1 "$W/dd.err")"
		unsnap "$pid" "write.$tg"
		s=$(dd_secs "$W/dd.err"); [ "$s" != 0 ] || s=$ELAPSED
		add "write.$tg" "$(awk -v s="$s" -v m=$SEQ_MB 'BEGIN{printf "%.1f", m / s}')"
		log "  write $tg: ${s}s"
		rm -f -- "$dstf"; sync
	done
done

# ---------------------------------------------------------------- 6: fio 4 KiB random read / write
# rand.img is fully written; before each run the page cache is dropped and the
# backing file re-warmed natively (as for the first sequential read).
log "fio 4 KiB random read/write on rand.img ($RAND_MB MiB, ${FIO_T}s each)"
for rw in randread randwrite; do
	for r in $(seq "$REPS"); do
		for tg in $(order "$r"); do
			f=$(path_of "$tg" rand.img); pid=$(pid_of "$tg")
			drop1
			dd if="$STORE/bench/rand.img" of=/dev/null bs=1M status=none
			[ "$tg" = vmb ] && alive
			snap "$pid"
			timed $((FIO_T * 4 + 30)) fio --name="$rw" --filename="$f" --rw="$rw" --bs=4k \
				--ioengine=psync --iodepth=1 --numjobs=1 --size=$((RAND_MB * MiB)) \
				--runtime="$FIO_T" --time_based=1 --direct=0 --invalidate=0 \
				--output-format=json --output="$W/fio.json" >"$W/fio.err" 2>&1 ||
				fail_note "fio $rw on $tg failed: $(tail -3 "$W/fio.err" | tr '\n' ' ')"
			unsnap "$pid" "$rw.$tg"
			if [ $rw = randread ]; then q=.read.iops; else q=.write.iops; fi
			iops=$(jq -r ".jobs[0]$q" "$W/fio.json" 2>/dev/null) || iops=0
			add "$rw.$tg" "$(awk -v x="$iops" 'BEGIN{printf "%.0f", x}')"
			log "  $rw $tg: $iops IOPS"
			sync
		done
	done
done
alive

# ---------------------------------------------------------------- the table
fmt_num() { # value kind
	case $2 in
	time) awk -v x="$1" 'BEGIN{printf "%.2f s", x}' ;;
	rate) awk -v x="$1" 'BEGIN{printf "%.0f MiB/s", x}' ;;
	iops) awk -v x="$1" 'BEGIN{printf "%.0f IOPS", x}' ;;
	bytes) awk -v x="$1" 'BEGIN{printf "%.1f MiB", x / 1048576}' ;;
	esac
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.6g", a / b; else print "" }'; }
fmt_ratio() { # ratio kind lowerbound
	[ -n "$1" ] || { echo "n/a"; return; }
	if [ "$2" = time ] && awk -v r="$1" 'BEGIN{exit !(r < 1)}'; then
		awk -v r="$1" -v lb="$3" 'BEGIN{p = lb ? "<" : ""; q = lb ? ">" : ""
			printf "%s%.3gx (%s%.3gx faster)", p, r, q, 1 / r}'
	else
		awk -v r="$1" -v lb="$3" 'BEGIN{printf "%s%.3gx", lb ? "<" : "", r}'
	fi
}
# check RATIO OP LIMIT LOWERBOUND -> PASS|MISS; a lower-bound bindfs time makes
# the ratio an upper bound, which passes a "<=" target when it is below it.
check() {
	[ -n "$1" ] || { echo "n/a"; return; }
	if awk -v r="$1" -v op="$2" -v l="$3" 'BEGIN{exit !((op == "<=" && r <= l) || (op == ">=" && r >= l))}'; then
		echo PASS
	elif [ "$4" = 1 ]; then
		echo "MISS (bindfs capped)"
	else
		echo MISS
	fi
}

TABLE=$W/table.md
{
	echo "| benchmark | native | vmbundlefs | bindfs | ratio vs native | ratio vs bindfs | target | result |"
	echo "|---|---|---|---|---|---|---|---|"
} >"$TABLE"
# row NAME KIND KEY TARGET-TEXT [native|bindfs OP LIMIT]...
row() {
	local name=$1 kind=$2 key=$3 ttext=$4 vn vv vb rn rb lb res="" one many=0
	shift 4
	[ $# -gt 3 ] && many=1
	vn=$(med "$key.native"); vv=$(med "$key.vmb"); vb=$(med "$key.bindfs")
	local n
	n=$(printf '%s\n' ${S[$key.vmb]:-} | awk 'NF' | wc -l)
	[ "$n" -lt "$REPS" ] && name="$name [n=$n]"
	lb=${LB[$key.bindfs]:-0}
	rn=$(ratio "$vv" "$vn"); rb=$(ratio "$vv" "$vb")
	while [ $# -ge 3 ]; do
		if [ "$1" = native ]; then one=$(check "$rn" "$2" "$3" 0); else one=$(check "$rb" "$2" "$3" "$lb"); fi
		[ $many = 1 ] && one="$1 $one"
		res="${res:+$res; }$one"
		shift 3
	done
	printf '| %s | %s | %s | %s%s | %s | %s | %s | %s |\n' "$name" \
		"$([ -n "$vn" ] && fmt_num "$vn" "$kind" || echo -)" \
		"$([ -n "$vv" ] && fmt_num "$vv" "$kind" || echo -)" \
		"$([ "$lb" = 1 ] && echo ">")" "$([ -n "$vb" ] && fmt_num "$vb" "$kind" || echo -)" \
		"$(fmt_ratio "$rn" "$kind" 0)" "$(fmt_ratio "$rb" "$kind" "$lb")" "$ttext" "${res:--}" >>"$TABLE"
}
H=$(awk -v m=$IMG_MB 'BEGIN{printf "%g GiB", m / 1024}')
A="$((ALLOC_B / MiB)) MiB"
row "cp $H image ($A data) to native disk, cold caches" time cp-cold \
	"time ≤2x native; ≥100x faster than bindfs" native "<=" 2 bindfs "<=" 0.01
row "cp, same, backing warm (mount cache cold)" time cp-warm "time ≤2x native" native "<=" 2
# bytes read from the backing during the cold cp: native column = allocated bytes
add "rchar.native" "$ALLOC_B"
for tg in vmb bindfs; do S[rchar.$tg]=${S[cp-cold.$tg.bread]:-}; done
LB[rchar.bindfs]=0
vv=$(med rchar.vmb); vb=$(med rchar.bindfs)
rn=$(ratio "$vv" "$ALLOC_B"); rb=$(ratio "$vv" "$vb")
printf '| %s | %s | %s | %s%s | %s | %s | %s | %s |\n' \
	"bytes of the file read from the backing during that cp (native column: allocated bytes)" "$(fmt_num "$ALLOC_B" bytes)" \
	"$([ -n "$vv" ] && fmt_num "$vv" bytes || echo -)" "$([ "${LB[cp-cold.bindfs]:-0}" = 1 ] && echo "≥")" \
	"$([ -n "$vb" ] && fmt_num "$vb" bytes || echo -)" \
	"$(fmt_ratio "$rn" bytes 0) of allocated" "$(fmt_ratio "$rb" bytes 0)" "≤1.1x allocated" \
	"$(check "$rn" "<=" 1.1 0)" >>"$TABLE"
row "tar --sparse -cf of the image to a file, cold caches" time tar-cold "time ≤2x native" native "<=" 2
row "rsync -S of the image to a new dir, cold caches" time rsync-cold "time ≤1.5x native" native "<=" 1.5
row "tar -x --sparse of the $H image ($A data) into the target (before: 7.5-10 s vs 0.3 s native, 25-35x)" time untar \
	"time ≤2x native" native "<=" 2
row "seq read $SEQ_MB MiB, first (backing warm, mount cold), dd bs=1M" rate read1 \
	"≥1.5x bindfs MiB/s" bindfs ">=" 1.5
row "seq reread, kernel cache kept" rate read2 "≥0.6x native MiB/s" native ">=" 0.6
row "seq third read (information: pages already active)" rate read3 "none"
row "seq write $SEQ_MB MiB + fsync, dd bs=1M conv=fsync" rate write "≥0.8x native MiB/s" native ">=" 0.8
row "fio 4 KiB randread, psync, QD1, $RAND_MB MiB file" iops randread "≥1x bindfs IOPS (on par)" bindfs ">=" 1
row "fio 4 KiB randwrite, psync, QD1, $RAND_MB MiB file" iops randwrite "≥1x bindfs IOPS (on par)" bindfs ">=" 1

# daemon-side figures
D=$W/daemon.md
{
	echo "| run (median per run) | vmbundlefs read from backing | vmbundlefs rchar | vmbundlefs CPU | bindfs rchar | bindfs CPU |"
	echo "|---|---|---|---|---|---|"
	for k in cp-cold cp-warm tar-cold rsync-cold untar read1 read2 read3 write randread randwrite; do
		printf '| %s | %s | %s | %s | %s | %s |\n' "$k" \
			"$(v=$(med "$k.vmb.bread"); [ -n "$v" ] && fmt_num "$v" bytes || echo -)" \
			"$(v=$(med "$k.vmb.rchar"); [ -n "$v" ] && fmt_num "$v" bytes || echo -)" \
			"$(v=$(med "$k.vmb.cpu"); [ -n "$v" ] && printf '%.2f s' "$v" || echo -)" \
			"$(v=$(med "$k.bindfs.rchar"); [ -n "$v" ] && fmt_num "$v" bytes || echo -)" \
			"$(v=$(med "$k.bindfs.cpu"); [ -n "$v" ] && printf '%.2f s' "$v" || echo -)"
	done
} >"$D"

{
	echo "## vmbundlefs benchmark ($([ $QUICK = 1 ] && echo quick || echo full), median of $REPS; $(date -u '+%Y-%m-%d %H:%M UTC'))"
	echo
	echo "host: $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM;" \
		"work dir on $(df -P "$W" | awk 'NR==2{print $1}') ($(stat -f -c %T "$W"));" \
		"vmbundlefs $("$VMB_BIN" --version 2>/dev/null | head -1); $(bindfs --version 2>/dev/null | head -1); $(fio --version)"
	echo
	cat "$TABLE"
	echo
	echo "Ratios are vmbundlefs / other of the measured quantity (time: lower is better;" \
		"MiB/s, IOPS: higher is better). bindfs runs of cp/tar/rsync are done once, capped with timeout;" \
		"'>' marks a capped bindfs time (a lower bound). [n=K]: only K repetitions fitted the time budget." \
		"Cold: sync + drop_caches 3 before each run; warm/first read: drop_caches 1, then the backing file read natively."
	echo "sparse.img allocation: backing $(fmt_num "$SP_BACK" bytes), st_blocks via vmbundlefs $(fmt_num "$SP_MNT" bytes)," \
		"via bindfs $(fmt_num "$SP_BFS" bytes)${CP_DST_ALLOC:+; cp from vmbundlefs produced $(fmt_num "$CP_DST_ALLOC" bytes) allocated}."
	echo
	echo "Daemon-side figures (rchar = bytes the daemon read with read(2) and friends, incl. from /dev/fuse, not spliced ones; CPU = user+sys of all its threads). Bytes read from the backing: vmbundlefs' own count (user.vmbundlefs.stats on the mount root, spliced reads included), bindfs' rchar."
	echo
	cat "$D"
	if [ -n "$FAILS" ]; then
		echo
		echo "Problems seen:"
		printf '%s' "$FAILS" | sed 's/^/- /'
	fi
} >"$W/report.md"

# ---------------------------------------------------------------- optional: I/O sizes seen by the daemon
if [ $DIAG = 1 ]; then
	if command -v strace >/dev/null; then
		log "diag: tracing the daemon's backing I/O during a $((SEQ_MB / 4)) MiB read and write"
		n=$((SEQ_MB / 4))
		drop1; dd if="$STORE/bench/seq.img" of=/dev/null bs=1M count=$n status=none
		strace -f -qq -o "$W/strace.read" -e trace=pread64,preadv,preadv2,read,splice -p "$VMB_PID" &
		sp=$!; sleep 1
		dd if="$MNT/bench/seq.img" of=/dev/null bs=1M count=$n status=none
		sleep 0.5; kill -INT $sp; wait $sp 2>/dev/null
		strace -f -qq -o "$W/strace.write" -e trace=pwrite64,pwritev,pwritev2,write,writev,splice -p "$VMB_PID" &
		sp=$!; sleep 1
		dd if="$SRC" of="$MNT/bench/diag.img" bs=1M count=$n conv=fsync status=none
		sleep 0.5; kill -INT $sp; wait $sp 2>/dev/null
		rm -f -- "$MNT/bench/diag.img"
		{
			echo
			echo "Daemon syscalls while dd bs=1M moved $n MiB through the mount, most frequent first" \
				"(syscall: count x bytes returned; read = requests from /dev/fuse, writev = replies):"
			for f in read write; do
				echo "- $f: $(awk '{ sc = ($2 == "<...") ? $3 : $2; sub(/\(.*/, "", sc); r = $NF; if (r ~ /^[0-9]+$/) c[sc " " r]++ }
					END { for (k in c) print c[k], k }' "$W/strace.$f" | sort -rn | head -8 |
					awk '{printf "%s%s: %d x %d", (NR > 1 ? ", " : ""), $2, $1, $3}')"
			done
		} >>"$W/report.md"
	else
		log "diag: strace is not installed"
	fi
fi

cat "$W/report.md"
if [ -n "$OUT" ]; then cp -- "$W/report.md" "$OUT" || die "cannot write '$OUT'"; fi
exit 0
