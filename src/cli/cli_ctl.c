/* cli_ctl.c - the command's side of the control channel (vfs/ctl.h): find the mount
 * of a store (or the store of a path inside a mount) in /proc/self/mountinfo, as
 * 'status' does, and send a request to its daemon; and 'vmbundlefs ping'. */
#include "config.h"
#include "cli/cli.h"
#include "base/mountinfo.h"
#include "vfs/ctl.h"
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* As the mount's fsname spells a store's path (fuse_mount.c). */
static void as_fsname(char *s)
{
	for (; *s; s++)
		if (*s == ',' || *s == '\\')
			*s = '_';
}

struct mounts {
	struct vmb_cli_mount *all;
	size_t n;
};

static int one_mount(void *arg, const struct vmb_mountinfo *mi)
{
	struct mounts *ms = arg;
	struct vmb_cli_mount *m, *grown;

	if (strcmp(mi->fstype, "fuse.vmbundlefs") || strlen(mi->dev) >= sizeof(m->dev) ||
	    strlen(mi->mountpoint) >= sizeof(m->mp) || strlen(mi->source) >= sizeof(m->source))
		return 0;   /* not ours, or paths no realpath gives */
	grown = realloc(ms->all, (ms->n + 1) * sizeof(*ms->all));
	if (!grown)
		return -ENOMEM;
	ms->all = grown;
	m = &ms->all[ms->n++];
	strcpy(m->dev, mi->dev);
	strcpy(m->mp, mi->mountpoint);
	strcpy(m->source, mi->source);
	return 0;
}

int vmb_cli_mounts(struct vmb_cli_mount **out, size_t *n, struct vmb_err *err)
{
	struct mounts ms = { NULL, 0 };
	int r = vmb_mountinfo_each(NULL, one_mount, &ms);

	*out = NULL;
	*n = 0;
	if (r < 0) {
		free(ms.all);
		return r == -ENOMEM ? vmb_err_set(err, ENOMEM, "out of memory")
				    : vmb_err_sys(err, -r, "cannot read /proc/self/mountinfo");
	}
	*out = ms.all;
	*n = ms.n;
	return 0;
}

const struct vmb_cli_mount *vmb_cli_mount_holding(const struct vmb_cli_mount *all, size_t n,
						  const char *real, const char **rel)
{
	const struct vmb_cli_mount *best = NULL;
	size_t i, bestlen = 0;

	for (i = 0; i < n; i++) {
		size_t l = strlen(all[i].mp);
		if (l == 1)
			l = 0;   /* mounted on / */
		if (!strncmp(real, all[i].mp, l) && (real[l] == '/' || real[l] == '\0') &&
		    (!best || l + 1 > bestlen)) {
			best = &all[i];
			bestlen = l + 1;
		}
	}
	if (best && rel)
		*rel = real[bestlen - 1] == '/' ? real + bestlen : "";
	return best;
}

void vmb_cli_ctl_target_free(struct vmb_ctl_target *t)
{
	free(t->store);
	free(t->mountpoint);
	free(t->rel);
	memset(t, 0, sizeof(*t));
}

int vmb_cli_ctl_find(const char *target, struct vmb_ctl_target *t, struct vmb_err *err)
{
	struct vmb_cli_mount *all = NULL;
	const struct vmb_cli_mount *holder;
	char *real = NULL, fsname[PATH_MAX], *list = NULL;
	const char *rel = NULL;
	size_t n, i, mounts = 0, listlen = 0;
	int r;

	memset(t, 0, sizeof(*t));
	real = realpath(target, NULL);
	if (!real)
		return vmb_err_sys(err, errno, "cannot resolve '%s'", target);
	r = vmb_cli_mounts(&all, &n, err);
	if (r < 0)
		goto out;
	/* A path inside a mount: the store is that mount's. */
	holder = vmb_cli_mount_holding(all, n, real, &rel);
	if (holder) {
		t->store = strdup(holder->source);
		t->rel = strdup(rel);
		if (!t->store || !t->rel) {
			r = vmb_err_set(err, ENOMEM, "out of memory");
			goto out;
		}
	} else {
		t->store = real;
		real = NULL;
	}
	snprintf(fsname, sizeof(fsname), "%s", t->store);
	as_fsname(fsname);
	/* Its mounts: one device each (a bind mount of a mount is the same mount). */
	for (i = 0; i < n; i++) {
		size_t j;
		if (strcmp(all[i].source, fsname))
			continue;
		for (j = 0; j < i; j++)
			if (!strcmp(all[j].source, fsname) && !strcmp(all[j].dev, all[i].dev))
				break;
		if (j < i)
			continue;
		if (mounts++ == 0) {
			t->mountpoint = strdup(all[i].mp);
			snprintf(t->dev, sizeof(t->dev), "%s", all[i].dev);
			if (!t->mountpoint) {
				r = vmb_err_set(err, ENOMEM, "out of memory");
				goto out;
			}
		}
		{
			size_t add = strlen(all[i].mp) + 8;
			char *grown = realloc(list, listlen + add);
			if (!grown) {
				r = vmb_err_set(err, ENOMEM, "out of memory");
				goto out;
			}
			list = grown;
			listlen += (size_t)sprintf(list + listlen, "%s'%s'",
						   mounts == 1 ? "" : " and ", all[i].mp);
		}
	}
	if (mounts > 1)
		r = vmb_err_set(err, EBUSY, "structural commands need a store with at most one "
				"mount; '%s' is mounted at %s", t->store, list);
out:
	if (r < 0)
		vmb_cli_ctl_target_free(t);
	free(list);
	free(all);
	free(real);
	return r;
}

int vmb_cli_ctl_call(const struct vmb_ctl_target *t, const char *const *argv, int argc,
		     char **msg, struct vmb_err *err)
{
	char *path = NULL, *req = NULL, reply[VMB_CTL_REPLY_MAX + 1], *end;
	struct sockaddr_un sa;
	size_t len = 0;
	ssize_t got;
	long code;
	int runfd = -1, fd = -1, r = 0, i;

	*msg = NULL;
	if (!t->mountpoint)
		return vmb_err_set(err, ENOTCONN, "store '%s' is not mounted", t->store);
	for (i = 0; i < argc; i++)
		len += strlen(argv[i]) + 1;
	if (len > VMB_CTL_MSG_MAX)
		return vmb_err_set(err, ENAMETOOLONG, "request too long for the control channel");
	req = malloc(len ? len : 1);
	if (!req || asprintf(&path, "%s/%s/%s", t->store, VMB_META_DIR, VMB_CTL_RUN_DIR) < 0) {
		path = NULL;
		r = vmb_err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	for (len = 0, i = 0; i < argc; i++) {
		memcpy(req + len, argv[i], strlen(argv[i]) + 1);
		len += strlen(argv[i]) + 1;
	}
	runfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (runfd < 0) {
		r = vmb_err_sys(err, errno, "cannot reach the control channel of the mount at "
				"'%s' ('%s')", t->mountpoint, path);
		goto out;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s%s", runfd,
		 VMB_CTL_PREFIX, t->dev);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = vmb_err_sys(err, errno, "cannot make a socket");
		goto out;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		if (e == ENOENT || e == ECONNREFUSED)
			/* ENOTCONN: the CLI's message names status and the log */
			r = vmb_err_set(err, ENOTCONN, "the daemon of the mount at '%s' does not "
					"answer on its control channel '%s/%s%s': %s",
					t->mountpoint, path, VMB_CTL_PREFIX, t->dev, strerror(e));
		else
			r = vmb_err_sys(err, e, "cannot reach the daemon of the mount at '%s' "
					"('%s/%s%s')", t->mountpoint, path, VMB_CTL_PREFIX, t->dev);
		goto out;
	}
	if (send(fd, req, len, MSG_NOSIGNAL) != (ssize_t)len) {
		r = vmb_err_sys(err, errno, "cannot send a request to the daemon of the mount at "
				"'%s'", t->mountpoint);
		goto out;
	}
	do
		got = recv(fd, reply, VMB_CTL_REPLY_MAX, 0);
	while (got < 0 && errno == EINTR);
	if (got <= 0) {
		r = vmb_err_set(err, EIO, "the daemon of the mount at '%s' gave no answer%s%s",
				t->mountpoint, got < 0 ? ": " : "", got < 0 ? strerror(errno) : "");
		goto out;
	}
	reply[got] = '\0';
	errno = 0;
	code = strtol(reply, &end, 10);
	if (errno || end == reply || *end != ' ' || code < 0 || code > 4095) {
		r = vmb_err_set(err, EIO, "the daemon of the mount at '%s' gave a bad answer",
				t->mountpoint);
		goto out;
	}
	if (code) {
		r = vmb_err_set(err, (int)code, "%s", end + 1);
		goto out;
	}
	*msg = strdup(end + 1);
	if (!*msg)
		r = vmb_err_set(err, ENOMEM, "out of memory");
out:
	if (fd >= 0)
		close(fd);
	if (runfd >= 0)
		close(runfd);
	free(path);
	free(req);
	return r;
}

static const char ping_usage[] =
	"Usage: vmbundlefs ping STORE|PATH\n"
	"Ask the daemon of the mount of STORE (or of the mount PATH is in) whether it\n"
	"answers on its control channel (STORE/.vmbundlefs/run), through which\n"
	"structural commands reach a mounted store.\n";

int vmb_cli_ping(int argc, char **argv)
{
	struct vmb_ctl_target t;
	struct vmb_err err = {0};
	const char *req[] = { "ping" };
	char *msg = NULL;
	int rc = VMB_EXIT_ERROR;

	if (vmb_cli_common(argc, argv, ping_usage))
		return VMB_EXIT_OK;
	if (argc != 2 || argv[1][0] == '-') {
		fputs(ping_usage, stderr);
		return VMB_EXIT_USAGE;
	}
	if (vmb_cli_ctl_find(argv[1], &t, &err) < 0) {
		vmb_cli_store_error(argv[1], err.code, "%s", err.msg);
		return VMB_EXIT_ERROR;
	}
	if (vmb_cli_ctl_call(&t, req, 1, &msg, &err) < 0) {
		vmb_cli_store_error(argv[1], err.code, "%s", err.msg);
	} else {
		printf("%s\n", msg);
		rc = fflush(stdout) == 0 ? VMB_EXIT_OK : VMB_EXIT_ERROR;
	}
	free(msg);
	vmb_cli_ctl_target_free(&t);
	return rc;
}
