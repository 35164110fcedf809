/* clock.h - the monotonic clock (CLOCK_MONOTONIC) in the units callers want: for
 * intervals, timeouts and rates, never for wall-clock times. */
#ifndef VMB_CLOCK_H
#define VMB_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t vmb_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t vmb_now_ms(void)
{
	return vmb_now_ns() / 1000000u;
}

static inline double vmb_now_s(void)
{
	return (double)vmb_now_ns() / 1e9;
}

#endif
