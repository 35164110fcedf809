# Import and export of bundles as archives (libarchive). Owned by the archive authors.
vmbundlefs_SOURCES += src/cli_archive_stub.c
