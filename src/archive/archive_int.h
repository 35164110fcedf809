/* archive_int.h - internals shared by the archive_*.c files. */
#ifndef VMB_ARCHIVE_INT_H
#define VMB_ARCHIVE_INT_H

#include <stddef.h>
#include <stdint.h>
#include "archive/vmb_archive.h"
#include "map/blockmap.h"

/* How many bytes an import may still store, shared by all its files. */
struct vmb_budget {
	uint64_t stored;     /* bytes of data blocks written so far */
	uint64_t max;        /* --max-size, or the default bound */
	int explicit_max;    /* max came from the user */
	uint64_t free;       /* free space of the store's filesystem at the start */
};

/* Writes one regular file's data as a sparse file: data at its offsets, holes left
 * as holes, and whole 4 KiB blocks of zeros (aligned to the file) not written, even
 * when they arrive split across several data blocks. Data must arrive in increasing
 * offsets and within the entry's size. */
struct vmb_swriter {
	int fd;
	uint64_t size;        /* entry size (UINT64_MAX while unknown) */
	uint64_t end;         /* end of the data seen so far */
	uint64_t blk;         /* block number of the pending partial block */
	int pending;
	struct vmb_budget *budget;
	unsigned char buf[VMB_BLOCK_SIZE];
};

void vmb_sw_init(struct vmb_swriter *w, int fd, uint64_t size, struct vmb_budget *b);
/* Messages say what went wrong, without naming the file: the caller prefixes. */
int vmb_sw_data(struct vmb_swriter *w, const void *p, size_t n, uint64_t off,
		struct vmb_err *err);
/* Flush the pending block. */
int vmb_sw_finish(struct vmb_swriter *w, struct vmb_err *err);

#endif
