/* cache_fsck.c - checking a cache: every object re-hashed (chunks/ and meta/), stale
 * temporaries, stray files, malformed pins, leftover lock files (see cache.h). It may run beside
 * mounts and commands using the cache: an object is checked and removed under its
 * digest lock (tried, never waited for: a busy object is skipped and counted). */
#include "config.h"
#include "remote/cache_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct fsck {
	struct vmb_cache *c;
	int repair;
	FILE *out;
	unsigned objects, bad, stale, stray, badpins, busy, locks, left;
	uint64_t bytes;
};

static DIR *opendir_at(int fd, const char *name)
{
	int dfd = openat(fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	DIR *d;

	if (dfd < 0)
		return NULL;
	if (!(d = fdopendir(dfd)))
		close(dfd);
	return d;
}

static int is_dot(const char *n)
{
	return !strcmp(n, ".") || !strcmp(n, "..");
}

static int is_aa(const char *n)
{
	return strlen(n) == 2 && strspn(n, "0123456789abcdef") == 2;
}

/* A name in one of the cache's folders that the cache did not put there: files
 * go with repair, directories are reported and left alone. */
static void stray(struct fsck *f, int dfd, const char *folder, const char *name)
{
	struct stat st;
	int dir = fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
	int gone = !dir && f->repair && unlinkat(dfd, name, 0) == 0;

	f->stray++;
	if (!gone)
		f->left++;
	if (f->out)
		fprintf(f->out, "cache '%s': %s%s: a stray %s%s\n", f->c->path, folder, name,
			dir ? "directory" : "file", dir ? " (left alone)" : gone ? " (removed)" : "");
}

static void check_object(struct fsck *f, int dfd, const char *kind, const char *aa,
			 const char *name)
{
	struct vmb_cache *c = f->c;
	char gh[VMB_SHA256_HEX];
	uint8_t want[32], got[32];
	uint64_t size = 0;
	struct vmb_err e;
	struct stat st;
	int lfd, fd, r;

	vmb_cache_unhex(name, want);
	if (vmb_cache_lock(c, want, 0, &lfd, NULL) < 0) {
		f->busy++;
		return;
	}
	fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		vmb_cache_unlock(lfd);
		return;   /* evicted meanwhile */
	}
	vmb_err_clear(&e);
	r = vmb_cache_hash_fd(fd, got, &size, &e);
	f->objects++;
	f->bytes += size;
	if (fstat(fd, &st) == 0 && !vmb_cache_trusted(c, &st)) {
		/* right bytes or not: others could change them (never served) */
		f->bad++;
		if (f->out)
			fprintf(f->out, "cache '%s': %s/%s/%s: owned by uid %u, mode %04o: "
				"others could change its bytes%s\n", c->path, kind, aa, name,
				(unsigned)st.st_uid, (unsigned)(st.st_mode & 07777),
				f->repair ? " (removed)" : "");
		if (!f->repair || unlinkat(dfd, name, 0) < 0)
			f->left++;
	} else if (r < 0) {
		f->bad++;
		if (f->out)
			fprintf(f->out, "cache '%s': %s/%s/%s: cannot read it (%s)%s\n", c->path,
				kind, aa, name, e.msg, f->repair ? " (removed)" : "");
		if (!f->repair || unlinkat(dfd, name, 0) < 0)
			f->left++;
	} else if (memcmp(got, want, 32) != 0) {
		f->bad++;
		VMB_ATOMIC_ADD(&c->verify_failures, 1);
		vmb_sha256_hex(got, gh);
		if (f->out)
			fprintf(f->out, "cache '%s': %s/%s/%s: its bytes do not match its name "
				"(SHA-256 %s, %llu bytes)%s\n", c->path, kind, aa, name, gh,
				(unsigned long long)size, f->repair ? " (removed)" : "");
		if (!f->repair || unlinkat(dfd, name, 0) < 0)
			f->left++;
	}
	close(fd);
	vmb_cache_unlock(lfd);
}

/* A temporary of remote.c's write of a meta/ object: ".<64 hex>.<pid>.<8 hex>"
 * (its digest into d). */
static int is_meta_tmp(const char *n, uint8_t d[32])
{
	char hex[65];
	const char *p;

	if (n[0] != '.' || strlen(n) < 1 + 64 + 2 + 1 + 8 || n[65] != '.')
		return 0;
	memcpy(hex, n + 1, 64);
	hex[64] = '\0';
	if (vmb_cache_unhex(hex, d) < 0)
		return 0;
	p = strrchr(n, '.');
	return p > n + 66 && strlen(p + 1) == 8 && strspn(p + 1, "0123456789abcdef") == 8 &&
	       strspn(n + 66, "0123456789") == (size_t)(p - (n + 66));
}

/* A temporary in meta/<aa>/: stale when its object's lock is free (its writer
 * holds it until the rename); removed with repair. */
static void meta_tmp(struct fsck *f, int dfd, const char *folder, const char *name,
		     const uint8_t d[32])
{
	int lfd, gone;

	if (vmb_cache_lock(f->c, d, 0, &lfd, NULL) < 0) {
		f->busy++;   /* being written */
		return;
	}
	gone = f->repair && unlinkat(dfd, name, 0) == 0;
	vmb_cache_unlock(lfd);
	f->stale++;
	if (!gone)
		f->left++;
	if (f->out)
		fprintf(f->out, "cache '%s': %s%s: a temporary of an interrupted write of a "
			"metadata object%s\n", f->c->path, folder, name, gone ? " (removed)" : "");
}

/* The objects of chunks/ (top: c->chunksfd) or meta/. */
static void check_objects(struct fsck *f, int topfd, const char *kind)
{
	struct dirent *e, *o;
	DIR *top = opendir_at(topfd, "."), *d;
	int meta = !strcmp(kind, "meta");
	char tfolder[16];

	if (!top)
		return;
	snprintf(tfolder, sizeof(tfolder), "%s/", kind);
	while ((e = readdir(top))) {
		char folder[16];
		struct stat st;

		if (is_dot(e->d_name))
			continue;
		if (!is_aa(e->d_name) || fstatat(topfd, e->d_name, &st,
						 AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode)) {
			stray(f, topfd, tfolder, e->d_name);
			continue;
		}
		if (!(d = opendir_at(topfd, e->d_name)))
			continue;
		snprintf(folder, sizeof(folder), "%s/%s/", kind, e->d_name);
		while ((o = readdir(d))) {
			uint8_t dg[32];

			if (is_dot(o->d_name))
				continue;
			if (meta && is_meta_tmp(o->d_name, dg) &&
			    !strncmp(o->d_name + 1, e->d_name, 2)) {
				meta_tmp(f, dirfd(d), folder, o->d_name, dg);
				continue;
			}
			if (strlen(o->d_name) != 64 || strncmp(o->d_name, e->d_name, 2) ||
			    vmb_cache_unhex(o->d_name, dg) < 0 ||
			    fstatat(dirfd(d), o->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
			    !S_ISREG(st.st_mode)) {
				stray(f, dirfd(d), folder, o->d_name);
				continue;
			}
			check_object(f, dirfd(d), kind, e->d_name, o->d_name);
		}
		closedir(d);
	}
	closedir(top);
}

static void check_chunks(struct fsck *f)
{
	int mfd;

	check_objects(f, f->c->chunksfd, "chunks");
	mfd = openat(f->c->dirfd, "meta", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (mfd < 0) {
		if (errno == ENOTDIR || errno == ELOOP) {
			f->stray++;
			f->left++;
			if (f->out)
				fprintf(f->out, "cache '%s': meta: not a directory (left alone)\n",
					f->c->path);
		}
		return;
	}
	check_objects(f, mfd, "meta");
	close(mfd);
}

static void check_locks(struct fsck *f)
{
	struct vmb_cache *c = f->c;
	struct dirent *e, *o;
	DIR *top = opendir_at(c->lockfd, "."), *d;

	if (!top)
		return;
	while ((e = readdir(top))) {
		char folder[16];

		if (is_dot(e->d_name) || !strcmp(e->d_name, "evict") ||
		    !strcmp(e->d_name, "objects"))
			continue;
		if (!is_aa(e->d_name) || !(d = opendir_at(c->lockfd, e->d_name))) {
			stray(f, c->lockfd, "lock/", e->d_name);
			continue;
		}
		snprintf(folder, sizeof(folder), "lock/%s/", e->d_name);
		while ((o = readdir(d))) {
			uint8_t dg[32];

			if (is_dot(o->d_name))
				continue;
			if (strlen(o->d_name) != 64 || strncmp(o->d_name, e->d_name, 2) ||
			    vmb_cache_unhex(o->d_name, dg) < 0) {
				stray(f, dirfd(d), folder, o->d_name);
				continue;
			}
			/* a lock file of the layout before lock/objects: nobody uses it */
			if (f->repair && unlinkat(dirfd(d), o->d_name, 0) == 0)
				f->locks++;
		}
		closedir(d);
	}
	closedir(top);
}

static void check_pins_urls(struct fsck *f)
{
	struct vmb_cache *c = f->c;
	struct dirent *e;
	DIR *d = opendir_at(c->pinsfd, ".");

	while (d && (e = readdir(d))) {
		uint8_t (*v)[32] = NULL;
		size_t n = 0, cap = 0;
		struct vmb_err err;
		struct stat st;

		if (is_dot(e->d_name))
			continue;
		if (fstatat(c->pinsfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode) || e->d_name[0] == '.') {
			stray(f, c->pinsfd, "pins/", e->d_name);
			continue;
		}
		vmb_err_clear(&err);
		if (vmb_cache_pin_read(c, e->d_name, &v, &n, &cap, &err) < 0) {
			f->badpins++;
			f->left++;
			if (f->out)
				fprintf(f->out, "%s (left alone: eviction stops until it is "
					"fixed or removed)\n", err.msg);
		}
		free(v);
	}
	if (d)
		closedir(d);
	d = opendir_at(c->urlsfd, ".");
	while (d && (e = readdir(d))) {
		uint8_t dg[32];
		struct stat st;

		if (is_dot(e->d_name))
			continue;
		if (strlen(e->d_name) != 64 || vmb_cache_unhex(e->d_name, dg) < 0 ||
		    fstatat(c->urlsfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			stray(f, c->urlsfd, "urls/", e->d_name);
	}
	if (d)
		closedir(d);
}

static void check_top(struct fsck *f)
{
	struct dirent *e;
	DIR *d = opendir_at(f->c->dirfd, ".");

	while (d && (e = readdir(d))) {
		int ok = is_dot(e->d_name) || !strncmp(e->d_name, ".version.", 9);

		for (const char *const *k = vmb_cache_known_top; !ok && *k; k++)
			ok = !strcmp(e->d_name, *k);
		if (!ok) {
			f->stray++;
			f->left++;
			if (f->out)
				fprintf(f->out, "cache '%s': %s: not part of a cache (left alone)\n",
					f->c->path, e->d_name);
		}
	}
	if (d)
		closedir(d);
}

int vmb_cache_fsck_res(struct vmb_cache *c, int repair, FILE *report,
		       struct vmb_cache_fsck_result *res, struct vmb_err *err)
{
	struct fsck f;
	unsigned problems, tmpleft = 0;
	int r;

	vmb_cache_flush(c);   /* what this process filled is checked too */
	memset(&f, 0, sizeof(f));
	memset(res, 0, sizeof(*res));
	f.c = c;
	f.repair = repair;
	f.out = report;
	check_top(&f);
	check_chunks(&f);
	r = vmb_cache_sweep_tmp(c, repair, report, &f.stale, &tmpleft, err);
	if (r < 0)
		return r;
	f.left += tmpleft;
	check_locks(&f);
	check_pins_urls(&f);
	problems = f.bad + f.stale + f.stray + f.badpins;
	if (report)
		fprintf(report, "cache '%s': %u objects (%llu bytes) checked: %u bad, %u stale "
			"temporaries, %u stray files, %u malformed pins; %u busy skipped%s%s\n",
			c->path, f.objects, (unsigned long long)f.bytes, f.bad, f.stale, f.stray,
			f.badpins, f.busy, problems == 0 ? "; clean" : "",
			problems && repair ? "; repaired what could be" : "");
	res->objects = f.objects;
	res->bytes = f.bytes;
	res->problems = problems;
	res->repaired = problems - f.left;
	return (int)problems;
}

int vmb_cache_fsck(struct vmb_cache *c, int repair, FILE *report, struct vmb_err *err)
{
	struct vmb_cache_fsck_result res;

	return vmb_cache_fsck_res(c, repair, report, &res, err);
}
