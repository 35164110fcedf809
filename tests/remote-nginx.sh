#!/bin/bash
# remote-nginx: a published store served by nginx (Debian), mounted over HTTP/1.1
# and over HTTPS with HTTP/2 (a test CA made with openssl, given with -o cafile=):
# the same tree and bytes as the source bundle, SEEK_DATA/SEEK_HOLE and st_blocks
# exact before any chunk is fetched, the connection opened at the mount (before the
# first read), zero chunks never fetched, the identical chunk
# fetched once, the HTTPS fetches really HTTP/2 (nginx's log); without the CA
# (TLS verification is on by default) or with another CA the mount is refused.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/remote-lib.sh"

vmb_setup
remote_need_cli
need_tool nginx "Debian package nginx-light"
need_tool openssl "the test CA"
remote_fixture
nginx_start "$PUB"
IMG=vm/disk.img

# holes IMG: the data/hole map through SEEK_DATA/SEEK_HOLE, as "start end" lines
holes() { "$VMBIO" map "$1" 2>/dev/null || echo "vmbio map failed"; }

for proto in http https; do
    case $proto in
    http) url=$NGINX_URL opts="cache=$T/c-$proto" ;;
    https) url=$NGINX_TLS_URL opts="cache=$T/c-$proto,cafile=$TLS_CA" ;;
    esac
    : >"$NGINX_LOG"
    rmount $proto "$url" -o "$opts"
    m=$T/$proto
    # the daemon opens its connection (and TLS session) before the first read
    for i in $(seq 1 100); do
        awk '$1 == "HEAD" && $2 ~ /\/index$/' "$NGINX_LOG" | grep -q . && break
        sleep 0.1
    done
    assert_eq "$proto: the mount connects ahead of the first read (one HEAD of the index)" \
        "1" "$(awk '$1 == "HEAD" && $2 ~ /\/index$/' "$NGINX_LOG" | wc -l)"
    assert_eq "$proto: the tree" "$(cd "$SRC/.." && find vm | sort)" "$(cd "$m" && find vm | sort)"
    assert_eq "$proto: st_size" "$(stat -c %s "$REF")" "$(stat -c %s "$m/$IMG")"
    assert_eq "$proto: st_blocks exact before any read" "$("$VMBIO" mapsum "$REF")" "$(($(stat -c %b "$m/$IMG") * 512))"
    assert_eq "$proto: SEEK_DATA/SEEK_HOLE map exact before any read" "$(holes "$REF")" "$(holes "$m/$IMG")"
    assert_eq "$proto: no data chunk fetched by stat and seeks" "0" \
        "$(awk '$2 ~ /\/objects\// && $5 == 262144' "$NGINX_LOG" | wc -l)"
    check "$proto: every byte" cmp "$m/$IMG" "$REF"
    check "$proto: small files" bash -c "cmp '$m/vm/config' '$SRC/config' && cmp '$m/vm/nvram' '$SRC/nvram'"
    check "$proto: cp --sparse=always keeps the holes" bash -c "cp --sparse=always '$m/$IMG' '$T/copy' && cmp '$T/copy' '$REF' && [ \$(stat -c %b '$T/copy') -le \$(( \$(stat -c %b '$REF') + 64 )) ]"
    twice=$(log_fetches "$NGINX_LOG" | awk '$1 != 1')
    assert_eq "$proto: no object fetched twice (the copy at 12 MiB shares chunk 0)" "" "$twice"
    n=$(log_fetches "$NGINX_LOG" | wc -l)
    assert_num "$proto: only the objects of the store ($n <= $(find "$PUB/objects" -type f | wc -l))" \
        "$n" -le "$(find "$PUB/objects" -type f | wc -l)"
    if [ $proto = https ]; then
        assert_eq "https: every fetch over HTTP/2" "" "$(awk '$6 != "HTTP/2.0"' "$NGINX_LOG")"
    fi
    rumount $proto || notok "$proto: the daemon exits cleanly"
done

# TLS verification is on by default
for ca in none other; do
    opts="cache=$T/c-$ca"
    [ $ca = other ] && opts="$opts,cafile=$TLS_OTHER_CA"
    mkdir -p "$T/$ca"
    out=$(timeout 60 "$VMB_BIN" mount -f --log="$T/$ca.log" -o "$opts" "$NGINX_TLS_URL" "$T/$ca" 2>&1)
    rc=$?
    is_mounted "$T/$ca" && fusermount3 -u "$T/$ca"
    assert_num "https with CA '$ca': the mount is refused (exit $rc)" "$rc" -ne 0
    assert_num "https with CA '$ca': ... not by the timeout" "$rc" -ne 124
    assert_match "https with CA '$ca': the error says why" '[Cc]ertificate|SSL|TLS' "$out $(cat "$T/$ca.log" 2>/dev/null)"
done
finish
