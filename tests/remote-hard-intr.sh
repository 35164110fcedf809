#!/bin/bash
# remote-hard-intr: a URL mount in hard mode (-o hard) whose server went away. A
# reader waiting for the network ends on its own SIGINT (dd, which catches SIGINT,
# exits within seconds with a non-zero status), whether its read is the kernel's
# readahead (buffered) or a direct read, and whether it was the one fetching the
# chunk or one waiting for another reader's fetch of it; the other readers of the
# same chunk go on waiting (not failed), a reader of a second mount (another
# process) waiting for the first mount's fetch of its chunk ends on SIGINT too, the
# daemon still serves cached bytes, and
# once the server is back every waiting reader completes with the right bytes, as
# does a new read of the chunks the interrupted readers wanted.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/remote-lib.sh"

vmb_setup
remote_need_cli mount
remote_fixture
env --default-signal=INT true 2>/dev/null ||
	skip "env --default-signal is missing (coreutils >= 8.31)"
faultsrv_start "$PUB"
URL=$FAULT_URL
C=$T/cache
IMG=vm/disk.img
K=262144   # the fixture's chunk size

# wait_gone PID SECONDS: 0 when PID has exited within SECONDS
wait_gone() {
	local i
	for i in $(seq 1 $(($2 * 10))); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
	return 1
}
# rdd NAME CHUNK [dd args...]: dd of chunk CHUNK of the image into $T/NAME.out, in the
# background ($! its pid). SIGINT is given back its default disposition (a shell
# without job control starts background jobs with it ignored); dd catches it.
rdd() {
	local name=$1 chunk=$2
	shift 2
	env --default-signal=INT dd if="$T/${RDD_MNT:-h}/$IMG" of="$T/$name.out" bs=$K \
		skip="$chunk" count=1 "$@" 2>"$T/$name.err" &
}
# ref CHUNK: that chunk of the reference image, in $T/ref.CHUNK
ref() { dd if="$REF" of="$T/ref.$1" bs=$K skip="$1" count=1 status=none; }
# intr NAME PID: SIGINT to PID ends it within 5 s with a non-zero status
intr() {
	local rc
	kill -INT "$2"
	if wait_gone "$2" 5; then
		ok "$1: SIGINT ends the reader within 5 s"
	else
		notok "$1: SIGINT ends the reader within 5 s"
		say "# the reader's kernel stack:"; sed 's/^/#   /' "/proc/$2/stack" 2>/dev/null
		grep -E '^(State|SigPnd|ShdPnd|SigBlk|SigCgt)' "/proc/$2/status" | sed 's/^/#   /'
		say "# the daemon's threads:"
		for t in /proc/$(cat "$T/h.pid")/task/*; do
			say "#   $(cat "$t/comm") $(cat "$t/wchan" 2>/dev/null)"
		done
		tail -n 5 "$T/h.log" | sed 's/^/#   /'
		[ -n "${VMB_INTR_GDB:-}" ] && gdb -p "$(cat "$T/h.pid")" -batch -ex "thread apply all bt 12" >"$VMB_INTR_GDB" 2>&1
		kill -9 "$2" 2>/dev/null
	fi
	wait "$2"
	rc=$?
	check "... with a non-zero status (it was $rc)" test "$rc" -ne 0
}

rmount h "$URL" -o "cache=$C,hard"
rmount h2 "$URL" -o "cache=$C,hard"   # a second daemon, the same cache
dd if="$T/h/$IMG" of="$T/head.out" bs=$K count=4 status=none
cmp -s "$T/head.out" <(head -c $((4 * K)) "$REF")
check "online: the first 1 MiB reads" test $? -eq 0
faultsrv_stop

# 1. buffered reads (the kernel's readahead asks for the chunk): a first dd, then a
#    second reader of the same chunk, of its last page (a reader waiting on a page
#    another reader's read holds locked, the same page read at the same time, is
#    the kernel's: only a fatal signal ends that wait, see vmbundlefs(1))
rdd b1 32; b1=$!
sleep 1
env --default-signal=INT dd if="$T/h/$IMG" of="$T/b2.out" bs=4096 skip=$((32 * 64 + 63)) \
	count=1 2>"$T/b2.err" &
b2=$!
sleep 2
check "buffered: the first reader waits for the network" kill -0 $b1
check "... and so does the second" kill -0 $b2
intr "buffered" $b1
sleep 1
check "... the second reader of the chunk still waits (not failed)" kill -0 $b2

# 2. direct reads: the daemon sees both readers; the fetching one is interrupted,
#    then, for another chunk, the waiting one
rdd d1 34 iflag=direct; d1=$!
sleep 1
rdd d2 34 iflag=direct; d2=$!
sleep 2
check "direct: both readers of chunk 34 wait" sh -c "kill -0 $d1 && kill -0 $d2"
intr "direct, the reader whose read fetches" $d1
sleep 1
check "... the other reader of the chunk still waits" kill -0 $d2
rdd d3 35 iflag=direct; d3=$!
sleep 1
rdd d4 35 iflag=direct; d4=$!
sleep 2
check "direct: both readers of chunk 35 wait" sh -c "kill -0 $d3 && kill -0 $d4"
intr "direct, a reader waiting for another's fetch" $d4
sleep 1
check "... the reader fetching the chunk still waits" kill -0 $d3

# 2b. another process: a reader of the second mount waits for the first mount's
#     fetch of chunk 63 (its fill lock in the shared cache; the first ones are
#     cached by now); SIGINT ends it
rdd x1 63 iflag=direct; x1=$!
sleep 1
RDD_MNT=h2 rdd x2 63 iflag=direct; x2=$!
sleep 2
check "two mounts: the reader of each waits for chunk 63" sh -c "kill -0 $x1 && kill -0 $x2"
intr "a reader of the second mount, waiting for the first one's fetch" $x2
sleep 1
check "... the first mount's reader still waits" kill -0 $x1

# 3. the daemon still serves what is cached
dd if="$T/h/$IMG" of="$T/head2.out" bs=$K count=4 iflag=direct status=none
cmp -s "$T/head2.out" <(head -c $((4 * K)) "$REF")
check "the daemon still serves cached chunks" test $? -eq 0

# 4. the server back: the waiting readers complete with the right bytes, and the
#    chunks the interrupted readers wanted read right
faultsrv_start "$PUB" -p "$FAULT_PORT"
for p in b2:32 d2:34 d3:35 x1:63; do
	name=${p%:*} chunk=${p#*:}
	pid=$(eval echo "\$$name")
	if wait_gone "$pid" 60; then wait "$pid"; rc=$?; else rc=timeout; kill -9 "$pid"; fi
	assert_eq "server back: the waiting reader $name completes" "0" "$rc"
	ref "$chunk"
	if [ $name = b2 ]; then
		check "... with the right bytes" cmp -s "$T/b2.out" <(tail -c 4096 "$T/ref.32")
	else
		check "... with the right bytes" cmp -s "$T/$name.out" "$T/ref.$chunk"
	fi
done
for chunk in 32 34 35; do
	dd if="$T/h/$IMG" of="$T/again.$chunk" bs=$K skip=$chunk count=1 iflag=direct status=none
	check "chunk $chunk reads right" cmp -s "$T/again.$chunk" "$T/ref.$chunk"
done
dd if="$T/h2/$IMG" of="$T/again2.63" bs=$K skip=63 count=1 iflag=direct status=none
check "chunk 63 reads right through the second mount" cmp -s "$T/again2.63" "$T/ref.63"
check "the second daemon exits cleanly" rumount h2
if grep -Eq "Interrupted|EINTR|interrupted" "$T/h.log"; then
	notok "no error in the log for the interrupted reads"; grep -n "nterrupted" "$T/h.log" | head
else ok "no error in the log for the interrupted reads"; fi
check "the daemon exits cleanly" rumount h
finish
