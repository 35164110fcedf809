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
 * error: requests then go unsigned (a public bucket). A malformed file, half a key
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
	/* filled by vmb_aws_ini_profile: what the profile names that cannot be used */
	char unsupported[64];
};

/* Loads credentials and region as described above. region_opt (may be NULL) wins over
 * every other source of the region. On failure nothing is left allocated. */
int  vmb_s3_creds_load(const char *region_opt, struct vmb_s3_creds *c, struct vmb_err *err);
void vmb_s3_creds_free(struct vmb_s3_creds *c);   /* NULL-safe; clears c */

/* Parses the text of one AWS ini file (FNAME for messages) and takes from the section
 * of PROFILE (config file, is_config: "[default]" or "[profile NAME]"; credentials
 * file: "[NAME]") the fields of c that are still NULL: key_id, secret, token and, for
 * a config file, region. *found = 1 when the section exists. The whole file is checked
 * whatever the profile: -EINVAL with "FNAME:LINE: what is wrong" on the first error. */
int vmb_aws_ini_profile(const char *text, size_t len, const char *fname, int is_config,
			const char *profile, struct vmb_s3_creds *c, int *found,
			struct vmb_err *err);

#endif
