/* fetch_s3.h - AWS credentials and region for s3:// fetchers, as the AWS CLI finds
 * them (no network: no instance metadata, SSO, assume-role or credential_process).
 *
 * Order: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN) from the
 * environment; else the profile AWS_PROFILE (default "default") of the credentials
 * file (AWS_SHARED_CREDENTIALS_FILE, default ~/.aws/credentials; sections "[NAME]"),
 * then of the config file (AWS_CONFIG_FILE, default ~/.aws/config; sections
 * "[default]" and "[profile NAME]"); keys aws_access_key_id, aws_secret_access_key,
 * aws_session_token. Region: the option, AWS_REGION, AWS_DEFAULT_REGION, the profile's
 * "region" in the config file, then us-east-1.
 *
 * No credentials anywhere (and no AWS_PROFILE naming a missing profile) is not an
 * error: requests then go unsigned (a public bucket; rclone and curl do the same, the
 * AWS CLI wants --no-sign-request for it). An answer 401/403 then says which sources
 * were tried (c->tried), and with a key which key and where it came from. A malformed file, half a key
 * pair, or a profile that only has what vmbundlefs cannot use (role_arn, sso_*,
 * credential_process, ...) is an error naming the file, line and what is wrong.
 */
#ifndef VMB_FETCH_S3_H
#define VMB_FETCH_S3_H

#include <stddef.h>
#include "base/err.h"

struct vmb_s3_creds {
	char *key_id;        /* NULL: no credentials, unsigned requests */
	char *secret;
	char *token;         /* session token, or NULL */
	char *region;        /* always set after a successful load */
	char source[200];    /* where the key came from, for messages: "environment", "FILE [profile]" */
	char tried[600];     /* the sources looked at, for messages when none had a key */
	char *endpoint;      /* endpoint_url of the profile in the config file, or NULL */
	/* filled by vmb_aws_ini_profile: what the profile names that cannot be used */
	char unsupported[64];
};

/* Loads credentials and region as described above. region_opt (may be NULL) wins over
 * every other source of the region. On failure nothing is left allocated. */
int  vmb_s3_creds_load(const char *region_opt, struct vmb_s3_creds *c, struct vmb_err *err);
void vmb_s3_creds_free(struct vmb_s3_creds *c);   /* NULL-safe; clears c */

/* The S3-compatible endpoint for an s3:// URL, as the AWS tools find it: OPT (a
 * command's --endpoint or -o endpoint=) when given, else (unless
 * AWS_IGNORE_CONFIGURED_ENDPOINT_URLS is "true") AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL,
 * then endpoint_url of the profile in the config file (the "services" sections are not
 * read). *out is NULL (AWS itself) or a malloc'ed copy; *src says which (for
 * messages). 0 or -errno (a config file that does not parse, ENOMEM). The value is
 * not checked here (vmb_fetch_url_resolve does). */
int vmb_s3_endpoint(const char *opt, char **out, const char **src, struct vmb_err *err);

/* Parses the text of one AWS ini file (FNAME for messages) and takes from the section
 * of PROFILE (config file, is_config: "[default]" or "[profile NAME]"; credentials
 * file: "[NAME]") the fields of c that are still NULL: key_id, secret, token and, for
 * a config file, region and endpoint (endpoint_url). *found = 1 when the section exists. The whole file is checked
 * whatever the profile: -EINVAL with "FNAME:LINE: what is wrong" on the first error. */
int vmb_aws_ini_profile(const char *text, size_t len, const char *fname, int is_config,
			const char *profile, struct vmb_s3_creds *c, int *found,
			struct vmb_err *err);

#endif
