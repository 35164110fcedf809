/* fuzz_holders.c - fuzz the lock holder records (STORE/.vmbundlefs/holders/, see
 * lock/holders.h), which every mount, `ls` and import read: the input is put in
 * place as this process's record of one file and of one bundle, then looked up.
 *
 * Oracle: no crash; what is accepted describes itself in a bounded, terminated
 * string; a bundle record's path is terminated within its buffer. */
#include "config.h"
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "fuzz.h"
#include "lock/holders.h"
#include "store/store.h"

#define FILE_INO UINT64_C(0x1234)
#define BUNDLE_INO UINT64_C(0x99)

static int metafd = -1;

static void must(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_holders: %s\n", what);
		abort();
	}
}

static void check_holder(const struct vmb_holder *h)
{
	char buf[128];

	must(memchr(h->comm, '\0', sizeof(h->comm)) != NULL, "command name not terminated");
	vmb_holder_describe(h, buf, sizeof(buf));
	must(memchr(buf, '\0', sizeof(buf)) != NULL, "description not terminated");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vmb_holder h;
	char name[64], path[PATH_MAX + 1], *line;

	if (metafd < 0) {
		char meta[600];

		snprintf(meta, sizeof(meta), "%s/" VMB_META_DIR, vmb_fuzz_store());
		metafd = open(meta, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		must(metafd >= 0, "cannot open the scratch store's metadata");
		mkdirat(metafd, VMB_HOLDERS_DIR, 0700);
		snprintf(name, sizeof(name), VMB_HOLDERS_DIR "/bundle.%016llx",
			 (unsigned long long)BUNDLE_INO);
		mkdirat(metafd, name, 0700);
	}
	/* one line, as a string */
	line = malloc(size + 1);
	must(line != NULL, "out of memory");
	memcpy(line, data, size);
	line[size] = '\0';
	if (vmb_holders_parse(line, &h) == 0)
		check_holder(&h);
	free(line);
	/* this process's record of a file */
	snprintf(name, sizeof(name), "%016llx.%ld", (unsigned long long)FILE_INO, (long)getpid());
	{
		char rel[128];

		snprintf(rel, sizeof(rel), VMB_HOLDERS_DIR "/%s", name);
		vmb_fuzz_put_meta(rel, data, size);
		if (vmb_holders_find(metafd, FILE_INO, 0, UINT64_MAX, 0, &h) == 1)
			check_holder(&h);
		snprintf(rel, sizeof(rel), VMB_HOLDERS_DIR "/bundle.%016llx/%ld",
			 (unsigned long long)BUNDLE_INO, (long)getpid());
		vmb_fuzz_put_meta(rel, data, size);
	}
	memset(path, 'x', sizeof(path));
	if (vmb_holders_bundle_find(metafd, BUNDLE_INO, 0, &h, path, sizeof(path) - 1) == 1) {
		check_holder(&h);
		must(memchr(path, '\0', sizeof(path) - 1) != NULL, "bundle path not terminated");
	}
	return 0;
}

int vmb_fuzz_seed(unsigned i, uint8_t **out, size_t *len)
{
	static const char *const seeds[] = {
		"4242 w 100 201 qemu-system-x86\n",
		"17 f 0 eof bash\nvm/nvram.bin\n",
		"1 r 18446744073709551615 eof ?\n",
		"12 w 5 4 a\n\n",
	};

	if (i >= sizeof(seeds) / sizeof(seeds[0]))
		return 0;
	*len = strlen(seeds[i]);
	*out = malloc(*len + 1);
	if (!*out)
		return 0;
	memcpy(*out, seeds[i], *len + 1);
	return 1;
}
