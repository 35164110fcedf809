/* testbase.h - an in-memory test double of struct vmb_base (map/base.h) for the unit
 * tests of images over a base: given bytes and the blocks that hold data, it answers
 * lookup and read as a layer chain would, optionally with a descriptor of a file
 * holding the data blocks at their offsets (holes elsewhere), and can be told to
 * fail its reads (a layer gone bad). A resolver finds them by id.
 *
 * Header-only (static functions): include it once per test program.
 */
#ifndef VMB_TEST_TESTBASE_H
#define VMB_TEST_TESTBASE_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "map/base.h"
#include "base/fdio.h"

struct tbase {
	struct vmb_base b;
	unsigned char *data;     /* size bytes */
	unsigned char *mask;     /* per block below nblocks: 1 when DATA */
	uint64_t *runlen;        /* per block: blocks from it with the same mask */
	uint64_t nblocks;
	int fd;                  /* -1: bytes only through read */
	int fail;                /* reads fail with -EIO */
	uint64_t reads;          /* read calls */
	uint64_t lookups;        /* lookup calls */
};

static enum vmb_bstate tbase_lookup(struct vmb_base *b, uint64_t blk, uint64_t *run, int *fd)
{
	struct tbase *t = (struct tbase *)b;

	t->lookups++;
	if (blk >= t->nblocks) {
		*run = VMB_BLOCK_MAX - blk;
		return VMB_ZERO;
	}
	*run = t->runlen[blk];
	if (t->mask[blk]) {
		*fd = t->fd;
		return VMB_DATA;
	}
	return VMB_ZERO;
}

static ssize_t tbase_read(struct vmb_base *b, void *buf, size_t len, uint64_t off,
			  struct vmb_err *err)
{
	struct tbase *t = (struct tbase *)b;

	t->reads++;
	if (t->fail)
		return vmb_err_set(err, EIO, "cannot read layer '%s': test failure", b->id);
	if (off > b->size || len > b->size - off)
		return vmb_err_set(err, EINVAL, "read of layer '%s' past its size", b->id);
	memcpy(buf, t->data + off, len);
	return (ssize_t)len;
}

static void tbase_destroy(struct vmb_base *b)
{
	struct tbase *t = (struct tbase *)b;

	if (t->fd >= 0)
		close(t->fd);
	free(t->data);
	free(t->mask);
	free(t->runlen);
	free(t);
}

static const struct vmb_base_ops tbase_ops = { tbase_lookup, tbase_read, tbase_destroy };

/* A base of size bytes of data, DATA where mask says (NULL: every block that is
 * not all zeros), id made from n. With dir >= 0, its data blocks are also written
 * to a new file there (holes elsewhere) whose descriptor lookup hands out. One
 * reference (vmb_base_put). NULL on failure. */
static struct tbase *tbase_new(unsigned n, const unsigned char *data, uint64_t size,
			       const unsigned char *mask, int dir)
{
	struct tbase *t = calloc(1, sizeof(*t));
	uint64_t i, nb = (size + VMB_BLOCK_SIZE - 1) / VMB_BLOCK_SIZE;

	if (!t)
		return NULL;
	t->b.ops = &tbase_ops;
	snprintf(t->b.id, sizeof(t->b.id), "%032x", n);
	t->b.size = size;
	t->b.depth = 1;
	t->b.refs = 1;
	t->fd = -1;
	t->nblocks = nb;
	t->data = malloc(size ? size : 1);
	t->mask = calloc(1, nb ? nb : 1);
	t->runlen = calloc(nb ? nb : 1, sizeof(*t->runlen));
	if (!t->data || !t->mask || !t->runlen) {
		tbase_destroy(&t->b);
		return NULL;
	}
	memcpy(t->data, data, size);
	for (i = 0; i < nb; i++) {
		uint64_t len = size - i * VMB_BLOCK_SIZE < VMB_BLOCK_SIZE ?
			       size - i * VMB_BLOCK_SIZE : VMB_BLOCK_SIZE;
		const unsigned char *p = data + i * VMB_BLOCK_SIZE;
		t->mask[i] = mask ? mask[i] : !(p[0] == 0 && !memcmp(p, p + 1, len - 1));
		t->b.data_blocks += t->mask[i];
	}
	for (i = nb; i-- > 0;)
		t->runlen[i] = i + 1 < nb && t->mask[i + 1] == t->mask[i] ? t->runlen[i + 1] + 1 : 1;
	if (dir >= 0) {
		char name[64];
		snprintf(name, sizeof(name), "base-%s.data", t->b.id);
		t->fd = openat(dir, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (t->fd < 0 || ftruncate(t->fd, (off_t)size) < 0) {
			tbase_destroy(&t->b);
			return NULL;
		}
		for (i = 0; i < nb; i++) {
			uint64_t off = i * VMB_BLOCK_SIZE;
			size_t len = size - off < VMB_BLOCK_SIZE ? (size_t)(size - off) : VMB_BLOCK_SIZE;
			size_t done;
			if (t->mask[i] && vmb_pwrite_full(t->fd, data + off, len, off, &done) < 0) {
				tbase_destroy(&t->b);
				return NULL;
			}
		}
	}
	return t;
}

/* A resolver over a table of bases (borrowed; NULL entries skipped). */
struct tbase_table {
	struct tbase **v;
	size_t n;
};

static int tbase_resolve(void *arg, const char *id, struct vmb_base **out, struct vmb_err *err)
{
	struct tbase_table *tt = arg;

	for (size_t i = 0; i < tt->n; i++) {
		if (tt->v[i] && !strcmp(tt->v[i]->b.id, id)) {
			vmb_base_get(&tt->v[i]->b);
			*out = &tt->v[i]->b;
			return 0;
		}
	}
	return vmb_err_set(err, EIO, "layer '%s' is missing (test)", id);
}

#endif
