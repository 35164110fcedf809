# Import and export of bundles as archives (libarchive). Owned by the archive authors.
src_libvmbundle_a_SOURCES += \
	src/vmb_archive.h src/archive_int.h \
	src/archive_err.c src/archive_path.c src/archive_sparse.c \
	src/archive_staging.c src/archive_import.c src/archive_export.c \
	src/archive_deps.c \
	src/progress.c src/progress.h
vmbundlefs_SOURCES += src/cli_archive.c
