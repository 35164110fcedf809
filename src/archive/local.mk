# archive: import and export of bundles as archives (libarchive). Owned by the archive
# authors. Beside vfs: never includes it.
src_libvmbundle_a_SOURCES += \
	src/archive/vmb_archive.h src/archive/archive_int.h \
	src/archive/archive_err.c src/archive/archive_path.c src/archive/archive_sparse.c \
	src/archive/archive_staging.c src/archive/archive_import.c \
	src/archive/archive_export.c
