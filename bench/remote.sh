#!/bin/bash
# bench/remote.sh -- lazy remote images (issue 11), measured side by side in one run,
# on loopback, unshaped and through tests/helpers/shapeproxy (20 ms RTT, 1 Gbit/s):
#
#   curl       curl of the same bytes (-r ranges, -o to a file)
#   vmbundlefs "vmbundlefs mount URL MNT" of the published store (a fresh cache each
#              cold run), and publish
#   rclone     rclone mount of the raw image (http backend, --vfs-cache-mode full)
#   httpfs2    httpfs2 of the raw image
#   nbdkit     nbdkit curl plugin with the readahead and cache (cache-on-read)
#              filters, read through nbdfuse
# all served by one nginx (HTTP/1.1) from the same disk: the published store and the
# raw image (a sparse file holding the same bytes).
#
# The image: 16 GiB, the first SEQ of it data, then NEXT data extents spread over the
# rest (full: 1 GiB sequential + 512 x 2 MiB; quick: 256 MiB + 64 x 1 MiB).
#   ttfb     open + 4 KiB read at offset 0 on a cold mount (curl: one chunk, fresh
#            connection). Target: vmbundlefs within 2x curl.
#   seq      cold sequential read of [0, SEQ) in 1 MiB reads (curl -o FILE of the same
#            range). Target: >= 0.8x curl, ahead of every peer.
#   boot     clusters of 4-64 KiB reads (a few hundred MiB; quick ~60 MiB) spread over
#            the image, cold: time, and bytes fetched / bytes read.
#   8read    8 cold readers of [0, SEQ) at once: server bytes / SEQ (target 1.00) and
#            time / one reader's (seq) time (target <= 1.3).
#   warm     the same sequential read again (cached; the median of seven) against
#            the same read of the image in a local store through a vmbundlefs mount,
#            measured right after it the same way (target >= 0.9x), and, for
#            information, of the native file. It starts once the mount is
#            idle (vmbundlefs: no readahead queued or in flight, nothing left to make
#            durable, from the mount root's counters; peers: after 2 s), so it
#            measures cached reads, not the cold read's tail.
#   cp, tar  cp --sparse=always and tar --sparse of the image: bytes fetched /
#            allocated (target <= 1.1). Peers read all 16 GiB (unshaped only, skipped
#            with --quick).
#   publish  bytes and time of publish of the image, then of a republish after
#            100 MiB changed (ours only).
# ttfb, seq, boot and 8read are the median of REPS cold runs (--reps N, default 3;
# each on a fresh mount with a fresh cache), so that one noisy moment of these shared
# machines does not make the figure; a system whose first run took more than 10 s
# runs once (it is far from the others either way). The amplifications are those of
# the first run. warm is the median of seven reads (above).
# Bytes fetched come from nginx's access log. A row whose command this build lacks
# (vmbundlefs without "mount URL" or "publish") says n/a.
#
# Run on demand (not in CI), as root, from a built tree:
#   bench/remote.sh [--quick] [--reps N] [--out FILE] [--keep] [--only-peers] [--no-shaped]
# Environment: VMB_BIN (default ./build/vmbundlefs), VMB_TESTBIN (./build/tests),
# BENCH_DIR (default /var/tmp), BENCH_TIMEOUT (seconds per measurement, default 300),
# VMB_REMOTE_OPTS (extra -o options of the URL mount).
set -u -o pipefail
export LC_ALL=C

PROG=remote
die() { echo "$PROG: $*" >&2; exit 1; }
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

QUICK=0 OUT='' KEEP=0 ONLY_PEERS=0 SHAPED=1 REPS=3
while [ $# -gt 0 ]; do
	case $1 in
	--quick) QUICK=1 ;;
	--out) [ $# -ge 2 ] || die "--out needs a file"; OUT=$2; shift ;;
	--out=*) OUT=${1#--out=} ;;
	--keep) KEEP=1 ;;
	--reps) [ $# -ge 2 ] || die "--reps needs a number"; REPS=$2; shift ;;
	--reps=*) REPS=${1#--reps=} ;;
	--only-peers) ONLY_PEERS=1 ;;
	--no-shaped) SHAPED=0 ;;
	-h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument '$1' (try --help)" ;;
	esac
	shift
done

case $REPS in ''|*[!0-9]*|0) die "--reps wants a number of runs, 1 or more (got '$REPS')" ;; esac
MiB=$((1024 * 1024))
SIZE=$((16 * 1024 * MiB))
if [ $QUICK = 1 ]; then
	SEQ=$((256 * MiB)) NEXT=64 EXTLEN=$MiB NCLUST=110
else
	SEQ=$((1024 * MiB)) NEXT=512 EXTLEN=$((2 * MiB)) NCLUST=560
fi
TMO=${BENCH_TIMEOUT:-300}

[ "$(id -u)" = 0 ] || die "must run as root (mounts)"
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VMB_BIN=${VMB_BIN:-$PWD/build/vmbundlefs}
VMB_TESTBIN=${VMB_TESTBIN:-$(dirname "$VMB_BIN")/tests}
case $VMB_BIN in /*) ;; *) VMB_BIN=$PWD/$VMB_BIN ;; esac
case $VMB_TESTBIN in /*) ;; *) VMB_TESTBIN=$PWD/$VMB_TESTBIN ;; esac
[ -x "$VMB_BIN" ] || die "no vmbundlefs binary at '$VMB_BIN' (set VMB_BIN)"
[ -x "$VMB_TESTBIN/helpers/shapeproxy" ] || die "no $VMB_TESTBIN/helpers/shapeproxy: run 'make check TESTS=' in the build dir first"
for t in nginx curl openssl cc tar cp du fusermount3 mountpoint timeout awk; do
	command -v $t >/dev/null || die "'$t' is not installed"
done
PEERS=""
command -v rclone >/dev/null && PEERS="$PEERS rclone"
command -v httpfs2 >/dev/null && PEERS="$PEERS httpfs2"
command -v nbdkit >/dev/null && command -v nbdfuse >/dev/null && PEERS="$PEERS nbdkit"
HAS_PUBLISH=0 HAS_RMOUNT=0
if [ $ONLY_PEERS = 0 ]; then
	"$VMB_BIN" publish --help >/dev/null 2>&1 && HAS_PUBLISH=1
	"$VMB_BIN" mount --help 2>&1 | grep -qi 'url' && HAS_RMOUNT=1
fi
SYSTEMS="curl vmbundlefs $PEERS"

W=$(mktemp -d "${BENCH_DIR:-/var/tmp}/vmb-bench-remote.XXXXXX") || die "mktemp failed"
T=$W   # for tests/remote-lib.sh
MOUNTS=() PIDS=()
cleanup() {
	local m p
	for m in "${MOUNTS[@]}"; do mountpoint -q "$m" 2>/dev/null && fusermount3 -u "$m" 2>/dev/null; done
	for m in "${MOUNTS[@]}"; do mountpoint -q "$m" 2>/dev/null && fusermount3 -uz "$m" 2>/dev/null; done
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	remote_stop_all 2>/dev/null
	if [ $KEEP = 1 ]; then log "kept $W"; else rm -rf --one-file-system "$W"; fi
}
trap cleanup EXIT
trap 'log interrupted; exit 1' INT TERM
# remote-lib.sh registers its servers' stop with on_exit when there is one (else it
# would take the EXIT trap): cleanup above stops them.
on_exit() { :; }
. "$SRC/tests/remote-lib.sh"
fail() { die "$*"; }
skip() { die "$*"; }

cc -O2 -o "$W/rdpat" "$SRC/bench/rdpat.c" || die "cannot build bench/rdpat.c"
RDPAT=$W/rdpat

now_ns() { date +%s%N; }
secs_since() { awk -v a="$1" -v b="$(now_ns)" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }

# ------------------------------------------------------------------ the image
# prng BYTES SEED: reproducible pseudo-random bytes (AES-CTR of zeros).
prng() { head -c "$1" /dev/zero | openssl enc -aes-128-ctr -nosalt -K "$(printf '%032x' "$2")" -iv 0 2>/dev/null; }

EXT_STRIDE=$(((SIZE - SEQ) / NEXT))
ext_off() { echo $((SEQ + $1 * EXT_STRIDE + (EXT_STRIDE - EXTLEN) / 2 / 4096 * 4096)); }
log "making the image: 16 GiB, $((SEQ / MiB)) MiB sequential + $NEXT x $((EXTLEN / MiB)) MiB extents"
mkdir -p "$W/www/raw"
IMG=$W/www/raw/disk.img
truncate -s "$SIZE" "$IMG"
prng "$SEQ" 1 | dd of="$IMG" conv=notrunc bs=1M status=none iflag=fullblock
for i in $(seq 0 $((NEXT - 1))); do
	prng "$EXTLEN" $((i + 2)) | dd of="$IMG" conv=notrunc bs=1M seek="$(ext_off "$i")" status=none iflag=fullblock oflag=seek_bytes
done
ALLOC=$(($(stat -c %b "$IMG") * 512))
log "image allocated: $((ALLOC / MiB)) MiB"

# the boot-like read list: NCLUST clusters, each 8-24 reads of 4-64 KiB going
# forward within one extent (or the sequential region), clusters in random order
awk -v n="$NCLUST" -v next_="$NEXT" -v seq="$SEQ" -v stride="$EXT_STRIDE" -v extlen="$EXTLEN" 'BEGIN {
	srand(11)
	for (c = 0; c < n; c++) {
		e = int(rand() * (next_ + 8)) - 8
		if (e < 0) { base = int(rand() * (seq / 4096 - 512)) * 4096; lim = base + 2097152 }
		else { base = seq + e * stride + int((stride - extlen) / 2 / 4096) * 4096; lim = base + extlen }
		off = base + int(rand() * 64) * 4096
		k = 8 + int(rand() * 17)
		for (j = 0; j < k && off < lim; j++) {
			len = (1 + int(rand() * 16)) * 4096
			if (off + len > lim) len = lim - off
			printf "%.0f %.0f\n", off, len
			off += len + int(rand() * 4) * 4096
		}
	}
}' >"$W/boot.list"
BOOT_BYTES=$(awk '{ s += $2 } END { print s }' "$W/boot.list")
log "boot pattern: $(wc -l <"$W/boot.list") reads, $((BOOT_BYTES / MiB)) MiB"

# ------------------------------------------------------------------ the store, published
STORE=$W/store
HAS_PUB=0   # a published store to mount: by publish, else by tests/helpers/mkpub
if [ $HAS_PUBLISH = 1 ]; then
	"$VMB_BIN" init "$STORE" >/dev/null || die "init failed"
	tar --sparse -C "$W/www/raw" -cf - disk.img | "$VMB_BIN" import "$STORE" - vm >/dev/null ||
		die "import of the image failed"
fi

# httpfs2 insists on Accept-Ranges in a 206 reply, which nginx sends only with a 200
nginx_start "$W/www" "autoindex on; location /raw/ { add_header Accept-Ranges bytes always; }"
BASE_URL=$NGINX_URL

# ------------------------------------------------------------------ results
declare -A R
put() { R["$1|$2|$3"]=$4; }     # put METRIC NET SYSTEM VALUE
get() { echo "${R["$1|$2|$3"]:-}"; }
# median VALUE...: the median of the runs (the lower middle of an even count); a
# failed run (">TMO") counts as the slowest
median() { printf '%s\n' "$@" | sed 's/^>\(.*\)/\1 >\1/' | sort -g -k1,1 |
	awk '{ v[NR] = $NF } END { if (NR) print v[int((NR + 1) / 2)] }'; }
# more_reps SECONDS: whether a system whose first run took SECONDS runs again
more_reps() { awk -v t="$1" 'BEGIN { exit !(t !~ />/ && t + 0 <= 10) }'; }

# log mark / bytes since the mark (nginx access log)
mark() { wc -l <"$NGINX_LOG"; }
bytes_since() { # bytes_since MARK REGEX
	tail -n +$(($1 + 1)) "$NGINX_LOG" | awk -v re="$2" '$2 ~ re { b += $5 } END { printf "%d\n", b }'
}

# ------------------------------------------------------------------ mounting
MN=0
# mount_sys SYSTEM URL: mount SYSTEM fresh (cold); F = the image's path
mount_sys() {
	local sys=$1 url=$2 m pid i
	MN=$((MN + 1))
	m=$W/m$MN
	mkdir -p "$m"
	case $sys in
	vmbundlefs)
		"$VMB_BIN" mount -f --log="$W/vmb$MN.log" -o "cache=$W/cache$MN${VMB_REMOTE_OPTS:+,$VMB_REMOTE_OPTS}" \
			"$url/pub" "$m" </dev/null >>"$W/vmb$MN.out" 2>&1 &
		pid=$! f=$m/vm/disk.img ;;
	rclone)
		rclone mount ":http:" "$m" --http-url "$url/raw/" --vfs-cache-mode full \
			--cache-dir "$W/rclone$MN" --read-only --dir-cache-time 1h \
			</dev/null >>"$W/rclone$MN.out" 2>&1 &
		pid=$! f=$m/disk.img ;;
	httpfs2)
		httpfs2 -f -c /dev/null "$url/raw/disk.img" "$m" </dev/null >>"$W/httpfs2$MN.out" 2>&1 &
		pid=$! f=$m/disk.img ;;
	nbdkit)
		nbdkit -f -U "$W/nbd$MN.sock" --filter=readahead --filter=cache curl "$url/raw/disk.img" \
			cache-on-read=true </dev/null >>"$W/nbdkit$MN.out" 2>&1 &
		PIDS+=($!)
		for i in $(seq 1 100); do [ -S "$W/nbd$MN.sock" ] && break; sleep 0.1; done
		nbdfuse -r "$m/disk.img" --unix "$W/nbd$MN.sock" </dev/null >>"$W/nbdfuse$MN.out" 2>&1 &
		pid=$! f=$m/disk.img ;;
	*) die "mount_sys: $sys" ;;
	esac
	PIDS+=("$pid")
	MOUNTS+=("$m")
	for i in $(seq 1 300); do
		if mountpoint -q "$m" && [ -e "$f" ]; then
			F=$f
			return 0
		fi
		sleep 0.1
	done
	log "$sys did not mount $url on $m"
	return 1
}

umount_sys() { # umount_sys PATH-OF-IMAGE: unmount, stop the daemons started for it
	local m=${1%/disk.img} p i
	m=${m%/vm}
	fusermount3 -u "$m" 2>/dev/null || { sleep 1; fusermount3 -uz "$m" 2>/dev/null; }
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do
		for i in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	done
	PIDS=()
}

# settle SYSTEM IMAGE: wait until the mount is idle (see "warm" above)
settle() {
	local sys=$1 root=${2%/disk.img} i st
	root=${root%/vm}
	if [ "$sys" != vmbundlefs ]; then
		sleep 2
		return 0
	fi
	for i in $(seq 1 600); do
		st=$(getfattr --only-values -n user.vmbundlefs.remote "$root" 2>/dev/null | tr '\n' ' ')
		case $st in
		*"remote_inflight 0 "*"remote_queued 0 cache_pending_bytes 0 "*) return 0 ;;
		esac
		sleep 0.1
	done
	log "$sys on $root: still busy after 60 s ($st)"
}

# ------------------------------------------------------------------ measurements
CHUNK=$((256 * 1024))   # publish's default chunk size (curl's ttfb fetches one)

# warm3 FILE: the median time of seven sequential reads of [0, SEQ) of FILE (of
# three when one takes more than a second: a peer with no cache). A cached read
# lasts 20-40 ms, where one moment of these shared machines moves three reads'
# median by a third.
warm3() {
	local k out ts= n=7
	for k in 1 2 3 4 5 6 7; do
		[ "$k" -gt "$n" ] && break
		out=$(timeout "$TMO" "$RDPAT" seq "$1" 0 "$SEQ" "$MiB") || return 1
		ts="$ts ${out#* }"
		awk -v t="${out#* }" 'BEGIN { exit !(t > 1) }' && n=3
	done
	echo $ts | tr ' ' '\n' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

# warm_ref NET: the warm baseline next to NET's warm read: the same image in the
# local store, read through a vmbundlefs mount (a first read, then warm3)
warm_ref() {
	local f=$W/lmnt i out
	[ -d "$STORE" ] || return 0
	mkdir -p "$f"
	"$VMB_BIN" mount -f --log="$W/local.log" "$STORE" "$f" </dev/null >>"$W/local.out" 2>&1 &
	PIDS+=($!) MOUNTS+=("$f")
	for i in $(seq 1 100); do mountpoint -q "$f" && [ -e "$f/vm/disk.img" ] && break; sleep 0.1; done
	"$RDPAT" seq "$f/vm/disk.img" 0 "$SEQ" "$MiB" >/dev/null &&
		out=$(warm3 "$f/vm/disk.img") && put warmref "$1" local "$out"
	umount_sys "$f/vm/disk.img"
}

run_net() { # run_net NET URL
	local net=$1 url=$2 sys f m0 out t b t0 i pids rep
	log "== $net ($url)"
	# curl
	local ts= ss= bs= rs=
	for i in $(seq 1 "$REPS"); do
		out=$(curl -s -o /dev/null -r 0-$((CHUNK - 1)) -w '%{time_total}' "$url/raw/disk.img")
		ts="$ts $out"
		out=$(curl -s -o "$W/curl.out" -r 0-$((SEQ - 1)) -w '%{time_total}' "$url/raw/disk.img")
		ss="$ss $out"
		rm -f "$W/curl.out"
	done
	put ttfb "$net" curl "$(median $ts)"
	put seq "$net" curl "$(median $ss)"
	for sys in vmbundlefs $PEERS; do
		if [ $sys = vmbundlefs ] && { [ $HAS_RMOUNT = 0 ] || [ $HAS_PUB = 0 ]; }; then
			continue
		fi
		log "$net: $sys"
		# ttfb + seq + warm on one mount
		mount_sys $sys "$url" || continue; f=$F
		m0=$(mark)
		ts= ss=
		out=$(timeout "$TMO" "$RDPAT" first "$f" 0 4096) && ts=${out#* }
		out=$(timeout "$TMO" "$RDPAT" seq "$f" 0 "$SEQ" "$MiB") && ss=${out#* }
		settle $sys "$f"
		out=$(warm3 "$f") && put warm "$net" $sys "$out"
		umount_sys "$f"
		# more cold runs of ttfb and seq, each on a fresh mount
		for i in $(seq 2 "$REPS"); do
			[ -n "$ss" ] && more_reps "$(set -- $ss; echo "$1")" || break
			mount_sys $sys "$url" || break; f=$F
			out=$(timeout "$TMO" "$RDPAT" first "$f" 0 4096) && ts="$ts ${out#* }"
			out=$(timeout "$TMO" "$RDPAT" seq "$f" 0 "$SEQ" "$MiB") && ss="$ss ${out#* }"
			umount_sys "$f"
		done
		[ -n "$ts" ] && put ttfb "$net" $sys "$(median $ts)"
		[ -n "$ss" ] && put seq "$net" $sys "$(median $ss)"
		# the warm baseline, in the same minutes: the image in the local store
		[ $sys = vmbundlefs ] && warm_ref "$net"
		# boot pattern (bytes fetched: the first run's)
		bs=
		for rep in $(seq 1 "$REPS"); do
			[ $rep = 1 ] || more_reps "$(set -- $bs; echo "$1")" || break
			mount_sys $sys "$url" || break; f=$F
			m0=$(mark)
			if out=$(timeout "$TMO" "$RDPAT" list "$f" "$W/boot.list"); then
				bs="$bs ${out#* }"
				if [ $rep = 1 ]; then
					sleep 0.5
					b=$(bytes_since "$m0" '^/(pub/objects|raw)/')
					put bootamp "$net" $sys "$(awk -v a="$b" -v r="$BOOT_BYTES" 'BEGIN { printf "%.2f", a / r }')"
				fi
			else
				bs="$bs >$TMO"
			fi
			umount_sys "$f"
		done
		bs=${bs# }
		[ -n "$bs" ] && put boot "$net" $sys "$(median $bs)"
		# 8 readers (bytes fetched: the first run's)
		rs=
		for rep in $(seq 1 "$REPS"); do
			[ $rep = 1 ] || more_reps "$(set -- $rs; echo "$1")" || break
			mount_sys $sys "$url" || break; f=$F
			m0=$(mark)
			t0=$(now_ns)
			pids=
			for i in 1 2 3 4 5 6 7 8; do
				timeout "$TMO" "$RDPAT" seq "$f" 0 "$SEQ" "$MiB" >/dev/null &
				pids="$pids $!"
			done
			wait $pids
			t=$(secs_since "$t0")
			rs="$rs $t"
			if [ $rep = 1 ]; then
				sleep 0.5
				b=$(bytes_since "$m0" '^/(pub/objects|raw)/')
				put 8amp "$net" $sys "$(awk -v a="$b" -v r="$SEQ" 'BEGIN { printf "%.2f", a / r }')"
			fi
			umount_sys "$f"
		done
		rs=${rs# }
		[ -n "$rs" ] && put 8read "$net" $sys "$(median $rs)"
		# cp / tar (peers read all of it: unshaped full runs only)
		if [ $sys = vmbundlefs ] || { [ $net = loopback ] && [ $QUICK = 0 ]; }; then
			mount_sys $sys "$url" || continue; f=$F
			m0=$(mark)
			t0=$(now_ns)
			if timeout "$TMO" cp --sparse=always "$f" "$W/cp.img"; then
				put cp "$net" $sys "$(secs_since "$t0")"
				sleep 0.5
				b=$(bytes_since "$m0" '^/(pub/objects|raw)/')
				put cpamp "$net" $sys "$(awk -v a="$b" -v r="$ALLOC" 'BEGIN { printf "%.2f", a / r }')"
			else
				put cp "$net" $sys ">$TMO"
			fi
			rm -f "$W/cp.img"
			umount_sys "$f"
			if [ $sys = vmbundlefs ]; then
				mount_sys $sys "$url" || continue; f=$F
				m0=$(mark)
				t0=$(now_ns)
				if timeout "$TMO" tar --sparse -C "$(dirname "$f")" -cf - disk.img | wc -c >/dev/null; then
					put tar "$net" $sys "$(secs_since "$t0")"
					sleep 0.5
					b=$(bytes_since "$m0" '^/(pub/objects|raw)/')
					put taramp "$net" $sys "$(awk -v a="$b" -v r="$ALLOC" 'BEGIN { printf "%.2f", a / r }')"
				fi
				umount_sys "$f"
			fi
		fi
	done
}

# warm baseline: the local image read twice (the second is the one compared)
"$RDPAT" seq "$IMG" 0 "$SEQ" "$MiB" >/dev/null
out=$("$RDPAT" seq "$IMG" 0 "$SEQ" "$MiB")
LOCAL_WARM=${out#* }
LOCAL_MNT_WARM=''

# publish (ours): bytes and time, then a republish after 100 MiB changed
if [ $HAS_PUBLISH = 1 ]; then
	log "publish"
	t0=$(now_ns)
	if "$VMB_BIN" publish "$STORE" vm "$W/www/pub" >"$W/publish.out" 2>&1; then
		HAS_PUB=1
		put publish all vmbundlefs "$(secs_since "$t0")"
		put pubbytes all vmbundlefs "$(du -sb "$W/www/pub" | awk '{ print $1 }')"
		before=$(du -sb "$W/www/pub" | awk '{ print $1 }')
		# change 100 MiB through a local mount of the store
		mkdir -p "$W/lmnt"
		"$VMB_BIN" mount -f --log="$W/local.log" "$STORE" "$W/lmnt" </dev/null >>"$W/local.out" 2>&1 &
		PIDS+=($!) MOUNTS+=("$W/lmnt")
		for i in $(seq 1 100); do mountpoint -q "$W/lmnt" && break; sleep 0.1; done
		prng $((100 * MiB)) 999 | dd of="$W/lmnt/vm/disk.img" bs=1M seek=$(((SEQ / 2) / MiB)) conv=notrunc status=none iflag=fullblock
		fusermount3 -u "$W/lmnt"
		sleep 1
		t0=$(now_ns)
		if "$VMB_BIN" publish "$STORE" vm "$W/www/pub" >>"$W/publish.out" 2>&1; then
			put republish all vmbundlefs "$(secs_since "$t0")"
			put repubbytes all vmbundlefs $(($(du -sb "$W/www/pub" | awk '{ print $1 }') - before))
		fi
		# the published bytes must be the image's: a check, not a measurement
		tar --sparse -C "$W/www/raw" -cf - disk.img >/dev/null
	else
		log "publish failed: $(tail -n 3 "$W/publish.out")"
	fi
	# the served image must now equal the republished one for the peers too
	f=$W/lmnt
	mountpoint -q "$f" || { "$VMB_BIN" mount -f --log="$W/local.log" "$STORE" "$f" </dev/null >>"$W/local.out" 2>&1 & PIDS+=($!); }
	for i in $(seq 1 100); do mountpoint -q "$f" && break; sleep 0.1; done
	cp --sparse=always "$f/vm/disk.img" "$IMG.new" && mv "$IMG.new" "$IMG"
	# warm baseline of the target: the same image in a local store, read through the
	# mount twice (the second is the one compared): the same FUSE path, a local file
	"$RDPAT" seq "$f/vm/disk.img" 0 "$SEQ" "$MiB" >/dev/null
	out=$("$RDPAT" seq "$f/vm/disk.img" 0 "$SEQ" "$MiB") && LOCAL_MNT_WARM=${out#* }
	fusermount3 -u "$f"
fi

if [ $HAS_PUB = 0 ] && [ $HAS_RMOUNT = 1 ] && [ -x "$VMB_TESTBIN/helpers/mkpub" ]; then
	log "no publish: the published store made by tests/helpers/mkpub"
	mkdir -p "$W/src/vm"
	ln "$IMG" "$W/src/vm/disk.img"
	"$VMB_TESTBIN/helpers/mkpub" -c $((256 * 1024)) "$W/www/pub" "$W/src/vm" >"$W/mkpub.out" 2>&1 &&
		HAS_PUB=1 || log "mkpub failed: $(tail -n 3 "$W/mkpub.out")"
fi

run_net loopback "$BASE_URL"
if [ $SHAPED = 1 ]; then
	shapeproxy_start "127.0.0.1:$NGINX_PORT" -d 10 -r 1G
	run_net shaped "http://127.0.0.1:$PROXY_PORT"
	shapeproxy_stop
fi

# ------------------------------------------------------------------ the table
ratio() { # ratio A B: A/B, or blank
	awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || a ~ />/ || b ~ />/ || b + 0 == 0) exit; printf "%.2f", a / b }'
}
mibs() { awk -v s="$1" -v n="$2" 'BEGIN { if (s == "" || s ~ />/ || s + 0 == 0) { print s; exit } printf "%.0f MiB/s", n / 1048576 / s }'; }
cell() { [ -n "$1" ] && echo "$1" || echo "n/a"; }
report() {
	local net sys row v nets="loopback"
	[ $SHAPED = 1 ] && nets="loopback shaped"
	echo "# bench/remote.sh $([ $QUICK = 1 ] && echo --quick) ($(date -u +%F\ %H:%M) UTC, $(nproc) CPUs)"
	echo
	echo "Image 16 GiB, $((ALLOC / MiB)) MiB allocated; sequential region $((SEQ / MiB)) MiB;" \
		"boot pattern $(wc -l <"$W/boot.list") reads, $((BOOT_BYTES / MiB)) MiB; shaped = shapeproxy 10 ms each way, 1 Gbit/s;" \
		"ttfb, seq, boot, 8read: the median of $REPS cold runs (one when the first took over 10 s)."
	echo "Times in seconds (lower is better) unless marked; amp = bytes fetched from the server / bytes needed."
	echo
	printf '| metric | net |'
	for sys in $SYSTEMS; do printf ' %s |' "$sys"; done
	printf ' ours vs | target |\n|---|---|'
	for sys in $SYSTEMS; do printf -- '---|'; done
	printf -- '---|---|\n'
	for net in $nets; do
		for row in ttfb seq boot bootamp 8read 8amp warm cp cpamp tar taramp; do
			printf '| %s | %s |' "$row" "$net"
			for sys in $SYSTEMS; do
				v=$(get $row $net $sys)
				case $row in seq|warm) [ -n "$v" ] && v="$v ($(mibs "$v" "$SEQ"))" ;; esac
				printf ' %s |' "$(cell "$v")"
			done
			case $row in
			ttfb) printf ' %s x curl | <= 2 |\n' "$(cell "$(ratio "$(get ttfb $net vmbundlefs)" "$(get ttfb $net curl)")")" ;;
			seq) printf ' %s x curl speed | >= 0.8 |\n' "$(cell "$(ratio "$(get seq $net curl)" "$(get seq $net vmbundlefs)")")" ;;
			8read) printf ' %s x one reader | <= 1.3 |\n' "$(cell "$(ratio "$(get 8read $net vmbundlefs)" "$(get seq $net vmbundlefs)")")" ;;
			8amp) printf ' | 1.00 |\n' ;;
			warm) v=$(get warmref $net local); [ -n "$v" ] || v=$LOCAL_MNT_WARM
				printf ' %s x a local store image'"'"'s speed through the mount (%s s, measured next to it); %s x the native file (%s s) | >= 0.9 |\n' \
				"$(cell "$(ratio "$v" "$(get warm $net vmbundlefs)")")" "$(cell "$v")" \
				"$(cell "$(ratio "$LOCAL_WARM" "$(get warm $net vmbundlefs)")")" "$LOCAL_WARM" ;;
			cpamp|taramp) printf ' | <= 1.1 |\n' ;;
			boot) printf ' | ahead of peers |\n' ;;
			*) printf ' | |\n' ;;
			esac
		done
	done
	echo
	echo "publish of the image: $(cell "$(get publish all vmbundlefs)") s, $(cell "$(get pubbytes all vmbundlefs)") bytes;" \
		"republish after 100 MiB changed: $(cell "$(get republish all vmbundlefs)") s, $(cell "$(get repubbytes all vmbundlefs)") bytes uploaded."
}
report | tee "$W/report.md"
[ -n "$OUT" ] && cp "$W/report.md" "$OUT"
exit 0
