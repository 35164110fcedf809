# store: store directories, walking them, fsck.
src_libvmbundle_a_SOURCES += \
	src/store/store.c src/store/store_home.c src/store/store_walk.c src/store/store_rm.c src/store/store_staging.c \
	src/store/store.h \
	src/store/fsck.c src/store/fsck.h \
	src/store/store_log.c src/store/store_log.h \
	src/store/manifest.c src/store/manifest.h src/store/ops.h \
	src/store/ops_int.h src/store/ops.c src/store/snapshot.c src/store/clone.c \
	src/store/flatten.c src/store/gc.c src/store/deps.c \
	src/store/pull.c src/store/prefetch.c src/store/pubsnap.c \
	src/store/publish.c src/store/publish_sink.c src/store/publish_url.c \
	src/store/publish.h
