#!/bin/sh
# layering.sh - the layers of src/ as a rule (issue #13). Reads every #include in
# src/ and fs/ and fails, naming file, line and include, when:
#   - a folder of src/ includes a folder above it. Bottom to top:
#       base < map < remote < layer < image < store < lock < vfs
#     archive sits beside vfs (may include what vfs may), and vfs and archive never
#     include each other; cli (the vmbundlefs command) may include all of src/;
#   - a project include lacks its folder ("sidecar.h" instead of "map/sidecar.h"),
#     names no header of the tree, or a file of src/ is outside the known folders;
#   - anything in src/ includes a FUSE header or an fs/ header (cli, the program
#     that runs the adapter, may include fs/ headers, never FUSE ones);
#   - fs/ includes a project header other than src/vfs/ ones and its own fs/ ones;
#   - libcurl, libarchive or OpenSSL headers appear outside src/remote/,
#     src/archive/ and src/base/digest.[ch], src/base/sign.[ch].
# Plain POSIX sh and awk; needs no build and no mount.
set -eu

top=${VMB_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$top"
[ -d src ] && [ -d fs ] || { echo "layering.sh: no src/ and fs/ under $top" >&2; exit 99; }

files=$(find src fs -type f \( -name '*.c' -o -name '*.h' \) | LC_ALL=C sort)
[ -n "$files" ] || { echo "layering.sh: no sources under $top" >&2; exit 99; }
headers=$(find src fs -type f -name '*.h' | sed 's|^src/||' | LC_ALL=C sort)

# shellcheck disable=SC2086
VMB_HEADERS=$headers awk '
BEGIN {
	# rank of each folder of src/; vfs and archive share one, cli is on top
	n = split("base map remote layer image store lock vfs", order, " ")
	for (i = 1; i <= n; i++) rank[order[i]] = i
	rank["archive"] = rank["vfs"]
	rank["cli"] = n + 1
	nh = split(ENVIRON["VMB_HEADERS"], h, "\n")
	for (i = 1; i <= nh; i++) exists[h[i]] = 1
	bad = 0
	for (i = 1; i < ARGC; i++) {
		d = folder(ARGV[i])
		if (d == "")
			printf "%s: a file of src/ outside the folders of its layers\n", ARGV[i]
		else if (d != "fs" && !(d in rank))
			printf "%s: src/%s/ is not a known layer (add it to tests/layering.sh)\n", ARGV[i], d
		else
			continue
		bad++
	}
}
function fail(msg) {
	printf "%s:%d: %s: %s\n", FILENAME, FNR, inc, msg
	bad++
}
function folder(f,   d) {
	# the folder of a file: src/<folder>/..., or fs; "" when outside the layers
	if (f ~ /^fs\//)
		return "fs"
	d = f; sub(/^src\//, "", d)
	if (d !~ /\//)
		return ""
	sub(/\/.*/, "", d)
	return d
}
FNR == 1 {
	me = folder(FILENAME)
	if (!(me in rank) && me != "fs")
		me = ""
	digest = (FILENAME ~ /^src\/base\/(digest|sign)\.[ch]$/)
}
/^[ \t]*#[ \t]*include[ \t]*</ {
	inc = $0; sub(/^[ \t]*#[ \t]*include[ \t]*/, "", inc); sub(/>.*/, ">", inc)
	name = substr(inc, 2, length(inc) - 2)
	if (name ~ /^fuse/ && me != "fs")
		fail("a FUSE header outside fs/")
	if ((name ~ /^curl\// || name ~ /^archive[^\/]*\.h$/ || name ~ /^openssl\//) &&
	    me != "remote" && me != "archive" && !digest)
		fail("libcurl, libarchive and OpenSSL headers belong to src/remote/, src/archive/, src/base/digest and sign")
	next
}
/^[ \t]*#[ \t]*include[ \t]*"/ {
	inc = $0; sub(/^[ \t]*#[ \t]*include[ \t]*/, "", inc)
	match(inc, /^"[^"]*"/); inc = substr(inc, 1, RLENGTH)
	name = substr(inc, 2, length(inc) - 2)
	if (name == "config.h" || me == "")
		next
	to = name
	if (to !~ /\//) {
		fail("a project include without its folder (write \"<folder>/" name "\")")
		next
	}
	sub(/\/.*/, "", to)
	if (!(name in exists)) {
		fail("no such header in src/ or fs/")
		next
	}
	if (me == "fs") {
		if (to != "vfs" && to != "fs")
			fail("fs/ includes only src/vfs/ headers (and its own)")
		next
	}
	if (to == "fs") {
		if (me != "cli")
			fail("src/ never includes fs/ headers")
		next
	}
	if (!(to in rank)) {
		fail("not a folder of src/")
		next
	}
	if ((me == "vfs" && to == "archive") || (me == "archive" && to == "vfs"))
		fail("vfs/ and archive/ never include each other")
	else if (rank[to] > rank[me])
		fail(me "/ may not include " to "/, a layer above it")
}
END {
	if (bad) {
		printf "layering.sh: %d violation(s) of the layers of src/ (see the top of tests/layering.sh)\n", bad
		exit 1
	}
}
' $files

echo "layering.sh: $(echo "$files" | wc -l | tr -d ' ') files of src/ and fs/ keep their layers"
