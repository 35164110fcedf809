/* fuzz.h - the parser fuzzers of the on-disk formats the daemon reads.
 *
 * Each fuzz_<format>.c defines the libFuzzer entry point LLVMFuzzerTestOneInput and
 * vmb_fuzz_seed(), which hands out its seed inputs (well-formed files of the
 * format, made by the library's own writers) one by one. The same file links either
 * with libFuzzer (clang -fsanitize=fuzzer: tests/fuzz/libfuzzer.sh) or with
 * driver.c, a plain main() that writes the seeds, replays inputs and runs a
 * deterministic mutation loop (make check, with gcc and the sanitizers of the build).
 */
#ifndef VMB_FUZZ_H
#define VMB_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Seed i into a malloc'ed *buf of *len bytes: 1, or 0 when there is no seed i. */
int vmb_fuzz_seed(unsigned i, uint8_t **buf, size_t *len);

/* A scratch store for targets that parse files of a store (made once per process,
 * removed at exit): its path. Aborts when it cannot be made: a fuzzer that cannot
 * put its input where the parser reads it tests nothing. */
const char *vmb_fuzz_store(void);

/* Replace file `name` of the scratch store's metadata directory by data. */
void vmb_fuzz_put_meta(const char *name, const uint8_t *data, size_t size);

#endif
