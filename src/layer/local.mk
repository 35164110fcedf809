# layer: a store's immutable layers and the chains they form (layered images, issue 10).
src_libvmbundle_a_SOURCES += \
	src/layer/layer.h src/layer/layer_int.h \
	src/layer/layer_map.c \
	src/layer/layers.c \
	src/layer/chain.c \
	src/layer/create.c \
	src/layer/remote_layer.c
