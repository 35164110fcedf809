/* base.c - reference counting of a base (base.h). */
#include "config.h"
#include "map/base.h"

void vmb_base_get(struct vmb_base *b)
{
	__atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
}

void vmb_base_put(struct vmb_base *b)
{
	if (b && __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0)
		b->ops->destroy(b);
}
