/* fuzz_auxpat.c - fuzz the store's in-use policy files, read at every mount
 * (lock/auxfile.c): the aux-storage pattern file (STORE/.vmbundlefs/aux-patterns)
 * and the in-use rule file (STORE/.vmbundlefs/in-use); each input is tried as both.
 *
 * Oracle: no crash; an accepted pattern list is non-empty, its patterns are
 * non-empty strings, and matching names against them works; an accepted rule is
 * 0 or 1; whatever is refused is refused with a message. */
#include "config.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz.h"
#include "lock/auxfile.h"
#include "store/store.h"

static struct vmb_store store;
static int store_open;

static void close_store(void)
{
	vmb_store_close(&store);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vmb_err err;
	char **list = NULL, **p;
	int aux_only;

	if (!store_open) {
		if (vmb_store_open(&store, vmb_fuzz_store(), VMB_STORE_READ, &err) < 0) {
			fprintf(stderr, "fuzz_auxpat: %s\n", err.msg);
			abort();
		}
		store_open = 1;
		atexit(close_store);
	}
	vmb_fuzz_put_meta(VMB_INUSE_FILE, data, size);
	vmb_err_clear(&err);
	aux_only = -1;
	if (vmb_inuse_rule_load(&store, &aux_only, &err) < 0) {
		if (!err.msg[0]) {
			fprintf(stderr, "fuzz_auxpat: in-use rule refused without a message\n");
			abort();
		}
	} else if (aux_only != 0 && aux_only != 1) {
		fprintf(stderr, "fuzz_auxpat: in-use rule accepted as %d\n", aux_only);
		abort();
	}
	vmb_fuzz_put_meta(VMB_AUX_FILE, data, size);
	vmb_err_clear(&err);
	if (vmb_aux_load(&store, &list, &err) < 0) {
		if (!err.msg[0]) {
			fprintf(stderr, "fuzz_auxpat: refused without a message\n");
			abort();
		}
		return 0;
	}
	if (list) {
		if (!list[0]) {
			fprintf(stderr, "fuzz_auxpat: accepted an empty list\n");
			abort();
		}
		for (p = list; *p; p++)
			if (!**p) {
				fprintf(stderr, "fuzz_auxpat: an empty pattern\n");
				abort();
			}
		(void)vmb_aux_match("nvram.bin", (const char *const *)list);
		(void)vmb_aux_match("", (const char *const *)list);
	}
	vmb_aux_free(list);
	return 0;
}

int vmb_fuzz_seed(unsigned i, uint8_t **out, size_t *len)
{
	static const char *const seeds[] = {
		"nvram.bin\n", "# comment\n*.nvram\n  efi_vars.fd\n*VARS*.fd\n", "[a-z]*\\*\n",
		"\n\n#\n", "rule aux\n", "rule any\n",
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
