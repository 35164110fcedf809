/* cache_stats.c - the cache's counters (see cache.h). */
#include "config.h"
#include "remote/cache_int.h"

#include <string.h>

void vmb_cache_stats(struct vmb_cache *c, struct vmb_cache_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->bytes = VMB_ATOMIC_LOAD(&c->bytes);
	st->chunks = VMB_ATOMIC_LOAD(&c->chunks);
	st->hits = VMB_ATOMIC_LOAD(&c->hits);
	st->misses = VMB_ATOMIC_LOAD(&c->misses);
	st->waits = VMB_ATOMIC_LOAD(&c->waits);
	st->fills = VMB_ATOMIC_LOAD(&c->fills);
	st->fill_bytes = VMB_ATOMIC_LOAD(&c->fill_bytes);
	st->evicted = VMB_ATOMIC_LOAD(&c->evicted);
	st->verify_failures = VMB_ATOMIC_LOAD(&c->verify_failures);
	st->scans = VMB_ATOMIC_LOAD(&c->scans);
	pthread_mutex_lock(&c->fl_mu);
	st->pending = c->npend;
	st->pending_bytes = c->pend_bytes;
	pthread_mutex_unlock(&c->fl_mu);
}
