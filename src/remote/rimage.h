/* rimage.h - a remote image as a struct vmb_base (map/base.h; issue 11, REMOTE.md §4).
 *
 * A remote image is an image index of a published store (remote/pubfmt.h) and the
 * store's URL. lookup answers from the index's 4 KiB-exact data map (no I/O; fd is
 * always -1: its bytes come by read). read takes the chunks it covers from the
 * host's cache (remote/cache.h), which fills a missing one through the fetcher of
 * the URL and verifies it before anyone uses it; zero chunks are never fetched.
 *
 * Warm reads are cheap: the descriptors of the last chunks read stay open in a small
 * LRU (VMB_RIMAGE_FDS slots; an entry in use by a reader is never closed under it).
 * Readahead follows up to VMB_RIMAGE_STREAMS streams of contiguous reads. Once a
 * stream has read VMB_RIMAGE_RA_MIN bytes without a gap, each of its reads queues
 * the chunks after it, as many as the stream is long, up to the cap
 * (opts.readahead_max chunks; 0: VMB_RIMAGE_RA_BYTES of chunks), to the context's
 * workers, so several fetches are in flight. A stream that begins at byte 0 is
 * taken for sequential sooner, as the kernel takes a read at a file's start: it
 * counts as VMB_RIMAGE_START_MULT times as long as it is, up to VMB_RIMAGE_RA_MIN
 * (a 128 KiB read from byte 0, the kernel's readahead request on a URL's mount,
 * reads ahead at once; a probe of a header, a few KiB, does not). Holes do not
 * break a stream: a read that begins where data begins again after a stream's
 * end, with nothing but zero blocks between, continues it (a sparse copy:
 * SEEK_DATA, then read); from then on its window counts data chunks, so it
 * reaches past holes of any size (found through the index's extents). A plain
 * sequential reader's window counts every chunk, holes included, as before. A read
 * elsewhere starts a new stream; it queues the VMB_RIMAGE_NEAR chunks after it
 * when the image's recent streams mostly went on (a later read of theirs reached
 * past the chunks of their first read; a score: +1 for each that did, -1 for each
 * retired from the VMB_RIMAGE_STREAMS slots without doing so, kept in
 * 0..VMB_RIMAGE_NEAR_SCORE_MAX, on from VMB_RIMAGE_NEAR_SCORE_ON; it starts at 0).
 * Clusters of reads (a VM booting) so get their next chunks fetched at once;
 * random reads, whose streams stop after their first read, fetch nothing extra
 * once two of them retire. A read's own chunks after its first are queued too
 * (fetched beside the reader, which takes the first). What a full queue does not
 * take of a window is queued by the stream's next read.
 *
 * A read that cannot get its bytes fails with -EIO (soft mode, after the fetcher's
 * retries) with a message naming the image, the chunk, its offset, the URL and the
 * cause; never zeros in place of bytes.
 *
 * Ownership: the base is refcounted (map/base.h); the image holds no reference on
 * its struct vmb_remote (which must outlive it). Locking: one mutex per image
 * guards the fd LRU and the readahead state; never held during a fetch.
 */
#ifndef VMB_RIMAGE_H
#define VMB_RIMAGE_H

#include <stdint.h>
#include "map/base.h"
#include "base/err.h"

struct vmb_remote;
struct vmb_rimage;

#define VMB_RIMAGE_FDS 32
#define VMB_RIMAGE_INDEX_MAX (256u << 20)   /* largest image index accepted */
#define VMB_RIMAGE_STREAMS 4
#define VMB_RIMAGE_RA_MIN (2u << 20)        /* a stream this long reads ahead */
#define VMB_RIMAGE_RA_BYTES (16u << 20)     /* default cap of the window */
#define VMB_RIMAGE_START_MULT 16            /* a stream from byte 0 counts this many
						times as long (up to RA_MIN) */
#define VMB_RIMAGE_GAP (64u << 10)          /* a read this far past a stream goes on with it
						(or as far as it is long) */
#define VMB_RIMAGE_NEAR 3                   /* chunks a new stream reads ahead */
#define VMB_RIMAGE_NEAR_SCORE_ON 2
#define VMB_RIMAGE_NEAR_SCORE_MAX 4

/* The most bytes the image index of an image of `size` logical bytes may have:
 * its header, one extent for every other 4 KiB block and one digest per 64 KiB
 * (the smallest chunk), at most VMB_RIMAGE_INDEX_MAX. A published store that
 * declares an image of a huge size cannot make its reader fetch more than that. */
uint64_t vmb_rimage_index_limit(uint64_t size);

/* Open the image whose index object is digest at url (normalized), logical size
 * `size` (must match the index). The index comes through vmb_remote_meta (CACHE/meta,
 * else fetched), refused (-EFBIG, naming the image, the URL and the sizes) when it
 * is larger than vmb_rimage_index_limit(size), before more is fetched. Base id = the first 32 hex digits of the digest. An image the
 * context keeps (remote.h, "open images kept") is shared: a new reference on the
 * same base, its index not read again. */
int vmb_rimage_open(struct vmb_remote *r, const char *url, const uint8_t digest[32],
		    uint64_t size, struct vmb_base **out, struct vmb_err *err);
/* The same with other URLs of the same published image (mirrors: the same
 * content-addressed objects): urls[0] is the image's own (the kept image's key,
 * named in messages), the others are tried, in turn, for the index when urls[0]
 * fails, and for every chunk: a fetch tries the URL that worked last, then the
 * others, each with the fetcher's retries (soft mode; in hard mode the first one
 * tried waits for its network); the cache's second fill after wrong bytes starts
 * at the next URL. The first time another URL serves, the log says so. An image
 * kept already gains the URLs it lacks (up to VMB_RIMAGE_MIRRORS). */
#define VMB_RIMAGE_MIRRORS 8
int vmb_rimage_open_urls(struct vmb_remote *r, const char *const *urls, unsigned nurls,
			 const uint8_t digest[32], uint64_t size, struct vmb_base **out,
			 struct vmb_err *err);
/* Add a URL to try for ri's objects (no-op when it has it, or has
 * VMB_RIMAGE_MIRRORS). 0 or -ENOMEM. */
int vmb_rimage_add_mirror(struct vmb_rimage *ri, const char *url);

/* The remote image of a base opened by vmb_rimage_open, or NULL. */
struct vmb_rimage *vmb_rimage_of(struct vmb_base *b);
struct vmb_base *vmb_rimage_base(struct vmb_rimage *ri);

/* Facts for status and xattrs. cached/remote: bytes of data chunks present in the
 * cache / not (one stat per data chunk). */
struct vmb_rimage_info {
	const char *url;          /* the URL its fetches go to now */
	unsigned mirrors;         /* other URLs it has */
	char index_hex[65];
	uint64_t size, chunk_size, n_chunks, data_chunks;
	uint64_t cached_bytes, remote_bytes;
	uint64_t errors;
	char last_error[256];
};
int vmb_rimage_info(struct vmb_rimage *ri, struct vmb_rimage_info *info, struct vmb_err *err);

/* Make chunk i present in the cache (a readahead worker, prefetch). *fetched: bytes
 * fetched (0 when cached or a zero chunk). */
int vmb_rimage_fill(struct vmb_rimage *ri, uint64_t i, uint64_t *fetched,
		    struct vmb_err *err);
uint64_t vmb_rimage_chunks(const struct vmb_rimage *ri);
/* 1 when chunk i holds data (must be fetched to be read), 0 for a zero chunk. */
int vmb_rimage_chunk_data(const struct vmb_rimage *ri, uint64_t i);
/* Length of chunk i in bytes. */
uint64_t vmb_rimage_chunk_len(const struct vmb_rimage *ri, uint64_t i);
/* 1 when chunk i is in the cache. */
int vmb_rimage_chunk_cached(struct vmb_rimage *ri, uint64_t i);

#endif
