# Man pages (see man/SPEC.txt for the interface they document).
dist_man_MANS += man/vmbundlefs.1 man/vmbundlefs.5
EXTRA_DIST += man/SPEC.txt man/SPEC-archive.txt
