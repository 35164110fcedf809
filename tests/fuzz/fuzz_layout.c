/* fuzz_layout.c - fuzz the store's layout file (STORE/.vmbundlefs/layout), as every
 * command and mount reads it when it opens a store (store/store.c).
 *
 * Oracle: no crash; a store whose layout file is not exactly a known version is
 * refused with a message. */
#include "config.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz.h"
#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vmb_store s;
	struct vmb_err err;
	int r;

	vmb_fuzz_put_meta(VMB_LAYOUT_FILE, data, size);
	vmb_err_clear(&err);
	r = vmb_store_open(&s, vmb_fuzz_store(), VMB_STORE_READ, &err);
	if (r < 0 && !err.msg[0]) {
		fprintf(stderr, "fuzz_layout: store refused without a message\n");
		abort();
	}
	vmb_store_close(&s);
	return 0;
}

int vmb_fuzz_seed(unsigned i, uint8_t **out, size_t *len)
{
	static const char *const seeds[] = {
		VMB_LAYOUT_MAGIC " 1\n", VMB_LAYOUT_MAGIC " 2\n", VMB_LAYOUT_MAGIC "\n", "",
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
