/* tcplisten.h - the listening socket of the test servers (faultsrv, shapeproxy). */
#ifndef VMB_TEST_TCPLISTEN_H
#define VMB_TEST_TCPLISTEN_H

/* A listening TCP socket on 127.0.0.1:port (0: any free port); when portfile is not
 * NULL, the port is written there (a temporary renamed into place, so a reader
 * never sees half a number). Returns the socket, or -1 after a message on stderr
 * that starts with prog. */
int tcp_listen_loopback(const char *prog, long port, const char *portfile);

#endif
