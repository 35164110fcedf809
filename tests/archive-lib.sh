# tests/archive-lib.sh: helpers shared by the archive tests (sourced after lib.sh).

K=4096
M=$((1024 * 1024))
G=$((1024 * M))
VMBIO=${VMBIO:-$VMB_TESTBIN/helpers/vmbio}
[ -x "$VMBIO" ] || hard_error "helper '$VMBIO' is not built"

vmb() { "$VMB_BIN" "$@"; }

need() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || skip "$c is not installed"
    done
}

# mkimg FILE SIZE SEED: a sparse image with a few scattered extents (non-zero
# pattern), among them an unaligned one and one at the very end.
mkimg() {
    local f=$1 size=$2 s=$3
    truncate -s "$size" "$f" || return 1
    vmbio pwrite "$f" 0 $((64 * K)) "p$s" >/dev/null &&
    vmbio pwrite "$f" $((1 * M + 100)) 10000 "p$((s + 1))" >/dev/null &&
    vmbio pwrite "$f" $((size / 3 / K * K)) $((2 * M)) "p$((s + 2))" >/dev/null &&
    vmbio pwrite "$f" $((size / 2 / K * K + 512)) $((512 * 1024)) "p$((s + 3))" >/dev/null &&
    vmbio pwrite "$f" $((size - 8 * K)) $((8 * K)) "p$((s + 4))" >/dev/null
}

# mkbundle DIR [DISKSIZE]: a VM-like bundle: a sparse disk, an NVRAM file, a config,
# a subdirectory, a symlink, a hard link, an empty file, odd modes and old mtimes.
mkbundle() {
    local d=$1 size=${2:-$((4 * G))}
    mkdir -p "$d/Data" || return 1
    mkimg "$d/disk.img" "$size" 10 || return 1
    truncate -s $((128 * 1024)) "$d/nvram.bin" &&
    vmbio pwrite "$d/nvram.bin" 0 $((32 * K)) p30 >/dev/null &&
    printf '{"cpu": 4, "memory": "8G"}\n' >"$d/config.json" &&
    printf 'aux\n' >"$d/Data/aux.dat" &&
    : >"$d/empty" &&
    ln -s config.json "$d/config.link" &&
    ln -s ../disk.img "$d/Data/disk.link" &&
    ln "$d/config.json" "$d/Data/config.hard" &&
    chmod 0640 "$d/nvram.bin" && chmod 0750 "$d/Data" &&
    touch -h -d '2021-03-04 05:06:07' "$d/config.link" &&
    touch -d '2020-01-02 03:04:05.123456789' "$d/disk.img" "$d/nvram.bin" "$d/Data" "$d"
}

# data_bytes FILE: bytes of 4 KiB blocks holding data (SEEK_DATA map).
data_bytes() { vmbio mapsum "$1"; }
alloc_bytes() { echo $(($(stat -c %b "$1") * 512)); }

# tree_listing DIR: type, mode, size, link count, link target of every entry
# (NOLINKS=1: without the link count).
tree_listing() {
    if [ -n "${NOLINKS:-}" ]; then
        (cd "$1" && find . -mindepth 1 -printf '%p %y %m %s %l\n' | sort)
    else
        (cd "$1" && find . -mindepth 1 -printf '%p %y %m %s %n %l\n' | sort)
    fi
}
tree_mtimes() {
    (cd "$1" && find . -mindepth 1 ! -type d -printf '%p %T@\n' | awk '{ printf "%s %d\n", $1, $2 }' | sort)
}

# same_tree A B: same listing, and every regular file the same bytes (vmbio
# cmpsparse: compares every range that is data in either file; the rest is holes in
# both, so this is a full comparison without reading gigabytes of holes).
same_tree() {
    local a=$1 b=$2 f
    diff <(tree_listing "$a") <(tree_listing "$b") || { echo "listings differ"; return 1; }
    while IFS= read -r f; do
        vmbio cmpsparse "$a/$f" "$b/$f" >/dev/null || { echo "'$f' differs"; return 1; }
    done < <(cd "$a" && find . -type f | sort)
}

same_tree_nolinks() { NOLINKS=1 same_tree "$@"; }

# same_alloc A B SLACK: allocation of every regular file within SLACK bytes.
same_alloc() {
    local a=$1 b=$2 slack=$3 f x y
    while IFS= read -r f; do
        x=$(alloc_bytes "$a/$f") y=$(alloc_bytes "$b/$f")
        if [ $((x - y)) -gt "$slack" ] || [ $((y - x)) -gt "$slack" ]; then
            echo "'$f': $x vs $y bytes allocated"
            return 1
        fi
    done < <(cd "$a" && find . -type f | sort)
}

# store_snapshot DIR: names, types, sizes, modes and checksums of everything under
# DIR (for stores of small files only).
store_snapshot() {
    (cd "$1" && find . -printf '%p %y %m %s %l\n' | sort &&
        find . -type f -print0 | sort -z | xargs -0r sha256sum)
}

staging_clean() {
    local s=$STORE/.vmbundlefs/staging
    [ ! -e "$s" ] || [ -z "$(ls -A "$s")" ]
}
