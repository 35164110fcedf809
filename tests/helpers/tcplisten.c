/* tcplisten.c - see tcplisten.h. */
#include "tcplisten.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int tcp_listen_loopback(const char *prog, long port, const char *portfile)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	int ls, one = 1;

	ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ls < 0) {
		fprintf(stderr, "%s: socket: %s\n", prog, strerror(errno));
		return -1;
	}
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 128) < 0 ||
	    getsockname(ls, (struct sockaddr *)&sa, &sl) < 0) {
		fprintf(stderr, "%s: cannot listen on 127.0.0.1:%ld: %s\n", prog, port, strerror(errno));
		close(ls);
		return -1;
	}
	if (portfile) {
		char tmp[4096];
		FILE *f;

		snprintf(tmp, sizeof(tmp), "%s.tmp", portfile);
		f = fopen(tmp, "w");
		if (!f || fprintf(f, "%u\n", ntohs(sa.sin_port)) < 0 || fclose(f) != 0 ||
		    rename(tmp, portfile) < 0) {
			fprintf(stderr, "%s: cannot write '%s'\n", prog, portfile);
			close(ls);
			return -1;
		}
	}
	return ls;
}
