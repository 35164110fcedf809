/* progress.c - a one-line progress bar on a terminal (see progress.h). */
#include "config.h"
#include "cli/progress.h"
#include "base/clock.h"

#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define PROGRESS_ESTIMATE_AFTER_S 1.0
#define PROGRESS_ESTIMATE_AFTER_BYTES (8u << 20)

void vmb_progress_bytes(char *buf, size_t size, uint64_t v)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double d = (double)v;
	int u = 0;

	while (d >= 1024 && u < 6) {
		d /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, size, "%llu B", (unsigned long long)v);
	else
		snprintf(buf, size, "%.1f %s", d, units[u]);
}

void vmb_progress_format(char *buf, size_t size, const char *label, uint64_t done,
			 uint64_t total, double elapsed, int width)
{
	char d[32], t[32], rate[32], left[32] = "", bar[64];
	double r = elapsed > 0 ? (double)done / elapsed : 0;
	int i, w = 20, fill = 0;

	vmb_progress_bytes(d, sizeof(d), done);
	vmb_progress_bytes(rate, sizeof(rate), (uint64_t)r);
	if (total > 0) {
		double frac = done >= total ? 1.0 : (double)done / (double)total;
		vmb_progress_bytes(t, sizeof(t), total);
		fill = (int)(frac * w);
		/* A rate from the first few blocks (a cached header, a burst into the
		 * page cache) says nothing: estimate once a second has passed and 1% or
		 * 8 MiB of the work is done. */
		if (r > 0 && done < total && elapsed >= PROGRESS_ESTIMATE_AFTER_S &&
		    (done >= total / 100 || done >= PROGRESS_ESTIMATE_AFTER_BYTES)) {
			unsigned long s = (unsigned long)((double)(total - done) / r);
			snprintf(left, sizeof(left), "  %lu:%02lu left", s / 60, s % 60);
		}
		for (i = 0; i < w; i++)
			bar[i] = i < fill ? '#' : '.';
		bar[w] = '\0';
		snprintf(buf, size, "%s [%s] %s / %s  %s/s%s", label, bar, d, t, rate, left);
	} else {
		snprintf(buf, size, "%s  %s  %s/s", label, d, rate);
	}
	if (width > 0 && (size_t)width < size)
		buf[width] = '\0';
}

void vmb_progress_init(struct vmb_progress *p, FILE *out, const char *label)
{
	memset(p, 0, sizeof(*p));
	if (!out || !isatty(fileno(out)))
		return;
	p->out = out;
	snprintf(p->label, sizeof(p->label), "%s", label);
	p->start = vmb_now_s();
}

void vmb_progress_update(void *arg, uint64_t done, uint64_t total)
{
	struct vmb_progress *p = arg;
	struct winsize ws;
	char line[256];
	double t;
	int width = 79;

	if (!p->out)
		return;
	p->done = done;
	p->total = total;
	t = vmb_now_s();
	if (p->drawn && t - p->last < 0.1)
		return;
	p->last = t;
	if (ioctl(fileno(p->out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1)
		width = ws.ws_col - 1;
	vmb_progress_format(line, sizeof(line), p->label, done, total, t - p->start, width);
	fprintf(p->out, "\r%s\033[K", line);
	fflush(p->out);
	p->drawn = 1;
}

void vmb_progress_end(struct vmb_progress *p)
{
	if (p->out && p->drawn) {
		fputs("\r\033[K", p->out);
		fflush(p->out);
	}
	p->drawn = 0;
}
