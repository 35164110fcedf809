/* xns.c - the xattr namespace of the marks on backing files (see xns.h). */
#include "config.h"
#include "image/xns.h"

#include <errno.h>
#include <pthread.h>

static pthread_mutex_t xns_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned xns_holds;
static enum vmb_xns xns_ns = VMB_XNS_TRUSTED;
static uid_t xns_owner;

int vmb_xns_hold(enum vmb_xns ns, uid_t owner)
{
	int r = 0;

	pthread_mutex_lock(&xns_mu);
	if (xns_holds && (xns_ns != ns || (ns == VMB_XNS_USER && xns_owner != owner))) {
		r = -EXDEV;
	} else {
		__atomic_store_n(&xns_ns, ns, __ATOMIC_RELEASE);
		xns_owner = owner;
		xns_holds++;
	}
	pthread_mutex_unlock(&xns_mu);
	return r;
}

void vmb_xns_release(void)
{
	pthread_mutex_lock(&xns_mu);
	if (xns_holds && !--xns_holds)
		__atomic_store_n(&xns_ns, VMB_XNS_TRUSTED, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&xns_mu);
}

static enum vmb_xns cur(void)
{
	return __atomic_load_n(&xns_ns, __ATOMIC_ACQUIRE);
}

const char *vmb_xns_base_name(void)
{
	return cur() == VMB_XNS_USER ? VMB_XNS_BASE_USER : VMB_XNS_BASE_TRUSTED;
}

const char *vmb_xns_resrec_name(void)
{
	return cur() == VMB_XNS_USER ? VMB_XNS_RESREC_USER : VMB_XNS_RESREC_TRUSTED;
}

int vmb_xns_trusts(uid_t uid)
{
	int r;

	pthread_mutex_lock(&xns_mu);
	r = xns_ns == VMB_XNS_TRUSTED || uid == xns_owner;
	pthread_mutex_unlock(&xns_mu);
	return r;
}
