/* manifest.c - encode, decode, read and write snapshot manifests (see manifest.h). */
#include "config.h"
#include "store/manifest.h"
#include "store/store.h"
#include "base/crc32c.h"
#include "base/fdio.h"
#include "base/text.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void vmb_manifest_free(struct vmb_manifest *m)
{
	size_t i;

	for (i = 0; i < m->n; i++) {
		vmb_xattrs_free(m->ents[i].xattrs, m->ents[i].nxattrs);
		free(m->ents[i].path);
		free(m->ents[i].target);
	}
	free(m->ents);
	free(m->bundle);
	memset(m, 0, sizeof(*m));
}

int vmb_manifest_add(struct vmb_manifest *m, const struct vmb_mf_ent *e)
{
	struct vmb_mf_ent *n;

	n = vmb_grow(m->ents, &m->cap, m->n, sizeof(*n));
	if (!n)
		return -ENOMEM;
	m->ents = n;
	n = &m->ents[m->n];
	*n = *e;
	n->xattrs = NULL;
	n->nxattrs = 0;
	if (vmb_path_target_dup(e->path, e->target, &n->path, &n->target) < 0)
		return -ENOMEM;
	m->n++;
	return 0;
}

int vmb_manifest_add_xattr(struct vmb_manifest *m, const char *name, const void *value,
			   size_t len)
{
	struct vmb_mf_ent *e;

	if (!m->n)
		return -EINVAL;
	e = &m->ents[m->n - 1];
	return vmb_xattrs_add(&e->xattrs, &e->nxattrs, name, value, len);
}

/* ---- checks shared by encode and decode ---- */

static const char *ent_path(const void *ents, size_t i, int *is_dir)
{
	const struct vmb_mf_ent *e = (const struct vmb_mf_ent *)ents + i;

	*is_dir = e->kind == 'd';
	return e->path;
}

/* Paths unique, "." first, every parent an earlier 'd'. */
static int tree_ok(const struct vmb_manifest *m, struct vmb_err *err)
{
	const char *dup;
	size_t at;

	switch (vmb_tree_check(m->ents, m->n, ent_path, &at, &dup)) {
	case 0:
		return 0;
	case VMB_TREE_NO_ROOT:
		return vmb_err_set(err, EINVAL, "its first record is not the bundle's "
				   "directory '.'");
	case VMB_TREE_DOT_TWICE:
		return vmb_err_set(err, EINVAL, "record %zu: '.' twice", at + 1);
	case VMB_TREE_NO_PARENT:
		return vmb_err_set(err, EINVAL, "record %zu: the directory of '%s' "
				   "is not listed before it", at + 1, m->ents[at].path);
	case VMB_TREE_TWICE:
		return vmb_err_set(err, EINVAL, "'%s' is listed twice", dup);
	default:
		return vmb_err_set(err, ENOMEM, "out of memory");
	}
}

static int ent_ok(const struct vmb_mf_ent *e, size_t line, struct vmb_err *err)
{
	if (e->kind != 'd' && e->kind != 'f' && e->kind != 'l')
		return vmb_err_set(err, EINVAL, "line %zu: unknown record", line);
	if (!vmb_relpath_ok(e->path))
		return vmb_err_set(err, EINVAL, "line %zu: bad path", line);
	if (e->mode > 07777 || e->mtime_nsec >= 1000000000u)
		return vmb_err_set(err, EINVAL, "line %zu: bad mode or time", line);
	if (e->kind == 'f' && (!vmb_hex_ok(e->id, strnlen(e->id, VMB_BASE_ID_LEN + 1), NULL,
					  VMB_BASE_ID_LEN / 2) || e->size > (uint64_t)INT64_MAX))
		return vmb_err_set(err, EINVAL, "line %zu: bad layer id or size", line);
	if (e->kind == 'l' && (!e->target || !e->target[0] || strlen(e->target) >= PATH_MAX))
		return vmb_err_set(err, EINVAL, "line %zu: bad symlink target", line);
	if (e->kind != 'd' && !strcmp(e->path, "."))
		return vmb_err_set(err, EINVAL, "line %zu: '.' is not a directory", line);
	if (!vmb_xattrs_ok(e->xattrs, e->nxattrs))
		return vmb_err_set(err, EINVAL, "line %zu: bad extended attribute", line);
	return 0;
}

/* ---- encode ---- */

int vmb_manifest_encode(const struct vmb_manifest *m, char **out, size_t *len,
			struct vmb_err *err)
{
	struct vmb_sbuf b = { 0 };
	size_t i, j;
	int r;

	*out = NULL;
	*len = 0;
	if (!m->bundle || vmb_name_check(m->bundle, NULL) < 0)
		return vmb_err_set(err, EINVAL, "cannot write a manifest: bad bundle name");
	for (i = 0; i < m->n; i++) {
		r = ent_ok(&m->ents[i], i + 1, err);
		if (r < 0)
			return vmb_err_prefix(err, "cannot write a manifest");
	}
	r = tree_ok(m, err);
	if (r < 0)
		return vmb_err_prefix(err, "cannot write a manifest");
	vmb_sbuf_putf(&b, "%s %d\nbundle ", VMB_MANIFEST_MAGIC, VMB_MANIFEST_VERSION);
	vmb_sbuf_put_esc(&b, m->bundle, strlen(m->bundle));
	vmb_sbuf_putf(&b, "\ncreated %" PRId64 "\n", m->created);
	for (i = 0; i < m->n; i++) {
		const struct vmb_mf_ent *e = &m->ents[i];

		if (e->kind == 'l')
			vmb_sbuf_putf(&b, "l %" PRIu32 " %" PRIu32 " %" PRId64 ".%09" PRIu32 " ",
			     e->uid, e->gid, e->mtime_sec, e->mtime_nsec);
		else
			vmb_sbuf_putf(&b, "%c %04" PRIo32 " %" PRIu32 " %" PRIu32 " %" PRId64 ".%09" PRIu32
			     " ", e->kind, e->mode, e->uid, e->gid, e->mtime_sec, e->mtime_nsec);
		if (e->kind == 'f')
			vmb_sbuf_putf(&b, "%" PRIu64 " %s ", e->size, e->id);
		vmb_sbuf_put_esc(&b, e->path, strlen(e->path));
		if (e->kind == 'l') {
			vmb_sbuf_put(&b, " ", 1);
			vmb_sbuf_put_esc(&b, e->target, strlen(e->target));
		}
		vmb_sbuf_put(&b, "\n", 1);
		for (j = 0; j < e->nxattrs; j++) {
			vmb_sbuf_put(&b, "x ", 2);
			vmb_sbuf_put_esc(&b, e->xattrs[j].name, strlen(e->xattrs[j].name));
			vmb_sbuf_put(&b, " ", 1);
			vmb_sbuf_put_value(&b, e->xattrs[j].value, e->xattrs[j].len);
			vmb_sbuf_put(&b, "\n", 1);
		}
	}
	if (!b.nomem)
		vmb_sbuf_putf(&b, "end %08" PRIx32 "\n", vmb_crc32c(0, b.p, b.len));
	if (b.nomem) {
		free(b.p);
		return vmb_err_set(err, ENOMEM, "cannot write a manifest: out of memory");
	}
	*out = b.p;
	*len = b.len;
	return 0;
}

/* ---- decode ---- */

static int decode_line(struct vmb_manifest *m, const char *s, size_t n, size_t line,
		       int version, struct vmb_err *err)
{
	const char *tok[9];
	size_t tl[9], k = vmb_tokens(s, n, tok, tl, 8);
	struct vmb_mf_ent e;
	uint64_t v;
	int nomem = 0, r;
	size_t pi, vlen;

	memset(&e, 0, sizeof(e));
	if (k == 0 || k > 8 || tl[0] != 1)
		return vmb_err_set(err, EINVAL, "line %zu: bad record", line);
	if (tok[0][0] == 'x') {
		char *name, *val;
		if (k != 3 || !m->n)
			return vmb_err_set(err, EINVAL, "line %zu: bad record", line);
		name = vmb_unesc_loose(tok[1], tl[1], 0, NULL, &nomem);
		if (version >= 2 && tl[2] == 1 && tok[2][0] == '-') {
			val = strdup("");   /* the empty value (version 1 had none) */
			nomem |= !val;
			vlen = 0;
		} else {
			val = vmb_unesc_loose(tok[2], tl[2], 1, &vlen, &nomem);
		}
		r = 0;
		if (!name || !val)
			r = nomem ? vmb_err_set(err, ENOMEM, "out of memory") :
				vmb_err_set(err, EINVAL, "line %zu: bad escape", line);
		else if (vmb_manifest_add_xattr(m, name, val, vlen) < 0)
			r = vmb_err_set(err, ENOMEM, "out of memory");
		free(name);
		free(val);
		return r;
	}
	e.kind = tok[0][0];
	pi = 0;
	switch (e.kind) {
	case 'd':
	case 'f':
		if (k != (e.kind == 'd' ? 6u : 8u) || tl[1] > 5 ||
		    !vmb_num_u_loose(tok[1], tl[1], 8, 07777, &v))
			return vmb_err_set(err, EINVAL, "line %zu: bad record", line);
		e.mode = (uint32_t)v;
		pi = 2;
		break;
	case 'l':
		if (k != 6)
			return vmb_err_set(err, EINVAL, "line %zu: bad record", line);
		pi = 1;
		break;
	default:
		return vmb_err_set(err, EINVAL, "line %zu: unknown record", line);
	}
	if (!vmb_num_u_loose(tok[pi], tl[pi], 10, UINT32_MAX, &v))
		return vmb_err_set(err, EINVAL, "line %zu: bad owner", line);
	e.uid = (uint32_t)v;
	if (!vmb_num_u_loose(tok[pi + 1], tl[pi + 1], 10, UINT32_MAX, &v))
		return vmb_err_set(err, EINVAL, "line %zu: bad group", line);
	e.gid = (uint32_t)v;
	if (!vmb_num_time_loose(tok[pi + 2], tl[pi + 2], &e.mtime_sec, &e.mtime_nsec))
		return vmb_err_set(err, EINVAL, "line %zu: bad time", line);
	pi += 3;
	if (e.kind == 'f') {
		if (!vmb_num_u_loose(tok[pi], tl[pi], 10, (uint64_t)INT64_MAX, &e.size) ||
		    tl[pi + 1] != VMB_BASE_ID_LEN)
			return vmb_err_set(err, EINVAL, "line %zu: bad size or layer id", line);
		memcpy(e.id, tok[pi + 1], VMB_BASE_ID_LEN);
		e.id[VMB_BASE_ID_LEN] = '\0';
		pi += 2;
	}
	e.path = vmb_unesc_loose(tok[pi], tl[pi], 0, NULL, &nomem);
	if (e.kind == 'l' && e.path)
		e.target = vmb_unesc_loose(tok[pi + 1], tl[pi + 1], 0, NULL, &nomem);
	r = 0;
	if (!e.path || (e.kind == 'l' && !e.target))
		r = nomem ? vmb_err_set(err, ENOMEM, "out of memory") :
			vmb_err_set(err, EINVAL, "line %zu: bad escape", line);
	if (r == 0)
		r = ent_ok(&e, line, err);
	if (r == 0 && vmb_manifest_add(m, &e) < 0)
		r = vmb_err_set(err, ENOMEM, "out of memory");
	free(e.path);
	free(e.target);
	return r;
}

int vmb_manifest_decode(const char *buf, size_t len, struct vmb_manifest *m,
			struct vmb_err *err)
{
	const char *p = buf, *end = buf + len, *nl, *last;
	size_t line = 0, j;
	uint64_t crc;
	int r = 0, nomem = 0, version = 0;

	memset(m, 0, sizeof(*m));
	if (len == 0 || buf[len - 1] != '\n')
		return vmb_err_set(err, EINVAL, "truncated (no final newline)");
	/* The last line is "end <crc>": find its start. */
	last = buf + len - 1;
	while (last > buf && last[-1] != '\n')
		last--;
	if ((size_t)(end - last) != 13 || memcmp(last, "end ", 4) ||
	    !vmb_num_u_loose(last + 4, 8, 16, UINT32_MAX, &crc))
		return vmb_err_set(err, EINVAL, "truncated (no 'end' line)");
	if ((uint32_t)crc != vmb_crc32c(0, buf, (size_t)(last - buf)))
		return vmb_err_set(err, EINVAL, "bad checksum");
	for (p = buf; p < last; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(last - p));
		line++;
		if (line == 1) {
			char hdr[64];
			int hl = 0;

			/* every version up to ours */
			for (version = VMB_MANIFEST_VERSION; version >= 1; version--) {
				hl = snprintf(hdr, sizeof(hdr), "%s %d", VMB_MANIFEST_MAGIC,
					      version);
				if ((size_t)(nl - p) == (size_t)hl && !memcmp(p, hdr, (size_t)hl))
					break;
			}
			if (version < 1) {
				size_t ml = strlen(VMB_MANIFEST_MAGIC);
				if ((size_t)(nl - p) > ml + 1 && !memcmp(p, VMB_MANIFEST_MAGIC " ", ml + 1))
					r = vmb_err_set(err, EPROTONOSUPPORT, "its version '%.*s' is "
							"not supported (newer vmbundlefs?)",
							(int)((size_t)(nl - p) - ml - 1 > 16 ? 16 :
							      (size_t)(nl - p) - ml - 1), p + ml + 1);
				else
					r = vmb_err_set(err, EINVAL, "not a snapshot manifest");
				goto out;
			}
		} else if (line == 2) {
			if (nl - p < 8 || memcmp(p, "bundle ", 7)) {
				r = vmb_err_set(err, EINVAL, "line 2: no bundle name");
				goto out;
			}
			m->bundle = vmb_unesc_loose(p + 7, (size_t)(nl - p - 7), 0, NULL, &nomem);
			if (!m->bundle || vmb_name_check(m->bundle, NULL) < 0) {
				r = nomem ? vmb_err_set(err, ENOMEM, "out of memory") :
					vmb_err_set(err, EINVAL, "line 2: bad bundle name");
				goto out;
			}
		} else if (line == 3) {
			if (nl - p < 9 || memcmp(p, "created ", 8) ||
			    !vmb_num_s_loose(p + 8, (size_t)(nl - p - 8), &m->created)) {
				r = vmb_err_set(err, EINVAL, "line 3: no creation time");
				goto out;
			}
		} else {
			r = decode_line(m, p, (size_t)(nl - p), line, version, err);
			if (r < 0)
				goto out;
		}
	}
	if (line < 3) {
		r = vmb_err_set(err, EINVAL, "truncated (no header)");
		goto out;
	}
	for (j = 0; j < m->n; j++) {
		r = ent_ok(&m->ents[j], j + 4, err);
		if (r < 0)
			goto out;
	}
	r = tree_ok(m, err);
out:
	if (r < 0)
		vmb_manifest_free(m);
	return r;
}

/* ---- names ---- */

int vmb_snapshot_name_check(const char *bundle, const char *name, struct vmb_err *err)
{
	int r = vmb_name_check(name, err);

	if (r < 0)
		return vmb_err_prefix(err, "bad snapshot name");
	if (name[0] == '.' || strchr(name, '@'))
		return vmb_err_set(err, EINVAL, "bad snapshot name '%s': it may not start "
				   "with '.' nor hold '@'", name);
	if (bundle && strlen(bundle) + 1 + strlen(name) > NAME_MAX)
		return vmb_err_set(err, ENAMETOOLONG, "snapshot name '%s@%s' is longer than "
				   "%d bytes", bundle, name, NAME_MAX);
	return 0;
}

int vmb_snapshot_split(const char *spec, char **bundle, char **name, struct vmb_err *err)
{
	const char *at = strrchr(spec, '@');
	int r;

	*bundle = *name = NULL;
	if (!at)
		return vmb_err_set(err, EINVAL, "'%s' is not BUNDLE@NAME", spec);
	*bundle = strndup(spec, (size_t)(at - spec));
	*name = strdup(at + 1);
	if (!*bundle || !*name) {
		r = vmb_err_set(err, ENOMEM, "out of memory");
		goto fail;
	}
	r = vmb_name_check(*bundle, err);
	if (r < 0) {
		vmb_err_prefix(err, "'%s' is not BUNDLE@NAME", spec);
		goto fail;
	}
	r = vmb_snapshot_name_check(*bundle, *name, err);
	if (r < 0)
		goto fail;
	return 0;
fail:
	free(*bundle);
	free(*name);
	*bundle = *name = NULL;
	return r;
}

int vmb_snapshot_exists(int metafd, const char *spec)
{
	char path[sizeof(VMB_SNAPSHOTS_DIR) + NAME_MAX + 1];
	struct stat st;

	if (!strchr(spec, '@') || strchr(spec, '/') || strlen(spec) > NAME_MAX)
		return 0;
	snprintf(path, sizeof(path), "%s/%s", VMB_SNAPSHOTS_DIR, spec);
	return fstatat(metafd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

/* ---- files ---- */

int vmb_manifest_write(int snapdir, const char *file, const struct vmb_manifest *m,
		       struct vmb_err *err)
{
	char tmp[NAME_MAX + 32], *buf = NULL;
	size_t len;
	int fd = -1, r;

	r = vmb_manifest_encode(m, &buf, &len, err);
	if (r < 0)
		return r;
	snprintf(tmp, sizeof(tmp), ".tmp.%ld.%s", (long)getpid(), file);
	tmp[NAME_MAX] = '\0';
	unlinkat(snapdir, tmp, 0);
	fd = openat(snapdir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		    VMB_META_FILE_MODE);
	if (fd < 0) {
		r = vmb_err_sys(err, errno, "cannot create snapshot manifest '%s'", file);
		goto out;
	}
	if ((r = vmb_write_full(fd, buf, len)) < 0 || vmb_fsync(fd) < 0) {
		r = vmb_err_sys(err, r < 0 ? -r : errno, "cannot write snapshot manifest '%s'",
				file);
		goto out;
	}
	/* No replace: a snapshot name is taken once. */
	if (renameat2(snapdir, tmp, snapdir, file, RENAME_NOREPLACE) < 0) {
		r = errno == EEXIST ?
			vmb_err_set(err, EEXIST, "snapshot '%s' exists", file) :
			vmb_err_sys(err, errno, "cannot write snapshot manifest '%s'", file);
		goto out;
	}
	tmp[0] = '\0';
	if (vmb_fsync(snapdir) < 0)
		r = vmb_err_sys(err, errno, "cannot write snapshot manifest '%s'", file);
out:
	if (fd >= 0)
		close(fd);
	if (tmp[0])
		unlinkat(snapdir, tmp, 0);
	free(buf);
	return r;
}

int vmb_manifest_read(int snapdir, const char *file, struct vmb_manifest *m,
		      struct vmb_err *err)
{
	struct stat st;
	char *buf = NULL;
	ssize_t got;
	int fd, r;

	memset(m, 0, sizeof(*m));
	fd = openat(snapdir, file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? vmb_err_set(err, ENOENT, "no snapshot '%s'", file) :
			vmb_err_sys(err, errno, "cannot open snapshot manifest '%s'", file);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		r = vmb_err_set(err, EINVAL, "snapshot manifest '%s' is not a file", file);
		goto out;
	}
	if ((uint64_t)st.st_size > VMB_MANIFEST_MAX) {
		r = vmb_err_set(err, EINVAL, "snapshot manifest '%s' is corrupt (too large)",
				file);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		r = vmb_err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	got = vmb_read_full(fd, buf, (size_t)st.st_size);
	if (got < 0) {
		r = vmb_err_sys(err, (int)-got, "cannot read snapshot manifest '%s'", file);
		goto out;
	}
	r = vmb_manifest_decode(buf, (size_t)got, m, err);
	if (r < 0)
		vmb_err_prefix(err, "snapshot manifest '%s' is corrupt", file);
out:
	free(buf);
	close(fd);
	return r;
}
