#!/bin/bash
# remote-hard-stop: a URL mount in hard mode (-o hard) whose server went away, with a
# reader blocked in a read that waits for the network: SIGTERM to the daemon (and,
# in a second round, an unmount once the reader is killed) ends the wait; the reader
# gets an error (never wrong bytes, never zeros), the daemon exits with status 0
# within seconds, the mount is gone, and nothing leaks (under the sanitizers). Then
# with the server back, a new mount reads every byte right from the same cache.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/remote-lib.sh"

vmb_setup
remote_need_cli mount
remote_fixture
faultsrv_start "$PUB"
URL=$FAULT_URL
C=$T/cache
IMG=vm/disk.img

# wait_gone PID SECONDS: 0 when PID has exited within SECONDS
wait_gone() {
	local i
	for i in $(seq 1 $(($2 * 10))); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
	return 1
}

# 1. SIGTERM while a reader waits
rmount h "$URL" -o "cache=$C,hard"
out=$("$RCMP" -s -b 262144 -n 4 "$T/h/$IMG" "$REF")
assert_eq "online: the first 1 MiB reads" "ok=4 eio=0 wrong=0 err=0" "$out"
faultsrv_stop
"$RCMP" -b 262144 -O $((8 * M)) -n 1 "$T/h/$IMG" "$REF" >"$T/reader.out" 2>&1 &
reader=$!
sleep 2
check "hard mode: the reader waits for the network" kill -0 $reader
check "... and the log says it retries" wait_for 20 grep -q "retrying until it works" "$T/h.log"
kill -TERM "$(cat "$T/h.pid")"
if wait_gone "$(cat "$T/h.pid")" 30; then ok "SIGTERM: the daemon exits within 30 s"
else notok "SIGTERM: the daemon exits within 30 s"; kill -9 "$(cat "$T/h.pid")" 2>/dev/null; fi
if wait_gone $reader 10; then ok "the reader's read returns"
else notok "the reader's read returns"; kill -9 $reader 2>/dev/null; fi
wait $reader 2>/dev/null
assert_eq "... with EIO, no bytes" "ok=0 eio=1 wrong=0 err=0" "$(tail -n 1 "$T/reader.out")"; cat "$T/reader.out"
for i in $(seq 1 50); do [ -e "$T/h.rc" ] && break; sleep 0.1; done
assert_eq "... with status 0" "0" "$(cat "$T/h.rc" 2>/dev/null)"
check "... and the mount is gone" sh -c "! grep -q ' $T/h ' /proc/mounts"
fusermount3 -uz "$T/h" 2>/dev/null
if grep -Eq "$_VMB_BAD_LOG" "$T/h.log" "$T/h.out" 2>/dev/null; then
	notok "no sanitizer report"; grep -En -A 30 "$_VMB_BAD_LOG" "$T/h.log" "$T/h.out" | head -n 40
else ok "no sanitizer report"; fi

# 2. the reader killed, then an unmount: the daemon must not hang on the read it was
#    carrying for the dead reader
rmount u "$URL" -o "cache=$C,hard"
"$RCMP" -b 262144 -O $((8 * M)) -n 1 "$T/u/$IMG" "$REF" >/dev/null 2>&1 &
reader=$!
sleep 2
check "hard mode (offline start): the reader waits" kill -0 $reader
kill -9 $reader; wait $reader 2>/dev/null
check "unmount after the reader is gone" rumount u

# 3. the server back: the same cache, every byte right
faultsrv_start "$PUB" -p "$FAULT_PORT"
rmount v "$URL" -o "cache=$C"
out=$("$RCMP" -s -j 2 -b 65536 "$T/v/$IMG" "$REF")
assert_eq "server back: every block reads correctly" "ok=512 eio=0 wrong=0 err=0" "$out"
check "... and the daemon exits cleanly" rumount v
finish
