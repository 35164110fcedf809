/* test_journal.c - the sidecar journal (src/journal.c, the journal parts of
 * src/sidecar.c) and an image's saves through it (src/image.c): replay equals the
 * map, torn tails, corruption in the middle, stale journals, compaction, a crash at
 * every byte of the last record, and a close that appends instead of rewriting. */
#include "config.h"
#include "map/journal.h"
#include "map/sidecar.h"
#include "image/image.h"
#include "base/crc32c.h"
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[4096];
static int dirfd_ = -1;

static uint64_t rnd_state = 0x243f6a8885a308d3u;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state >> 12;
	rnd_state ^= rnd_state << 25;
	rnd_state ^= rnd_state >> 27;
	return rnd_state * 0x2545f4914f6cdd1dull;
}

static const struct vmb_stamp stamp0 = { .ino = 77, .size = 1u << 30, .mtime_sec = 1000 };

static struct vmb_stamp stamp_n(int n)
{
	struct vmb_stamp s = stamp0;

	s.mtime_nsec = (uint32_t)n;
	return s;
}

/* n extents, DATA and ZERO alternately with gaps (a fragmented map). */
static void frag_map(struct vmb_blockmap *m, size_t n)
{
	vmb_blockmap_init(m);
	for (size_t i = 0; i < n; i++)
		vmb_blockmap_set(m, 3 * i, 1 + i % 2, i % 2 ? VMB_ZERO : VMB_DATA);
}

/* A few random changes to m (tracked when m->track is set). */
static void random_changes(struct vmb_blockmap *m, uint64_t span, int count)
{
	for (int i = 0; i < count; i++) {
		uint64_t start = rnd() % span, len = 1 + rnd() % 9;
		int what = (int)(rnd() % 10);

		if (what == 9)
			vmb_blockmap_truncate(m, start + 100);
		else
			vmb_blockmap_set(m, start, len, (enum vmb_bstate)(what % 3));
	}
}

static int read_file(const char *name, unsigned char **buf, size_t *len)
{
	struct stat st;
	int fd = openat(dirfd_, name, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0)
		return -1;
	*len = (size_t)st.st_size;
	*buf = malloc(*len + 1);
	if (!*buf || pread(fd, *buf, *len, 0) != (ssize_t)*len) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static int write_file(const char *name, const void *buf, size_t len)
{
	int fd = openat(dirfd_, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int ok = fd >= 0 && write(fd, buf, len) == (ssize_t)len;

	if (fd >= 0)
		close(fd);
	return ok ? 0 : -1;
}

static int exists(const char *name)
{
	return faccessat(dirfd_, name, F_OK, 0) == 0;
}

/* ---- replay equals the map; compaction ---- */

static void test_replay_equals_map(void)
{
	const char *name = "0000000000000001.map";
	struct vmb_blockmap m, dirty, back;
	struct vmb_sidecar_pos pos;
	struct vmb_stamp s;
	struct vmb_err e;
	uint64_t base_len;
	int appended = 0, compacted = 0;

	frag_map(&m, 5000);   /* a base of 31 pages: the journal may grow to 64 KiB */
	vmb_blockmap_init(&dirty);
	vmb_blockmap_init(&back);
	memset(&pos, 0, sizeof(pos));
	REQUIRE(vmb_sidecar_save(dirfd_, name, &m, NULL, &stamp0, 1, &pos, &e) == 0);
	CHECK(pos.valid && pos.jlen == 0);
	base_len = pos.base.len;
	m.track = &dirty;
	for (int round = 1; round <= 600; round++) {
		uint64_t before = pos.jlen;

		if (round % 3 == 0)   /* a BEGIN before the change, as an image does */
			CHECK_RC(vmb_sidecar_begin(dirfd_, name, &pos, &e), 0);
		random_changes(&m, 20000, 1 + (int)(rnd() % 4));
		s = stamp_n(round);
		REQUIRE(m.track == &dirty);
		vmb_err_clear(&e);
		REQUIRE(vmb_sidecar_save(dirfd_, name, &m, &dirty, &s, 1, &pos, &e) == 0);
		if (pos.jlen > before)
			appended++;
		else if (pos.jlen == 0)
			compacted++;
		vmb_blockmap_destroy(&dirty);
		m.track = &dirty;
		memset(&s, 0, sizeof(s));
		vmb_err_clear(&e);
		CHECK_RC(vmb_sidecar_read(dirfd_, name, &back, &s, &e), 0);
		if (!vmb_blockmap_equal(&back, &m) || s.mtime_nsec != (uint32_t)round) {
			CHECK(!"replayed map or stamp differs");
			fprintf(stderr, "    round %d: %s\n", round, e.msg);
			break;
		}
		CHECK(vmb_blockmap_check(&back) == 0);
	}
	CHECK(appended > 500);
	CHECK(compacted >= 1);          /* the journal outgrew a quarter of the base */
	if (!compacted)
		fprintf(stderr, "    journal %llu bytes after %d appends\n", (unsigned long long)pos.jlen, appended);
	CHECK(pos.jlen <= VMB_JOURNAL_MIN);
	(void)base_len;
	vmb_blockmap_destroy(&m);
	vmb_blockmap_destroy(&back);
	vmb_blockmap_destroy(&dirty);
}

/* ---- a journal in memory: truncation at every byte, corruption ---- */

/* base map b0, then BEGIN, COMMIT(m1, stamp 1), COMMIT(m2, stamp 2) (no BEGIN: a
 * save after a touch), BEGIN, COMMIT(m3, stamp 3). maps[k] is the map after
 * k COMMITs; ends[] the end offsets of the records. */
struct jfix {
	unsigned char *buf;
	size_t len;
	struct vmb_journal_base id;
	struct vmb_blockmap maps[4];
	size_t ends[5];
	int kinds[5];   /* 0 BEGIN, k: COMMIT number k */
};

static void jfix_make(struct jfix *f)
{
	struct vmb_blockmap m, dirty;
	void *base = NULL, *rec;
	size_t blen, rlen, nrec = 0;
	uint64_t seq = 5;
	int commit = 0;

	memset(f, 0, sizeof(f->ends));
	frag_map(&m, 500);
	vmb_blockmap_init(&dirty);
	vmb_sidecar_encode(&m, &stamp0, &base, &blen, NULL);
	vmb_journal_base_of(base, blen, &f->id);
	free(base);
	f->buf = malloc(1 << 20);
	vmb_journal_encode_header(f->buf, &f->id, seq);
	f->len = VMB_JOURNAL_HDR;
	vmb_blockmap_init(&f->maps[0]);
	vmb_blockmap_copy(&f->maps[0], &m);
	for (int step = 0; step < 5; step++) {
		if (step == 0 || step == 3) {
			vmb_journal_encode_begin(f->buf + f->len, seq++);
			f->len += 24;
			f->kinds[nrec] = 0;
		} else {
			struct vmb_stamp s = stamp_n(++commit);

			m.track = &dirty;
			random_changes(&m, 1600, 6);
			vmb_journal_encode_commit(&m, &dirty, &s, seq++, &rec, &rlen, NULL);
			memcpy(f->buf + f->len, rec, rlen);
			free(rec);
			f->len += rlen;
			vmb_blockmap_destroy(&dirty);
			vmb_blockmap_init(&f->maps[commit]);
			vmb_blockmap_copy(&f->maps[commit], &m);
			f->kinds[nrec] = commit;
		}
		f->ends[nrec++] = f->len;
	}
	vmb_blockmap_destroy(&m);
}

static void jfix_free(struct jfix *f)
{
	free(f->buf);
	for (int i = 0; i < 4; i++)
		vmb_blockmap_destroy(&f->maps[i]);
}

static int decode_over_base(const struct jfix *f, size_t len, struct vmb_blockmap *m,
			    struct vmb_stamp *s, struct vmb_journal_info *info,
			    struct vmb_err *e)
{
	vmb_blockmap_destroy(m);
	vmb_blockmap_copy(m, &f->maps[0]);
	*s = stamp0;
	vmb_err_clear(e);
	return vmb_journal_decode(f->buf, len, &f->id, m, s, info, e);
}

static void test_truncated_everywhere(void)
{
	struct vmb_journal_info info;
	struct vmb_blockmap m;
	struct vmb_stamp s;
	struct vmb_err e;
	struct jfix f;
	size_t bad = 0;

	jfix_make(&f);
	vmb_blockmap_init(&m);
	CHECK_RC(decode_over_base(&f, f.len, &m, &s, &info, &e), 0);
	CHECK(vmb_blockmap_equal(&m, &f.maps[3]) && s.mtime_nsec == 3 && !info.open);
	CHECK_EQ(info.records, 5);
	CHECK_EQ(info.next_seq, 10);
	/* a crash at every byte: the state after the last whole record, nothing else */
	for (size_t cut = VMB_JOURNAL_HDR; cut <= f.len; cut++) {
		int k = -1, commit = 0, open = 0;

		for (int r = 0; r < 5 && f.ends[r] <= cut; r++) {
			k = r;
			if (f.kinds[r]) {
				commit = f.kinds[r];
				open = 0;
			} else {
				open = 1;
			}
		}
		(void)k;
		if (decode_over_base(&f, cut, &m, &s, &info, &e) != 0 ||
		    !vmb_blockmap_equal(&m, &f.maps[commit]) ||
		    s.mtime_nsec != (uint32_t)commit || info.open != open ||
		    info.len + info.torn != cut) {
			if (!bad++)
				fprintf(stderr, "    cut at %zu: %s\n", cut, e.msg);
		}
	}
	CHECK_EQ(bad, 0);
	/* zeros where the last record should be (a file extended but not written) */
	{
		size_t last = f.ends[3];

		memset(f.buf + last, 0, f.len - last);
		CHECK_RC(decode_over_base(&f, f.len, &m, &s, &info, &e), 0);
		CHECK(vmb_blockmap_equal(&m, &f.maps[2]) && info.open && info.torn == f.len - last);
	}
	vmb_blockmap_destroy(&m);
	jfix_free(&f);
}

static void test_corrupt_middle(void)
{
	struct vmb_journal_info info;
	struct vmb_blockmap m;
	struct vmb_stamp s;
	struct vmb_err e;
	struct jfix f;
	char want[128];
	size_t off;

	jfix_make(&f);
	off = f.ends[0];   /* the first COMMIT */
	vmb_blockmap_init(&m);
	f.buf[off + 100] ^= 0x40;
	CHECK_RC(decode_over_base(&f, f.len, &m, &s, &info, &e), -EBADMSG);
	snprintf(want, sizeof(want), "sidecar journal is corrupt (bad checksum at offset %zu)",
		 off);
	CHECK_STR(e.msg, want);
	CHECK(vmb_blockmap_equal(&m, &f.maps[0]) && s.mtime_nsec == 0);   /* unchanged */
	f.buf[off + 100] ^= 0x40;
	/* the same damage in the last record: a torn tail, dropped */
	f.buf[f.len - 3] ^= 1;
	CHECK_RC(decode_over_base(&f, f.len, &m, &s, &info, &e), 0);
	CHECK(vmb_blockmap_equal(&m, &f.maps[2]) && info.open);
	f.buf[f.len - 3] ^= 1;
	/* a bad length in the middle */
	f.buf[off + 4] = 3;
	CHECK_RC(decode_over_base(&f, f.len, &m, &s, &info, &e), -EBADMSG);
	snprintf(want, sizeof(want), "bad record length 3 at offset %zu)", off + 4);
	CHECK_STR(e.msg, want);
	jfix_free(&f);

	/* a record out of sequence (valid checksum) */
	jfix_make(&f);
	{
		unsigned char *r = f.buf + f.ends[0];

		r[8] ^= 1;
		memcpy(r, (uint32_t[]){ 0 }, 4);
		{
			uint32_t len = (uint32_t)r[4] | (uint32_t)r[5] << 8 |
				       (uint32_t)r[6] << 16 | (uint32_t)r[7] << 24;
			uint32_t c = vmb_crc32c(0, r + 4, len - 4);

			for (int i = 0; i < 4; i++)
				r[i] = (unsigned char)(c >> (8 * i));
		}
		CHECK_RC(decode_over_base(&f, f.len, &m, &s, &info, &e), -EBADMSG);
		CHECK_STR(e.msg, "sequence number");
	}
	jfix_free(&f);

	/* a bad header */
	jfix_make(&f);
	f.buf[20] ^= 1;
	CHECK_RC(decode_over_base(&f, f.len, &m, &s, &info, &e), -EBADMSG);
	CHECK_STR(e.msg, "sidecar journal is corrupt (bad header checksum at offset 60)");
	f.buf[20] ^= 1;
	f.buf[8] = 2;
	CHECK_RC(decode_over_base(&f, f.len, &m, &s, &info, &e), -EPROTONOSUPPORT);
	f.buf[8] = 1;
	CHECK_RC(decode_over_base(&f, 10, &m, &s, &info, &e), -EBADMSG);
	CHECK_STR(e.msg, "truncated");
	/* another base: stale, ignored */
	f.id.all_crc ^= 1;
	CHECK_RC(decode_over_base(&f, f.len, &m, &s, &info, &e), 0);
	CHECK(info.stale && vmb_blockmap_equal(&m, &f.maps[0]) && s.mtime_nsec == 0);
	/* no base given (a fuzzer): replayed */
	CHECK_RC(vmb_journal_decode(f.buf, f.len, NULL, &m, &s, &info, &e), 0);
	CHECK(vmb_blockmap_equal(&m, &f.maps[3]));
	vmb_blockmap_destroy(&m);
	jfix_free(&f);
}

/* ---- files: a crash at every byte of the last append, and around compaction ---- */

static void test_crash_last_record(void)
{
	const char *name = "0000000000000002.map", *jname = "0000000000000002.jnl";
	struct vmb_blockmap m, old, dirty, back;
	struct vmb_sidecar_pos pos;
	struct vmb_stamp s1 = stamp_n(1), s2 = stamp_n(2), s;
	unsigned char *jbuf = NULL;
	size_t jlen = 0, before;
	struct vmb_err e;
	int bad = 0;

	frag_map(&m, 3000);
	vmb_blockmap_init(&old);
	vmb_blockmap_init(&dirty);
	vmb_blockmap_init(&back);
	memset(&pos, 0, sizeof(pos));
	REQUIRE(vmb_sidecar_save(dirfd_, name, &m, NULL, &s1, 1, &pos, &e) == 0);
	m.track = &dirty;
	random_changes(&m, 9000, 5);
	REQUIRE(vmb_sidecar_save(dirfd_, name, &m, &dirty, &s1, 1, &pos, &e) == 0);
	vmb_blockmap_destroy(&dirty);
	m.track = &dirty;
	vmb_blockmap_copy(&old, &m);
	/* the next change: BEGIN, then the COMMIT that a crash interrupts */
	REQUIRE(vmb_sidecar_begin(dirfd_, name, &pos, &e) == 0);
	before = pos.jlen;
	random_changes(&m, 9000, 5);
	REQUIRE(vmb_sidecar_save(dirfd_, name, &m, &dirty, &s2, 1, &pos, &e) == 0);
	REQUIRE(pos.jlen > before);   /* appended, not compacted */
	REQUIRE(read_file(jname, &jbuf, &jlen) == 0);
	for (size_t cut = before; cut <= jlen; cut++) {
		int r;

		REQUIRE(write_file(jname, jbuf, cut) == 0);
		vmb_err_clear(&e);
		r = vmb_sidecar_read(dirfd_, name, &back, &s, &e);
		/* the old map, untrusted (a BEGIN is last), or the new one */
		if (cut < jlen ? r != -ESTALE
			       : r != 0 || !vmb_blockmap_equal(&back, &m) || s.mtime_nsec != 2) {
			if (!bad++)
				fprintf(stderr, "    cut at %zu of %zu: %d %s\n", cut, jlen, r, e.msg);
		}
	}
	CHECK_EQ(bad, 0);
	/* the same without the BEGIN (a save after a touch): old stamp or new map */
	REQUIRE(write_file(jname, jbuf, before - 24) == 0);   /* drop the BEGIN */
	{
		struct vmb_sidecar_pos p2;
		unsigned char *j2 = NULL;
		size_t l2 = 0;

		REQUIRE(vmb_sidecar_load(dirfd_, name, &back, &s, &p2, &e) == 0);
		CHECK(vmb_blockmap_equal(&back, &old) && s.mtime_nsec == 1);
		vmb_blockmap_destroy(&dirty);
		back.track = &dirty;
		random_changes(&back, 9000, 5);
		REQUIRE(vmb_sidecar_save(dirfd_, name, &back, &dirty, &s2, 1, &p2, &e) == 0);
		back.track = NULL;
		vmb_blockmap_copy(&m, &back);
		REQUIRE(read_file(jname, &j2, &l2) == 0);
		for (size_t cut = before - 24; cut <= l2; cut++) {
			REQUIRE(write_file(jname, j2, cut) == 0);
			if (vmb_sidecar_read(dirfd_, name, &back, &s, &e) != 0 ||
			    !(cut < l2 ? vmb_blockmap_equal(&back, &old) && s.mtime_nsec == 1
				       : vmb_blockmap_equal(&back, &m) && s.mtime_nsec == 2))
				bad++;
		}
		CHECK_EQ(bad, 0);
		free(j2);
	}
	/* a crash after a compaction renamed the new base, before it removed the
	 * journal: the old journal names the old base and is ignored */
	REQUIRE(vmb_sidecar_write(dirfd_, name, &m, &s2, 1, &e) == 0);
	CHECK(!exists(jname));
	REQUIRE(write_file(jname, jbuf, jlen) == 0);
	CHECK_RC(vmb_sidecar_read(dirfd_, name, &back, &s, &e), 0);
	CHECK(vmb_blockmap_equal(&back, &m) && s.mtime_nsec == 2);
	/* the peek (stat of a closed file) sees the journal's stamp and count */
	{
		uint64_t data = 0;

		REQUIRE(vmb_sidecar_write(dirfd_, name, &old, &s1, 1, &e) == 0);
		memset(&pos, 0, sizeof(pos));
		REQUIRE(vmb_sidecar_load(dirfd_, name, &back, &s, &pos, &e) == 0);
		vmb_blockmap_destroy(&dirty);
		back.track = &dirty;
		vmb_blockmap_set(&back, 100000, 5, VMB_DATA);
		REQUIRE(vmb_sidecar_save(dirfd_, name, &back, &dirty, &s2, 1, &pos, &e) == 0);
		CHECK(pos.jlen > 0);
		CHECK_RC(vmb_sidecar_peek(dirfd_, name, &s, &data), 0);
		CHECK(s.mtime_nsec == 2 && data == old.data_blocks + 5);
		REQUIRE(vmb_sidecar_begin(dirfd_, name, &pos, &e) == 0);
		CHECK_RC(vmb_sidecar_peek(dirfd_, name, &s, &data), -ESTALE);
		back.track = NULL;
	}
	/* removing a sidecar removes its journal */
	CHECK(exists(jname));
	CHECK_RC(vmb_sidecar_remove(dirfd_, name, &e), 0);
	CHECK(!exists(jname) && !exists(name));
	free(jbuf);
	vmb_blockmap_destroy(&m);
	vmb_blockmap_destroy(&old);
	vmb_blockmap_destroy(&dirty);
	vmb_blockmap_destroy(&back);
}

/* ---- an image: a close appends; a killed writer leaves an untrusted map ---- */

static int fragmented_file(const char *name, int extents)
{
	static const char blk[4096] = { 1 };
	int fd = openat(dirfd_, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0 || ftruncate(fd, (off_t)extents * 2 * 4096) < 0)
		return -1;
	for (int i = 0; i < extents; i++)
		if (pwrite(fd, blk, sizeof(blk), (off_t)i * 2 * 4096) != sizeof(blk))
			return -1;
	return fd;
}

static void test_image_close_appends(void)
{
	char scname[VMB_SIDECAR_NAME_MAX], jname[64];
	static const char data[4096] = { 7 };
	struct vmb_image *img = NULL;
	struct vmb_blockmap m, back;
	struct stat st1, st2;
	uint64_t size;
	int fd, rebuilt = 0;
	pid_t pid;
	int status;
	struct vmb_err e;

	vmb_blockmap_init(&m);
	vmb_blockmap_init(&back);
	fd = fragmented_file("frag.img", 2000);
	REQUIRE(fd >= 0);
	REQUIRE(fstat(fd, &st1) == 0);
	vmb_sidecar_name((uint64_t)st1.st_ino, scname);
	REQUIRE(vmb_sidecar_journal_name(scname, jname, sizeof(jname)) == 0);
	REQUIRE(vmb_image_open(&img, fd, dirfd_, "frag.img", NULL, &e) == 0);
	REQUIRE(vmb_image_write(img, data, sizeof(data), 4096 * 11, &e) == 4096);
	vmb_image_close(img);   /* the first save writes the whole map */
	REQUIRE(fstatat(dirfd_, scname, &st1, 0) == 0);
	for (int i = 0; i < 20; i++) {
		fd = openat(dirfd_, "frag.img", O_RDWR | O_CLOEXEC);
		REQUIRE(vmb_image_open(&img, fd, dirfd_, "frag.img", NULL, &e) == 0);
		REQUIRE(vmb_image_write(img, data, sizeof(data), 4096 * (13 + 40 * i), &e) ==
			4096);
		vmb_image_map_copy(img, &m);
		vmb_image_close(img);
	}
	/* the base was not rewritten: 20 closes appended to the journal */
	REQUIRE(fstatat(dirfd_, scname, &st2, 0) == 0);
	CHECK_EQ(st2.st_ino, st1.st_ino);
	CHECK(exists(jname));
	fd = openat(dirfd_, "frag.img", O_RDONLY | O_CLOEXEC);
	CHECK_RC(vmb_image_load_map(fd, dirfd_, "frag.img", &back, &size, &rebuilt, &e), 0);
	CHECK(!rebuilt && vmb_blockmap_equal(&back, &m));
	close(fd);

	/* a writer killed after a change, before any save: the map is not trusted */
	pid = fork();
	if (pid == 0) {
		int cfd = openat(dirfd_, "frag.img", O_RDWR | O_CLOEXEC);
		struct vmb_image *ci = NULL;

		if (vmb_image_open(&ci, cfd, dirfd_, "frag.img", NULL, NULL) < 0 ||
		    vmb_image_write(ci, data, sizeof(data), 4096 * 1001, NULL) != 4096)
			_exit(1);
		_exit(0);   /* no close: no save */
	}
	REQUIRE(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
		WEXITSTATUS(status) == 0);
	fd = openat(dirfd_, "frag.img", O_RDONLY | O_CLOEXEC);
	CHECK_RC(vmb_image_load_map(fd, dirfd_, "frag.img", &back, &size, &rebuilt, &e), 0);
	CHECK(rebuilt);
	CHECK(vmb_blockmap_get(&back, 1001, NULL) == VMB_DATA);
	close(fd);
	vmb_blockmap_destroy(&m);
	vmb_blockmap_destroy(&back);
}

int main(void)
{
	if (harness_tmpdir(tmpdir, sizeof(tmpdir), "journal") < 0)
		return 1;
	dirfd_ = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd_ < 0)
		return 1;
	RUN(test_replay_equals_map);
	RUN(test_truncated_everywhere);
	RUN(test_corrupt_middle);
	RUN(test_crash_last_record);
	RUN(test_image_close_appends);
	close(dirfd_);
	harness_rmtree(tmpdir);
	return harness_exit("test_journal");
}
