/* vfs_cancel.c - the cancel token of a read that may wait for the network (hard
 * mode), for the FUSE adapter (vfs.h; base/cancel.h does the work). */
#include "config.h"
#include "vfs/vfs.h"

void vmb_vfs_read_cancel_begin(struct vmb_cancel *c, pid_t pid)
{
	vmb_cancel_init(c, pid);
	vmb_cancel_set_current(c);
}

void vmb_vfs_read_cancel_end(void)
{
	vmb_cancel_set_current(NULL);
}

void vmb_vfs_read_interrupt(struct vmb_cancel *c)
{
	vmb_cancel_interrupt(c);
}
