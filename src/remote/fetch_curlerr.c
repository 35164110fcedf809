/* fetch_curlerr.c - vmb_curl_err: the one place that turns libcurl's result codes into
 * -errno, a cause for the user and whether a retry may succeed (as base/digest.c does
 * for OpenSSL). */
#include "config.h"
#include "remote/fetch_int.h"

#include <errno.h>

int vmb_curl_err(CURLcode code, const char *errbuf, int *transient, struct vmb_err *err)
{
	const char *what;
	int e, again;

	switch (code) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		e = EHOSTUNREACH, again = 1, what = "cannot resolve the host";
		break;
	case CURLE_COULDNT_CONNECT:
		e = ECONNREFUSED, again = 1, what = "cannot connect";
		break;
	case CURLE_OPERATION_TIMEDOUT:
		e = ETIMEDOUT, again = 1, what = "timed out";
		break;
	case CURLE_PARTIAL_FILE:
		e = EIO, again = 1, what = "truncated body (shorter than its Content-Length)";
		break;
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_HTTP3:
	case CURLE_SSL_CONNECT_ERROR:   /* a reset during the handshake */
		e = ECONNRESET, again = 1, what = "connection lost";
		break;
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_BAD_CONTENT_ENCODING:
		e = EPROTO, again = 1, what = "bad reply from the server";
		break;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
		e = EACCES, again = 0, what = "TLS: the server's certificate does not verify";
		break;
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CRL_BADFILE:
		e = EINVAL, again = 0, what = "TLS: cannot load the CA file";
		break;
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
	case CURLE_NOT_BUILT_IN:
		e = EINVAL, again = 0, what = "unusable URL";
		break;
	case CURLE_TOO_MANY_REDIRECTS:
		e = ELOOP, again = 0, what = "too many redirects";
		break;
	case CURLE_LOGIN_DENIED:
	case CURLE_AUTH_ERROR:
		e = EACCES, again = 0, what = "access denied";
		break;
	case CURLE_OUT_OF_MEMORY:
		e = ENOMEM, again = 0, what = "out of memory";
		break;
	case CURLE_ABORTED_BY_CALLBACK:
		e = ECANCELED, again = 0, what = "cancelled";
		break;
	case CURLE_FILESIZE_EXCEEDED:
		e = EFBIG, again = 0, what = "object too large";
		break;
	default:
		e = EIO, again = 0, what = curl_easy_strerror(code);
		break;
	}
	*transient = again;
	if (errbuf && *errbuf)
		return vmb_err_set(err, e, "%s (curl %d: %s)", what, (int)code, errbuf);
	return vmb_err_set(err, e, "%s (curl %d: %s)", what, (int)code,
			   curl_easy_strerror(code));
}
