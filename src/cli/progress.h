/* progress.h - a one-line progress bar on a terminal.
 *
 *   import vm.tar  [#########.......]  1.2 GiB / 2.0 GiB  310 MiB/s  0:03 left
 *
 * Drawn only when the stream is a terminal, the time left shown only after a second
 * and 1% (or 8 MiB) of the work, redrawn at most 10 times a second, and
 * erased by vmb_progress_end. Not thread-safe; one bar per struct.
 */
#ifndef VMB_PROGRESS_H
#define VMB_PROGRESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct vmb_progress {
	FILE *out;            /* NULL: disabled */
	char label[64];
	uint64_t done, total;
	double start, last;   /* seconds (CLOCK_MONOTONIC) */
	int drawn;
};

/* Enable the bar when out is a terminal (else every call is a no-op). */
void vmb_progress_init(struct vmb_progress *p, FILE *out, const char *label);
/* Report progress (the signature of vmb_progress_fn, arg = the struct). */
void vmb_progress_update(void *p, uint64_t done, uint64_t total);
/* Erase the bar. */
void vmb_progress_end(struct vmb_progress *p);

/* The bar's text for the given state, without a line end (for tests). */
void vmb_progress_format(char *buf, size_t size, const char *label, uint64_t done,
			 uint64_t total, double elapsed, int width);
/* "1.2 GiB", "512 B" */
void vmb_progress_bytes(char *buf, size_t size, uint64_t v);

#endif
