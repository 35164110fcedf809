/* fuzz_journal.c - fuzz the sidecar journal decoder (map/journal.c, vmbundlefs(5)).
 *
 * The input is a journal; it is replayed over a fixed base map (the decoder is told
 * to accept any base). Oracle: no crash; a rejected journal has a message and leaves
 * the map untouched; an accepted one gives a valid map (vmb_blockmap_check), within
 * the input's length, and replaying it again gives the same map and stamp. */
#include "config.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz.h"
#include "map/blockmap.h"
#include "map/journal.h"
#include "map/sidecar.h"

static void must(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_journal: %s\n", what);
		abort();
	}
}

static void base_map(struct vmb_blockmap *m, struct vmb_stamp *s)
{
	vmb_blockmap_init(m);
	vmb_blockmap_set(m, 0, 4, VMB_DATA);
	vmb_blockmap_set(m, 4, 60, VMB_ZERO);
	vmb_blockmap_set(m, 64, 2, VMB_DATA);
	memset(s, 0, sizeof(*s));
	s->ino = 77;
	s->size = 66 * 4096;
	s->mtime_sec = 1700000000;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vmb_blockmap m, m2, orig;
	struct vmb_stamp s, s2, so;
	struct vmb_journal_info info, info2;
	struct vmb_err err;

	base_map(&m, &s);
	base_map(&m2, &s2);
	base_map(&orig, &so);
	vmb_err_clear(&err);
	if (vmb_journal_decode(data, size, NULL, &m, &s, &info, &err) == 0) {
		must(vmb_blockmap_check(&m) == 0, "accepted a journal that breaks the map");
		must(info.len <= size, "valid records past the end of the input");
		must(vmb_journal_decode(data, size, NULL, &m2, &s2, &info2, &err) == 0,
		     "a second replay fails");
		must(vmb_blockmap_equal(&m, &m2) && vmb_stamp_equal(&s, &s2),
		     "two replays differ");
	} else {
		must(err.msg[0] != '\0', "rejected without a message");
		must(vmb_blockmap_equal(&m, &orig) && vmb_stamp_equal(&s, &so),
		     "a rejected journal changed the map");
	}
	vmb_blockmap_destroy(&m);
	vmb_blockmap_destroy(&m2);
	vmb_blockmap_destroy(&orig);
	return 0;
}

/* Seeds: a header alone; header + BEGIN; header + BEGIN + COMMIT; two commits. */
int vmb_fuzz_seed(unsigned i, uint8_t **out, size_t *len)
{
	struct vmb_journal_base base = { .len = 8192 };
	struct vmb_blockmap m, dirty;
	struct vmb_stamp s;
	unsigned char *buf;
	size_t n = 0, clen;
	void *commit;
	unsigned k;
	int ok = 1;

	if (i > 3)
		return 0;
	buf = malloc(64 * 1024);
	if (!buf)
		return 0;
	vmb_journal_encode_header(buf, &base, 1);
	n = VMB_JOURNAL_HDR;
	base_map(&m, &s);
	vmb_blockmap_init(&dirty);
	for (k = 0; k < i && ok; k++) {
		vmb_journal_encode_begin(buf + n, 1 + 2 * k);
		n += 24;
		if (i < 2)
			break;
		vmb_blockmap_set(&m, 10 + k, 3, VMB_DATA);
		vmb_blockmap_set(&dirty, 10 + k, 3, VMB_DATA);
		s.mtime_nsec = k + 1;
		if (vmb_journal_encode_commit(&m, &dirty, &s, 2 + 2 * k, &commit, &clen, NULL) < 0) {
			ok = 0;
			break;
		}
		memcpy(buf + n, commit, clen);
		n += clen;
		free(commit);
		if (i == 2)
			break;
	}
	vmb_blockmap_destroy(&m);
	vmb_blockmap_destroy(&dirty);
	if (!ok) {
		free(buf);
		return 0;
	}
	*out = buf;
	*len = n;
	return 1;
}
