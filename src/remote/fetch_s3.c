/* fetch_s3.c - AWS credentials and region for s3:// (see fetch_s3.h): the environment
 * and a strict parser of the ~/.aws ini files. The signing itself is libcurl's
 * (CURLOPT_AWS_SIGV4, set in fetch_http.c). */
#include "config.h"
#include "remote/fetch_s3.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define INI_MAX (1 << 20)

void vmb_s3_creds_free(struct vmb_s3_creds *c)
{
	if (!c)
		return;
	free(c->key_id);
	free(c->secret);
	free(c->token);
	free(c->region);
	free(c->endpoint);
	memset(c, 0, sizeof(*c));
}

static int is_space(char ch)
{
	return ch == ' ' || ch == '\t';
}

static int key_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.';
}

/* A credential: printable ASCII without spaces. */
static int cred_ok(const char *v)
{
	if (!*v)
		return 0;
	for (; *v; v++)
		if ((unsigned char)*v <= ' ' || (unsigned char)*v >= 0x7f)
			return 0;
	return 1;
}

static int region_ok(const char *r)
{
	size_t n = strlen(r);

	if (n == 0 || n > 32)
		return 0;
	for (; *r; r++)
		if (!((*r >= 'a' && *r <= 'z') || (*r >= '0' && *r <= '9') || *r == '-'))
			return 0;
	return 1;
}

static const char *const unsupported_keys[] = {
	"role_arn", "source_profile", "credential_source", "credential_process",
	"web_identity_token_file", "sso_session", "sso_start_url", "sso_account_id",
	"login_session", NULL
};

/* Takes KEY = VAL of the wanted section into c. */
static int take(struct vmb_s3_creds *c, int is_config, const char *key, const char *val,
		const char *fname, unsigned line, struct vmb_err *err)
{
	char **dst = NULL;
	int i;

	if (!strcmp(key, "aws_access_key_id"))
		dst = &c->key_id;
	else if (!strcmp(key, "aws_secret_access_key"))
		dst = &c->secret;
	else if (!strcmp(key, "aws_session_token"))
		dst = &c->token;
	else if (is_config && !strcmp(key, "region"))
		dst = &c->region;
	else if (is_config && !strcmp(key, "endpoint_url"))
		dst = &c->endpoint;
	if (!dst) {
		for (i = 0; unsupported_keys[i]; i++)
			if (!strcmp(key, unsupported_keys[i]) && !c->unsupported[0])
				snprintf(c->unsupported, sizeof(c->unsupported), "%s", key);
		return 0;
	}
	if (dst == &c->region ? !region_ok(val) : !cred_ok(val))
		return vmb_err_set(err, EINVAL, "%s:%u: %s %s", fname, line, key,
				   !*val ? "is empty" : dst == &c->endpoint ?
				   "has a space or a control character" : dst == &c->region ?
				   "is not a region name (a-z, 0-9, '-')" :
				   "has a space or a character that no key has");
	if (*dst)
		return 0;
	*dst = strdup(val);
	return *dst ? 0 : vmb_err_set(err, ENOMEM, "out of memory");
}

int vmb_aws_ini_profile(const char *text, size_t len, const char *fname, int is_config,
			const char *profile, struct vmb_s3_creds *c, int *found,
			struct vmb_err *err)
{
	char want[256], line[4096], *p, *e, *eq, *key, *val;
	char keys[64][40];   /* keys of the current section, for duplicates */
	unsigned nkeys = 0, lineno = 0;
	int in_section = 0, match = 0, nested = 0, seen = 0;
	size_t pos = 0, n;

	*found = 0;
	if (memchr(text, '\0', len))
		return vmb_err_set(err, EINVAL, "%s: has a NUL byte: not a text file", fname);
	if (is_config && strcmp(profile, "default"))
		snprintf(want, sizeof(want), "profile %s", profile);
	else
		snprintf(want, sizeof(want), "%s", profile);
	while (pos < len) {
		e = memchr(text + pos, '\n', len - pos);
		n = e ? (size_t)(e - (text + pos)) : len - pos;
		lineno++;
		if (n >= sizeof(line))
			return vmb_err_set(err, EINVAL, "%s:%u: line longer than %zu bytes", fname,
					   lineno, sizeof(line) - 1);
		memcpy(line, text + pos, n);
		line[n] = '\0';
		pos += n + 1;
		while (n && (line[n - 1] == '\r' || is_space(line[n - 1])))
			line[--n] = '\0';
		for (p = line; is_space(*p); p++)
			;
		if (!*p || *p == '#' || *p == ';')
			continue;
		if (p != line) {
			/* an indented line: a nested "key = value" under "key =" (s3 = ...) */
			if (!nested || !strchr(p, '='))
				return vmb_err_set(err, EINVAL, "%s:%u: an indented line that follows "
						   "no 'key =' line (only nested 'key = value' "
						   "lines may be indented)", fname, lineno);
			continue;
		}
		nested = 0;
		if (*p == '[') {
			if (line[n - 1] != ']')
				return vmb_err_set(err, EINVAL, "%s:%u: a section header without "
						   "its closing ']'", fname, lineno);
			line[n - 1] = '\0';
			for (p++; is_space(*p); p++)
				;
			e = p + strlen(p);
			while (e > p && is_space(e[-1]))
				*--e = '\0';
			if (!*p || strpbrk(p, "[]"))
				return vmb_err_set(err, EINVAL, "%s:%u: a section header without a "
						   "name, or with '[' or ']' in it", fname, lineno);
			in_section = 1;
			nkeys = 0;
			match = !strcmp(p, want) ||
				(is_config && !strcmp(profile, "default") &&
				 !strcmp(p, "profile default"));
			if (match && seen)
				return vmb_err_set(err, EINVAL, "%s:%u: section [%s] appears twice",
						   fname, lineno, p);
			if (match)
				seen = *found = 1;
			continue;
		}
		eq = strchr(p, '=');
		if (!eq)
			return vmb_err_set(err, EINVAL, "%s:%u: expected 'key = value', "
					   "'[section]' or a comment", fname, lineno);
		key = p;
		for (e = eq; e > key && is_space(e[-1]); e--)
			;
		*e = '\0';
		for (val = eq + 1; is_space(*val); val++)
			;
		if (!*key)
			return vmb_err_set(err, EINVAL, "%s:%u: '=' without a key before it", fname,
					   lineno);
		for (e = key; *e; e++)
			if (!key_char(*e))
				return vmb_err_set(err, EINVAL, "%s:%u: key '%s' has a character "
						   "other than A-Z a-z 0-9 _ - .", fname, lineno, key);
		if (!in_section)
			return vmb_err_set(err, EINVAL, "%s:%u: '%s' is outside any [section]",
					   fname, lineno, key);
		for (unsigned i = 0; i < nkeys; i++)
			if (!strcmp(keys[i], key))
				return vmb_err_set(err, EINVAL, "%s:%u: '%s' appears twice in its "
						   "section", fname, lineno, key);
		if (nkeys < 64 && strlen(key) < sizeof(keys[0]))
			snprintf(keys[nkeys++], sizeof(keys[0]), "%s", key);
		nested = !*val;
		if (match && !nested) {
			int rc = take(c, is_config, key, val, fname, lineno, err);

			if (rc)
				return rc;
		} else if (match && (!strcmp(key, "aws_access_key_id") ||
				     !strcmp(key, "aws_secret_access_key"))) {
			return vmb_err_set(err, EINVAL, "%s:%u: %s is empty", fname, lineno, key);
		}
	}
	return 0;
}

/* Reads FILE whole into *text: 0, 1 when it does not exist, or -errno. */
static int read_small(const char *path, char **text, size_t *len, struct vmb_err *err)
{
	struct stat st;
	ssize_t r;
	int fd;

	*text = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 1 : vmb_err_sys(err, errno, "cannot open '%s'", path);
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size > INI_MAX) {
		int e = errno;

		close(fd);
		if (S_ISREG(st.st_mode) || !st.st_mode)
			return st.st_size > INI_MAX ?
				vmb_err_set(err, EFBIG, "'%s' is larger than 1 MiB", path) :
				vmb_err_sys(err, e, "cannot stat '%s'", path);
		return vmb_err_set(err, EINVAL, "'%s' is not a regular file", path);
	}
	*text = malloc((size_t)st.st_size + 1);
	if (!*text) {
		close(fd);
		return vmb_err_set(err, ENOMEM, "out of memory");
	}
	r = read(fd, *text, (size_t)st.st_size);
	close(fd);
	if (r < 0) {
		free(*text);
		*text = NULL;
		return vmb_err_sys(err, errno, "cannot read '%s'", path);
	}
	*len = (size_t)r;
	return 0;
}

static int aws_path(const char *env, const char *home, const char *name, char **out)
{
	const char *v = getenv(env);

	if (v && *v) {
		if (v[0] == '~' && (v[1] == '/' || !v[1]))
			return asprintf(out, "%s%s", home, v + 1) < 0 ? -ENOMEM : 0;
		*out = strdup(v);
		return *out ? 0 : -ENOMEM;
	}
	return asprintf(out, "%s/.aws/%s", home, name) < 0 ? -ENOMEM : 0;
}

static int load_file(const char *path, int is_config, const char *profile,
		     struct vmb_s3_creds *t, int *found, struct vmb_err *err)
{
	char *text;
	size_t len = 0;
	int rc;

	*found = 0;
	rc = read_small(path, &text, &len, err);
	if (rc)
		return rc > 0 ? 0 : rc;
	rc = vmb_aws_ini_profile(text, len, path, is_config, profile, t, found, err);
	free(text);
	return rc;
}

static int pair(struct vmb_s3_creds *c, struct vmb_s3_creds *from, const char *profile,
		const char *path, struct vmb_err *err)
{
	if (!from->key_id || !from->secret)
		return vmb_err_set(err, EINVAL, "profile '%s' in '%s' has %s but no %s", profile,
				   path, from->key_id ? "aws_access_key_id" : "aws_secret_access_key",
				   from->key_id ? "aws_secret_access_key" : "aws_access_key_id");
	c->key_id = from->key_id;
	c->secret = from->secret;
	c->token = from->token;
	from->key_id = from->secret = from->token = NULL;
	snprintf(c->source, sizeof(c->source), "%s [%s]", path, profile);
	return 0;
}

int vmb_s3_creds_load(const char *region_opt, struct vmb_s3_creds *c, struct vmb_err *err)
{
	struct vmb_s3_creds tc = { 0 }, tf = { 0 };
	const char *id = getenv("AWS_ACCESS_KEY_ID"), *secret = getenv("AWS_SECRET_ACCESS_KEY");
	const char *token = getenv("AWS_SESSION_TOKEN"), *profile = getenv("AWS_PROFILE");
	const char *home = getenv("HOME"), *region = NULL;
	char *cpath = NULL, *fpath = NULL;
	int fc = 0, ff = 0, explicit = 1, rc;
	struct passwd *pw;

	memset(c, 0, sizeof(*c));
	if (!profile || !*profile)
		profile = getenv("AWS_DEFAULT_PROFILE");
	if (!profile || !*profile) {
		profile = "default";
		explicit = 0;
	}
	if (!home || !*home) {
		pw = getpwuid(getuid());
		home = pw && pw->pw_dir ? pw->pw_dir : "/";
	}
	if (aws_path("AWS_SHARED_CREDENTIALS_FILE", home, "credentials", &cpath) ||
	    aws_path("AWS_CONFIG_FILE", home, "config", &fpath)) {
		rc = vmb_err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	rc = load_file(cpath, 0, profile, &tc, &fc, err);
	if (!rc)
		rc = load_file(fpath, 1, profile, &tf, &ff, err);
	if (rc)
		goto out;
	if ((id && *id) || (secret && *secret)) {
		if (!(id && *id) || !(secret && *secret)) {
			rc = vmb_err_set(err, EINVAL, "%s is set but %s is not",
					 id && *id ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
					 id && *id ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
			goto out;
		}
		if (!cred_ok(id) || !cred_ok(secret) || (token && *token && !cred_ok(token))) {
			rc = vmb_err_set(err, EINVAL, "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or "
					 "AWS_SESSION_TOKEN has a space or a character that no "
					 "key has");
			goto out;
		}
		c->key_id = strdup(id);
		c->secret = strdup(secret);
		c->token = token && *token ? strdup(token) : NULL;
		if (!c->key_id || !c->secret || (token && *token && !c->token)) {
			rc = vmb_err_set(err, ENOMEM, "out of memory");
			goto out;
		}
		snprintf(c->source, sizeof(c->source), "environment");
	} else if (explicit && !fc && !ff) {
		rc = vmb_err_set(err, ENOENT, "AWS profile '%s' is in neither '%s' nor '%s'",
				 profile, cpath, fpath);
		goto out;
	} else if (tc.key_id || tc.secret) {
		rc = pair(c, &tc, profile, cpath, err);
	} else if (tf.key_id || tf.secret) {
		rc = pair(c, &tf, profile, fpath, err);
	} else if (tc.unsupported[0] || tf.unsupported[0]) {
		rc = vmb_err_set(err, ENOTSUP, "AWS profile '%s' in '%s' gets its credentials "
				 "through '%s', which vmbundlefs does not support: set "
				 "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and "
				 "AWS_SESSION_TOKEN), e.g. from 'aws configure export-credentials'",
				 profile, tc.unsupported[0] ? cpath : fpath,
				 tc.unsupported[0] ? tc.unsupported : tf.unsupported);
	} else {
		snprintf(c->source, sizeof(c->source), "none (unsigned requests)");
		snprintf(c->tried, sizeof(c->tried), "AWS_ACCESS_KEY_ID is not set and profile "
			 "'%s' has no key in '%s' nor in '%s'", profile, cpath, fpath);
	}
	if (rc)
		goto out;
	c->endpoint = tf.endpoint;
	tf.endpoint = NULL;

	if (region_opt && *region_opt)
		region = region_opt;
	else if ((region = getenv("AWS_REGION")) && *region)
		;
	else if ((region = getenv("AWS_DEFAULT_REGION")) && *region)
		;
	else if (tf.region)
		region = tf.region;
	else
		region = "us-east-1";
	if (!region_ok(region)) {
		rc = vmb_err_set(err, EINVAL, "AWS region '%s' is not a region name (a-z, 0-9, "
				 "'-')", region);
		goto out;
	}
	c->region = strdup(region);
	if (!c->region)
		rc = vmb_err_set(err, ENOMEM, "out of memory");
out:
	if (rc)
		vmb_s3_creds_free(c);
	vmb_s3_creds_free(&tc);
	vmb_s3_creds_free(&tf);
	free(cpath);
	free(fpath);
	return rc;
}

int vmb_s3_endpoint(const char *opt, char **out, const char **src, struct vmb_err *err)
{
	const char *ign = getenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"), *v;
	struct vmb_s3_creds c;
	int rc;

	*out = NULL;
	*src = "none";
	if (opt) {
		*src = "the endpoint option";
		v = opt;
	} else if (ign && !strcasecmp(ign, "true")) {
		return 0;
	} else if ((v = getenv("AWS_ENDPOINT_URL_S3")) && *v) {
		*src = "AWS_ENDPOINT_URL_S3";
	} else if ((v = getenv("AWS_ENDPOINT_URL")) && *v) {
		*src = "AWS_ENDPOINT_URL";
	} else {
		rc = vmb_s3_creds_load(NULL, &c, err);
		if (rc)
			return rc;
		*out = c.endpoint;
		c.endpoint = NULL;
		vmb_s3_creds_free(&c);
		if (*out)
			*src = "endpoint_url in the AWS config file";
		return 0;
	}
	*out = strdup(v);
	return *out ? 0 : vmb_err_set(err, ENOMEM, "out of memory");
}
