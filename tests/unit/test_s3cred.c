/* test_s3cred.c - AWS credentials for s3:// (src/remote/fetch_s3.c): the ini parser
 * on good and malformed files (every malformed one gets an error naming file and line),
 * and the order of sources: environment, credentials file, config file, region. */
#include "config.h"
#include "remote/fetch_s3.h"
#include "harness.h"

#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static int parse(const char *text, int is_config, const char *profile,
		 struct vmb_s3_creds *c, int *found, struct vmb_err *err)
{
	memset(c, 0, sizeof(*c));
	vmb_err_clear(err);
	return vmb_aws_ini_profile(text, strlen(text), "F", is_config, profile, c, found, err);
}

static void test_parse_good(void)
{
	struct vmb_s3_creds c;
	struct vmb_err err;
	int found;
	const char *cred =
		"# comment\n"
		"; another\n"
		"[default]\n"
		"aws_access_key_id = AKIDDEFAULT\n"
		"aws_secret_access_key=secret/with+chars=\r\n"
		"\n"
		"[  work  ]\n"
		"aws_access_key_id =AKIDWORK\n"
		"aws_secret_access_key = s2\n"
		"aws_session_token = tok==\n"
		"unknown_key = anything at all, spaces too\n"
		"[profile work]\n"                 /* in a credentials file: a profile of that name */
		"aws_access_key_id = WRONG\n";
	const char *conf =
		"[default]\n"
		"region = eu-west-3\n"
		"s3 =\n"
		"    addressing_style = path\n"
		"    max_concurrent_requests = 20\n"
		"[profile work]\n"
		"region=ap-south-1\n"
		"aws_access_key_id = AKIDCONF\n"
		"aws_secret_access_key = sconf\n"
		"[profile sso]\n"
		"sso_session = corp\n"
		"[sso-session corp]\n"
		"sso_start_url = https://x\n";

	CHECK_RC(parse(cred, 0, "default", &c, &found, &err), 0);
	CHECK(found);
	CHECK(c.key_id && !strcmp(c.key_id, "AKIDDEFAULT"));
	CHECK(c.secret && !strcmp(c.secret, "secret/with+chars="));
	CHECK(!c.token && !c.region);
	vmb_s3_creds_free(&c);

	CHECK_RC(parse(cred, 0, "work", &c, &found, &err), 0);
	CHECK(found);
	CHECK(c.key_id && !strcmp(c.key_id, "AKIDWORK"));
	CHECK(c.token && !strcmp(c.token, "tok=="));
	vmb_s3_creds_free(&c);

	CHECK_RC(parse(cred, 0, "nosuch", &c, &found, &err), 0);
	CHECK(!found && !c.key_id);

	CHECK_RC(parse(conf, 1, "default", &c, &found, &err), 0);
	CHECK(found && c.region && !strcmp(c.region, "eu-west-3") && !c.key_id);
	vmb_s3_creds_free(&c);
	CHECK_RC(parse(conf, 1, "work", &c, &found, &err), 0);
	CHECK(found && !strcmp(c.region, "ap-south-1") && !strcmp(c.key_id, "AKIDCONF"));
	vmb_s3_creds_free(&c);
	CHECK_RC(parse(conf, 1, "sso", &c, &found, &err), 0);
	CHECK(found && !c.key_id);
	CHECK(!strcmp(c.unsupported, "sso_session"));
	vmb_s3_creds_free(&c);
	/* "[profile default]" names the default profile in a config file */
	CHECK_RC(parse("[profile default]\nregion = us-west-2\n", 1, "default", &c, &found, &err), 0);
	CHECK(found && !strcmp(c.region, "us-west-2"));
	vmb_s3_creds_free(&c);
	/* in a config file "[work]" is not the profile work */
	CHECK_RC(parse("[work]\nregion = us-west-2\n", 1, "work", &c, &found, &err), 0);
	CHECK(!found);
	/* empty file, comments only, no final newline */
	CHECK_RC(parse("", 0, "default", &c, &found, &err), 0);
	CHECK_RC(parse("#x\n\n   \n", 0, "default", &c, &found, &err), 0);
	CHECK_RC(parse("[default]\naws_access_key_id=A\naws_secret_access_key=B", 0, "default",
		       &c, &found, &err), 0);
	CHECK(c.secret && !strcmp(c.secret, "B"));
	vmb_s3_creds_free(&c);
}

static void test_parse_bad(void)
{
	static const struct { const char *text; int cfg; const char *msg; } bad[] = {
		{ "aws_access_key_id = A\n", 0, "F:1: 'aws_access_key_id' is outside any [section]" },
		{ "[default\nx = 1\n", 0, "F:1: a section header without its closing ']'" },
		{ "[]\n", 0, "F:1: a section header without a name" },
		{ "[ ]\n", 0, "F:1: a section header without a name" },
		{ "[a]b]\n", 0, "F:1: a section header without a name, or with '[' or ']'" },
		{ "[default]\njust words\n", 0, "F:2: expected 'key = value', '[section]' or a comment" },
		{ "[default]\n= value\n", 0, "F:2: '=' without a key before it" },
		{ "[default]\naws key = v\n", 0, "F:2: key 'aws key' has a character other than" },
		{ "[default]\na = 1\na = 2\n", 0, "F:3: 'a' appears twice in its section" },
		{ "[default]\n[x]\n[default]\n", 0, "F:3: section [default] appears twice" },
		{ "[default]\n  indented = 1\n", 0, "F:2: an indented line that follows no 'key =' line" },
		{ "[default]\na = 1\n  continued\n", 0, "F:3: an indented line" },
		{ "[default]\ns3 =\n  no equals here\n", 0, "F:3: an indented line" },
		{ "[default]\naws_access_key_id =\n", 0, "F:2: aws_access_key_id is empty" },
		{ "[default]\naws_secret_access_key = has space\n", 0,
		  "F:2: aws_secret_access_key has a space or a character that no key has" },
		{ "[default]\naws_session_token = \x01x\n", 0, "F:2: aws_session_token has a space" },
		{ "[default]\nregion = EU West\n", 1, "F:2: region is not a region name" },
		{ "[profile other]\na=1\n[default]\nregion = \n", 1, NULL },  /* empty: nested, fine */
		{ NULL, 0, NULL }
	};
	struct vmb_s3_creds c;
	struct vmb_err err;
	char big[5000];
	int found, i;

	for (i = 0; bad[i].text; i++) {
		int rc = parse(bad[i].text, bad[i].cfg, "default", &c, &found, &err);

		if (!bad[i].msg) {
			CHECK_RC(rc, 0);
			vmb_s3_creds_free(&c);
			continue;
		}
		CHECK_RC(rc, -EINVAL);
		CHECK_STR(err.msg, bad[i].msg);
		vmb_s3_creds_free(&c);
	}
	/* a malformed line in another profile's section fails too: the whole file is checked */
	CHECK_RC(parse("[default]\naws_access_key_id=A\n[other]\nbroken\n", 0, "default", &c,
		       &found, &err), -EINVAL);
	CHECK_STR(err.msg, "F:4:");
	vmb_s3_creds_free(&c);
	/* a NUL byte, a line too long */
	memset(&c, 0, sizeof(c));
	CHECK_RC(vmb_aws_ini_profile("[default]\0x", 11, "F", 0, "default", &c, &found, &err),
		 -EINVAL);
	CHECK_STR(err.msg, "F: has a NUL byte");
	memset(big, 'a', sizeof(big));
	memcpy(big, "[default]\nk=", 12);
	big[sizeof(big) - 1] = '\0';
	CHECK_RC(parse(big, 0, "default", &c, &found, &err), -EINVAL);
	CHECK_STR(err.msg, "F:2: line longer than");
}

static char dir[256];

static void write_file(const char *name, const char *text)
{
	char p[400];
	FILE *fp;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	fp = fopen(p, "w");
	if (fp) {
		fputs(text, fp);
		fclose(fp);
	}
}

static void clear_env(void)
{
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("AWS_SESSION_TOKEN");
	unsetenv("AWS_PROFILE");
	unsetenv("AWS_DEFAULT_PROFILE");
	unsetenv("AWS_REGION");
	unsetenv("AWS_DEFAULT_REGION");
	unsetenv("AWS_SHARED_CREDENTIALS_FILE");
	unsetenv("AWS_CONFIG_FILE");
}

static void test_load(void)
{
	struct vmb_s3_creds c;
	struct vmb_err err;
	char p[400];

	REQUIRE(harness_tmpdir(dir, sizeof(dir), "s3cred") == 0);
	clear_env();
	setenv("HOME", dir, 1);

	/* nothing anywhere: unsigned requests, us-east-1 */
	CHECK_RC(vmb_s3_creds_load(NULL, &c, &err), 0);
	CHECK(!c.key_id && !strcmp(c.region, "us-east-1"));
	CHECK_STR(c.source, "unsigned");
	vmb_s3_creds_free(&c);

	/* ~/.aws/credentials and ~/.aws/config */
	snprintf(p, sizeof(p), "%s/.aws", dir);
	mkdir(p, 0700);
	write_file(".aws/credentials", "[default]\naws_access_key_id = KC\naws_secret_access_key = SC\n"
		   "[half]\naws_access_key_id = KH\n[role]\nrole_arn = arn:aws:iam::1:role/x\n"
		   "source_profile = default\n");
	write_file(".aws/config", "[default]\nregion = eu-central-1\n[profile cfgonly]\n"
		   "aws_access_key_id = KF\naws_secret_access_key = SF\nregion = sa-east-1\n");
	CHECK_RC(vmb_s3_creds_load(NULL, &c, &err), 0);
	CHECK(c.key_id && !strcmp(c.key_id, "KC") && !strcmp(c.secret, "SC"));
	CHECK(!strcmp(c.region, "eu-central-1"));
	CHECK_STR(c.source, "/.aws/credentials [default]");
	vmb_s3_creds_free(&c);
	/* the option wins over the environment, which wins over the config file */
	setenv("AWS_DEFAULT_REGION", "us-west-1", 1);
	CHECK_RC(vmb_s3_creds_load(NULL, &c, &err), 0);
	CHECK(!strcmp(c.region, "us-west-1"));
	vmb_s3_creds_free(&c);
	setenv("AWS_REGION", "us-west-2", 1);
	CHECK_RC(vmb_s3_creds_load(NULL, &c, &err), 0);
	CHECK(!strcmp(c.region, "us-west-2"));
	vmb_s3_creds_free(&c);
	CHECK_RC(vmb_s3_creds_load("ca-central-1", &c, &err), 0);
	CHECK(!strcmp(c.region, "ca-central-1"));
	vmb_s3_creds_free(&c);
	unsetenv("AWS_REGION");
	unsetenv("AWS_DEFAULT_REGION");
	CHECK_RC(vmb_s3_creds_load("Bad Region", &c, &err), -EINVAL);
	CHECK_STR(err.msg, "AWS region 'Bad Region' is not a region name");

	/* a profile only in the config file */
	setenv("AWS_PROFILE", "cfgonly", 1);
	CHECK_RC(vmb_s3_creds_load(NULL, &c, &err), 0);
	CHECK(c.key_id && !strcmp(c.key_id, "KF") && !strcmp(c.region, "sa-east-1"));
	CHECK_STR(c.source, "/.aws/config [cfgonly]");
	vmb_s3_creds_free(&c);
	/* half a key pair, a role, a missing profile */
	setenv("AWS_PROFILE", "half", 1);
	CHECK_RC(vmb_s3_creds_load(NULL, &c, &err), -EINVAL);
	CHECK_STR(err.msg, "profile 'half' in '");
	CHECK_STR(err.msg, "has aws_access_key_id but no aws_secret_access_key");
	setenv("AWS_PROFILE", "role", 1);
	CHECK_RC(vmb_s3_creds_load(NULL, &c, &err), -ENOTSUP);
	CHECK_STR(err.msg, "gets its credentials through 'role_arn', which vmbundlefs does not support");
	setenv("AWS_PROFILE", "nosuch", 1);
	CHECK_RC(vmb_s3_creds_load(NULL, &c, &err), -ENOENT);
	CHECK_STR(err.msg, "AWS profile 'nosuch' is in neither");
	unsetenv("AWS_PROFILE");

	/* the environment wins over the files; a session token comes along */
	setenv("AWS_ACCESS_KEY_ID", "KE", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "SE", 1);
	setenv("AWS_SESSION_TOKEN", "TE", 1);
	CHECK_RC(vmb_s3_creds_load(NULL, &c, &err), 0);
	CHECK(c.key_id && !strcmp(c.key_id, "KE") && !strcmp(c.secret, "SE") &&
	      c.token && !strcmp(c.token, "TE"));
	CHECK(!strcmp(c.source, "environment"));
	vmb_s3_creds_free(&c);
	unsetenv("AWS_SECRET_ACCESS_KEY");
	CHECK_RC(vmb_s3_creds_load(NULL, &c, &err), -EINVAL);
	CHECK_STR(err.msg, "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
	setenv("AWS_SECRET_ACCESS_KEY", "S E", 1);
	CHECK_RC(vmb_s3_creds_load(NULL, &c, &err), -EINVAL);
	CHECK_STR(err.msg, "has a space");
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("AWS_SESSION_TOKEN");

	/* other file names, "~/" expanded; a malformed file is an error even so */
	write_file("creds2", "[default]\naws_access_key_id = K2\naws_secret_access_key = S2\n");
	setenv("AWS_SHARED_CREDENTIALS_FILE", "~/creds2", 1);
	CHECK_RC(vmb_s3_creds_load(NULL, &c, &err), 0);
	CHECK(c.key_id && !strcmp(c.key_id, "K2"));
	vmb_s3_creds_free(&c);
	write_file("conf2", "[default]\nregion eu-west-1\n");
	snprintf(p, sizeof(p), "%s/conf2", dir);
	setenv("AWS_CONFIG_FILE", p, 1);
	CHECK_RC(vmb_s3_creds_load(NULL, &c, &err), -EINVAL);
	CHECK_STR(err.msg, "/conf2:2: expected 'key = value'");
	/* a directory where the file should be */
	setenv("AWS_CONFIG_FILE", dir, 1);
	CHECK_RC(vmb_s3_creds_load(NULL, &c, &err), -EINVAL);
	CHECK_STR(err.msg, "is not a regular file");
	clear_env();
	harness_rmtree(dir);
}

int main(void)
{
	RUN(test_parse_good);
	RUN(test_parse_bad);
	RUN(test_load);
	return harness_exit("test_s3cred");
}
