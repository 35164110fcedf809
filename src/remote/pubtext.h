/* pubtext.h - what the published text formats share (remote/pubfmt.c,
 * remote/pubbundle.c): the primitives of base/text.h (canonical readings only) and
 * the header and end lines. Internal to src/remote/. */
#ifndef VMB_PUBTEXT_H
#define VMB_PUBTEXT_H

#include <stddef.h>
#include <stdint.h>
#include "base/err.h"
#include "base/text.h"

/* The header line [p, nl) of a text format: "<magic> 1". -EINVAL ("<what>: line 1:
 * not a <what> (bad magic)", or another version). */
int vmb_pub_header_check(const char *p, const char *nl, const char *magic,
			 const char *what, struct vmb_err *err);
/* Find the first "end <hex>" line of a text object (ending in "\n") and check that
 * its SHA-256 covers every byte before it: *body_end is where that line starts,
 * *end_next just past it. -EINVAL naming what. */
int vmb_pub_end_check(const char *buf, size_t len, const char *what, const char **body_end,
		      const char **end_next, struct vmb_err *err);

#endif
