/* bufpool.h - a process-wide pool of large buffers (chunk-sized), kept warm.
 *
 * A buffer freed to the C library may go back to the kernel, and memory the kernel
 * hands out again is new to the page tables: its first touch faults once per page.
 * On a virtual machine such a fault can cost the host's own fault as well (13 us a
 * page was measured on the test machines: 0.8 ms for a 256 KiB chunk, more than its
 * transfer on loopback). The fetch path allocates a buffer per chunk, so it keeps its
 * buffers here instead: a released buffer waits for the next of its size class.
 *
 * Size classes are powers of two from 64 KiB to 16 MiB; a class keeps at most
 * VMB_BUFPOOL_KEEP bytes of idle buffers (the rest is freed). Smaller and larger
 * requests are plain allocations. Buffers are 4096-byte aligned. Thread-safe (one
 * mutex, held for a list operation only).
 */
#ifndef VMB_BUFPOOL_H
#define VMB_BUFPOOL_H

#include <stddef.h>

#define VMB_BUFPOOL_KEEP (32u << 20)

/* A buffer of at least len bytes (len 0: 1), or NULL when out of memory. */
void *vmb_buf_get(size_t len);
/* Give back a buffer of vmb_buf_get; NULL-safe. */
void vmb_buf_put(void *buf);
/* Fill the class of len with up to n idle buffers whose pages are touched (a
 * background thread at start: the first reads then find warm memory). */
void vmb_buf_prefault(size_t len, unsigned n);
/* Bytes of idle buffers in the class of len (0 when len is not pooled). */
size_t vmb_buf_idle(size_t len);

#endif
