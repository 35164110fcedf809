/* store_log.h - the daemons' log in the store's metadata directory.
 *
 *   STORE/.vmbundlefs/log      the current log, mode 0600, one line per message:
 *       2026-12-01T16:50:01.123Z vmbundlefs[PID] MOUNTPOINT: message
 *   STORE/.vmbundlefs/log.1    the previous generation, log.2 the one before
 *   STORE/.vmbundlefs/log.lock held (flock, exclusive, never waited for) to rotate
 *
 * Every mount of the store appends to it, whatever else it logs to, so the reason
 * for an EIO is kept where `vmbundlefs status` finds it. A line is one write(2) on
 * an O_APPEND descriptor, so the lines of several daemons never mix. Past
 * VMB_STORE_LOG_MAX bytes the daemon that notices takes log.lock without waiting,
 * renames log.1 to log.2 and log to log.1, and starts a new log; the others see
 * that the name points to a new file at their next line and reopen it.
 * Writing never blocks for long and never fails its caller: errors are dropped.
 *
 * A struct vmb_store_log is owned by whoever opened it; vmb_store_log_write is
 * thread-safe (its own mutex, taken only around the write and a rotation).
 */
#ifndef VMB_STORE_LOG_H
#define VMB_STORE_LOG_H

#include <stddef.h>
#include "base/err.h"
#include "store/store.h"   /* VMB_META_DIR */

#define VMB_STORE_LOG_FILE "log"
#define VMB_STORE_LOG_MAX (1024 * 1024)   /* bytes; then rotated */
#define VMB_STORE_LOG_KEEP 2              /* old generations: log.1, log.2 */

struct vmb_store_log;

/* Open (create, 0600) the log of the store at path for a daemon serving
 * mountpoint (an absolute path, written on every line). */
int vmb_store_log_open(struct vmb_store_log **out, const char *store,
		       const char *mountpoint, struct vmb_err *err);
/* Append one line (newlines in msg become spaces); rotates when due. */
void vmb_store_log_write(struct vmb_store_log *l, const char *msg);
/* l may be NULL. */
void vmb_store_log_close(struct vmb_store_log *l);

/* The last up to n lines of the log of the store whose metadata directory is
 * metafd, oldest first, reaching into older generations when the current log has
 * fewer. *lines is NULL-terminated and freed with vmb_store_log_free. A store with
 * no log yet gives 0 lines. */
int vmb_store_log_tail(int metafd, size_t n, char ***lines, size_t *count,
		       struct vmb_err *err);
void vmb_store_log_free(char **lines);

#endif
