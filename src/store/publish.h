/* publish.h - publish snapshots of bundles as a published store (issue 11,
 * REMOTE.md section 1, vmbundlefs(5) "PUBLISHED STORES").
 *
 * vmb_publish reads snapshots (their manifests and immutable layers: a point-in-time
 * state whatever writes the live bundles meanwhile) and writes to a sink:
 *   - each regular file smaller than 1 MiB without holes as one object ('f'), any
 *     other as an image index ('i') and its chunks: fixed-size, aligned chunks of
 *     opts->chunk_size bytes; a 4 KiB block whose bytes are all zero is published
 *     as a hole, a chunk without data is never stored; identical chunks are one
 *     object (content addressed), and an object already at the sink is not written
 *     again (a republish after changing N bytes writes about N bytes);
 *   - then each bundle's manifest object;
 *   - then, last, the top index: the sink's previous index (its bundles kept unless
 *     republished, generation + 1), replaced atomically, signed with opts->key.
 *     Right before, the index is read again: when another publish replaced it
 *     since this one read it (an S3 sink is not locked), this publish's bundles
 *     are set over that one (stats->merged), so that its bundles are kept; right
 *     after, it is read back: -EAGAIN ("run the publish again") when it does not
 *     name this publish's bundles (another replaced it in between: S3 has no
 *     compare-and-swap that every server supports, so that moment remains).
 * A failure before the index leaves the previous index in place (objects written so
 * far are reused by the next publish). Nothing is removed from the sink.
 *
 * Sinks: a directory (vmb_pub_sink_dir_open) or, through a fetcher, S3
 * (vmb_pub_sink_url_open). A sink is
 * owned by its opener (close frees it); one publish at a time per sink (the
 * directory sink holds an exclusive flock on DEST while open). Not thread-safe.
 */
#ifndef VMB_PUBLISH_H
#define VMB_PUBLISH_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include "base/err.h"
#include "base/sign.h"

struct vmb_layers;
struct vmb_store;
struct vmb_pub_sink;
struct vmb_fetch_opts;

struct vmb_pub_sink_ops {
	/* Is the object at path (relative: "objects/aa/<hex>", named by digest d) there
	 * with the bytes buf[len]? VMB_PUB_ABSENT, VMB_PUB_GOOD, VMB_PUB_DAMAGED (there
	 * with another length or other bytes: put again, which replaces it), or
	 * -errno. How far each sink looks: vmb_pub_sink_dir_open, _url_open; verify
	 * (vmb_publish_opts): look at the bytes whatever it costs. */
	int (*check)(struct vmb_pub_sink *s, const char *path, const uint8_t d[32],
		     const void *buf, size_t len, int verify, struct vmb_err *err);
	/* Store len bytes at path, durably, replacing any object there atomically
	 * (never visible half written). 0 or -errno. */
	int (*put)(struct vmb_pub_sink *s, const char *path, const void *buf, size_t len,
		   struct vmb_err *err);
	/* The object at path whole into a malloc'ed *buf: 0, -ENOENT when absent,
	 * -EFBIG when longer than max, -errno. */
	int (*get)(struct vmb_pub_sink *s, const char *path, size_t max, void **buf,
		   size_t *len, struct vmb_err *err);
	/* Make every put so far durable before what comes next (the index). */
	int (*sync)(struct vmb_pub_sink *s, struct vmb_err *err);
	void (*close)(struct vmb_pub_sink *s);
};

enum { VMB_PUB_ABSENT = 0, VMB_PUB_GOOD = 1, VMB_PUB_DAMAGED = 2 };

struct vmb_pub_sink {
	const struct vmb_pub_sink_ops *ops;
	char *where;              /* for messages: "DIR" or "s3://BUCKET/PREFIX" */
};

/* The directory sink: DEST (created, mode 0755, when missing; its parent must
 * exist), locked with flock (-EBUSY: another publish to it runs). Objects are
 * written in DEST/.tmp/ (stale leftovers removed at open), fsync'ed, renamed
 * into DEST/objects/aa/; sync fsyncs the directories touched. check reads an
 * object that has the right length and compares its bytes (always: a damaged
 * object is repaired by any republish). */
int vmb_pub_sink_dir_open(const char *dest, struct vmb_pub_sink **out, struct vmb_err *err);
/* The sink over a fetcher (remote/fetch.h): s3://BUCKET/PREFIX (SigV4, credentials as
 * the fetchers find them, fo->endpoint for S3-compatible servers), and what else the
 * fetchers PUT to (file://DIR, http(s):// WebDAV-like servers). exists is a HEAD with
 * the length, put one PUT (atomic: an object appears whole or not), sync nothing (a
 * PUT is durable once answered). No lock: two publishes to one prefix at once are not
 * serialised (vmb_publish merges the index another wrote meanwhile and checks its
 * own after the put; every object either wrote stays valid). */
int vmb_pub_sink_url_open(const char *url, const struct vmb_fetch_opts *fo,
			  struct vmb_pub_sink **out, struct vmb_err *err);
void vmb_pub_sink_close(struct vmb_pub_sink *s);   /* NULL-safe */

typedef void (*vmb_pub_progress_fn)(void *arg, uint64_t done, uint64_t total);

struct vmb_publish_opts {
	uint32_t chunk_size;            /* 0: VMB_PIDX_CHUNK_DEFAULT */
	const struct vmb_sign_key *key; /* NULL: unsigned index */
	int64_t now;                    /* created; 0: time(NULL) */
	vmb_pub_progress_fn progress;   /* done/total: logical bytes of the files */
	void *progress_arg;
	volatile sig_atomic_t *cancel;  /* non-zero: stop with -EINTR (signals) */
	int verify;                     /* check's verify: every object already at the
					   sink read back (GET) and checked */
};

struct vmb_publish_stats {
	uint64_t files, images;         /* 'f' and 'i' records published */
	uint64_t chunks, zero_chunks;   /* chunks of images; those without data */
	uint64_t objects_written, bytes_written;   /* puts (the index included) */
	uint64_t objects_present, bytes_present;   /* found at the sink: not written */
	uint64_t objects_repaired;      /* found damaged at the sink (other bytes, or
					   another length): written again (counted in
					   objects_written too) */
	uint64_t logical_bytes;         /* sum of file sizes */
	uint64_t generation;            /* of the new index */
	int merged;                     /* another publish replaced the index meanwhile:
					   its bundles were kept */
};

/* One bundle to publish: its snapshot ("BUNDLE@NAME" in the store's snapshots)
 * and the name it gets in the published store. */
struct vmb_publish_item {
	const char *snapshot;
	const char *name;
};

/* Publish items (names unique) from the store's snapshots and layers to sink. */
int vmb_publish(struct vmb_store *store, struct vmb_layers *ls,
		const struct vmb_publish_item *items, size_t n, struct vmb_pub_sink *sink,
		const struct vmb_publish_opts *opts, struct vmb_publish_stats *st,
		struct vmb_err *err);

#endif
