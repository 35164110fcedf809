/* mountinfo.h - the one reader of /proc/self/mountinfo (proc(5)): the command's
 * search for a store's mounts (cli_ctl.c), the daemon's own device (fs/, through
 * vfs/ctl.h) and the mount point of another daemon of a store (vfs_ctl.c).
 *
 * A line: ID PARENT MAJOR:MINOR ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE
 * SUPEROPTIONS. The kernel writes space, tab, newline and backslash in the text
 * fields as octal escapes (\040, \011, \012, \134); they are decoded here, so that
 * the fields are the paths themselves. Lines of any length. No state. */
#ifndef VMB_MOUNTINFO_H
#define VMB_MOUNTINFO_H

#include <stdio.h>

/* One mount, its fields decoded; the strings point into the line being read and are
 * valid during the callback only. */
struct vmb_mountinfo {
	const char *dev;           /* "MAJOR:MINOR" */
	const char *root;          /* the mount's root in its file system */
	const char *mountpoint;
	const char *fstype;        /* "fuse.vmbundlefs" */
	const char *source;        /* the fsname: a store's path for ours */
};

/* Decode the octal escapes (a backslash and three octal digits, first 0-3) of s in
 * place; anything else is kept as it is. */
void vmb_mountinfo_unescape(char *s);

/* Split one line (its newline, if any, removed) into *m, in place (escapes decoded).
 * 0, or -EINVAL when it is not a mountinfo line (too few fields, no "-"). */
int vmb_mountinfo_parse(char *line, struct vmb_mountinfo *m);

/* Every well-formed line of f (NULL: /proc/self/mountinfo, opened and closed
 * here), in order, to fn; a non-zero return of fn stops the reading and is
 * returned. 0 at the end; -errno when the file cannot be opened or read (errno
 * set), -ENOMEM. */
typedef int (*vmb_mountinfo_fn)(void *arg, const struct vmb_mountinfo *m);
int vmb_mountinfo_each(FILE *f, vmb_mountinfo_fn fn, void *arg);

/* The device ("MAJOR:MINOR") of the last mount (the one on top) whose mount point
 * is mountpoint (compared as given: pass a realpath), in dev. 0, or -ENOENT when
 * there is none, -ENAMETOOLONG when it does not fit, -errno. */
int vmb_mountinfo_dev_of(const char *mountpoint, char *dev, size_t size);

/* The mount point of the first mount of device dev, in mp. 0, -ENOENT when there
 * is none, -ENAMETOOLONG when it does not fit, -errno. */
int vmb_mountinfo_mountpoint_of(const char *dev, char *mp, size_t size);

#endif
