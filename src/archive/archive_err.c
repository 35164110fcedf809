/* archive_err.c - the one place that turns a libarchive error into -errno and a
 * message (see vmb_archive.h). */
#include "config.h"
#include "archive/vmb_archive.h"

#include <archive.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

int vmb_archive_err(struct vmb_err *err, struct archive *a, const char *fmt, ...)
{
	char prefix[VMB_ERR_MAX];
	const char *what = a ? archive_error_string(a) : NULL;
	int code = a ? archive_errno(a) : 0;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	/* libarchive reports a damaged or unknown format as EILSEQ (its
	 * ARCHIVE_ERRNO_FILE_FORMAT on Linux), an unclassified error as -1, and some
	 * failures with no errno at all: to the caller they all mean "this archive
	 * cannot be read". Real system errors keep their errno. */
	if (code <= 0 || code == EILSEQ)
		code = EBADMSG;
	if (!what || !*what)
		what = code == EBADMSG ? "the archive is damaged or not an archive" :
			NULL;
	if (what)
		return vmb_err_set(err, code, "%s: %s", prefix, what);
	return vmb_err_sys(err, code, "%s", prefix);
}
