/* fuzz_store.c - the scratch store of the fuzz targets that read store files. */
#include "config.h"
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "fuzz.h"
#include "../unit/harness.h"
#include "base/err.h"
#include "base/fdio.h"
#include "store/store.h"

static char scratch[300], scratch_dir[256];

static void remove_scratch(void)
{
	harness_rmtree(scratch_dir);
}

const char *vmb_fuzz_store(void)
{
	struct vmb_err err;

	if (scratch[0])
		return scratch;
	if (harness_tmpdir(scratch_dir, sizeof(scratch_dir), "fuzz") < 0)
		abort();
	atexit(remove_scratch);
	snprintf(scratch, sizeof(scratch), "%s/store", scratch_dir);
	if (vmb_store_init(scratch, &err) < 0) {
		fprintf(stderr, "fuzz: cannot make a scratch store: %s\n", err.msg);
		abort();
	}
	return scratch;
}

void vmb_fuzz_put_meta(const char *name, const uint8_t *data, size_t size)
{
	char path[600];
	int fd;

	snprintf(path, sizeof(path), "%s/" VMB_META_DIR "/%s", vmb_fuzz_store(), name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || vmb_write_full(fd, data, size) < 0) {
		perror(path);
		abort();
	}
	close(fd);
}
