# map: extent maps and their persistence (sidecars).
src_libvmbundle_a_SOURCES += \
	src/map/blockmap.c src/map/blockmap.h \
	src/map/sidecar.c src/map/sidecar.h \
	src/map/pages.c src/map/pages.h \
	src/map/journal.c src/map/journal.h \
	src/map/base.c src/map/base.h
