# Parser fuzzers of the on-disk formats the daemon reads (tests/fuzz/fuzz.h). Here
# they link with a plain driver: make check replays their seeds and a deterministic
# mutation run (tests/fuzz.sh); tests/fuzz/libfuzzer.sh builds them with libFuzzer.
VMB_FUZZ_TARGETS = \
	tests/fuzz/fuzz_sidecar \
	tests/fuzz/fuzz_layout \
	tests/fuzz/fuzz_auxpat \
	tests/fuzz/fuzz_journal \
	tests/fuzz/fuzz_holders \
	tests/fuzz/fuzz_manifest \
	tests/fuzz/fuzz_layermap \
	tests/fuzz/fuzz_pubindex \
	tests/fuzz/fuzz_pubbundle \
	tests/fuzz/fuzz_pubimage

check_PROGRAMS += $(VMB_FUZZ_TARGETS)
TESTS += tests/fuzz.sh
EXTRA_DIST += tests/fuzz.sh tests/fuzz/libfuzzer.sh

VMB_FUZZ_COMMON = tests/fuzz/driver.c tests/fuzz/fuzz_store.c tests/fuzz/fuzz.h \
	tests/unit/harness.h

tests_fuzz_fuzz_sidecar_SOURCES = tests/fuzz/fuzz_sidecar.c $(VMB_FUZZ_COMMON)
tests_fuzz_fuzz_sidecar_LDADD = $(VMB_CORE_LIBS)
tests_fuzz_fuzz_layout_SOURCES = tests/fuzz/fuzz_layout.c $(VMB_FUZZ_COMMON)
tests_fuzz_fuzz_layout_LDADD = $(VMB_CORE_LIBS)
tests_fuzz_fuzz_auxpat_SOURCES = tests/fuzz/fuzz_auxpat.c $(VMB_FUZZ_COMMON)
tests_fuzz_fuzz_auxpat_LDADD = $(VMB_CORE_LIBS)
tests_fuzz_fuzz_journal_SOURCES = tests/fuzz/fuzz_journal.c $(VMB_FUZZ_COMMON)
tests_fuzz_fuzz_journal_LDADD = $(VMB_CORE_LIBS)
tests_fuzz_fuzz_holders_SOURCES = tests/fuzz/fuzz_holders.c $(VMB_FUZZ_COMMON)
tests_fuzz_fuzz_holders_LDADD = $(VMB_CORE_LIBS)
tests_fuzz_fuzz_manifest_SOURCES = tests/fuzz/fuzz_manifest.c $(VMB_FUZZ_COMMON)
tests_fuzz_fuzz_manifest_LDADD = $(VMB_CORE_LIBS)
tests_fuzz_fuzz_layermap_SOURCES = tests/fuzz/fuzz_layermap.c $(VMB_FUZZ_COMMON)
tests_fuzz_fuzz_layermap_LDADD = $(VMB_CORE_LIBS)
tests_fuzz_fuzz_pubindex_SOURCES = tests/fuzz/fuzz_pubindex.c tests/fuzz/pubseal.h $(VMB_FUZZ_COMMON)
tests_fuzz_fuzz_pubindex_LDADD = $(VMB_CORE_LIBS)
tests_fuzz_fuzz_pubbundle_SOURCES = tests/fuzz/fuzz_pubbundle.c tests/fuzz/pubseal.h $(VMB_FUZZ_COMMON)
tests_fuzz_fuzz_pubbundle_LDADD = $(VMB_CORE_LIBS)
tests_fuzz_fuzz_pubimage_SOURCES = tests/fuzz/fuzz_pubimage.c $(VMB_FUZZ_COMMON)
tests_fuzz_fuzz_pubimage_LDADD = $(VMB_CORE_LIBS)
