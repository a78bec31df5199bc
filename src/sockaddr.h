/* Socket address conversions between C and the socket module's Python
 * representations (shared by server.c and udp.c). */
#ifndef FASTLOOP_SOCKADDR_H
#define FASTLOOP_SOCKADDR_H

#include "fastloop.h"

#include <sys/socket.h>

/* Converts an address returned by accept()/recvfrom() as the socket
 * module's makesockaddr does: AF_INET -> (host, port), AF_INET6 -> (host,
 * port, flowinfo, scope_id), AF_UNIX -> str (bytes for Linux abstract
 * names), len == 0 -> None. Other families -> None (callers that may see
 * them go through the socket module). New reference or NULL. */
PyObject *fl_sockaddr_to_py(const struct sockaddr_storage *ss, socklen_t len);

/* Whether fl_sockaddr_to_py and fl_py_to_sockaddr handle `family`. */
int fl_sockaddr_family_supported(int family);

/* Converts a Python address for a socket of `family` to a sockaddr, for
 * the common unambiguous forms only: a numeric IPv4/IPv6 host (no zone
 * index) with an int port, or an AF_UNIX str/bytes path. Returns 1 on
 * success, 0 when the socket module must decide (names, special hosts,
 * anything malformed: it raises the right error). Never raises. */
int fl_py_to_sockaddr(int family, PyObject *addr,
                      struct sockaddr_storage *ss, socklen_t *len);

#endif
