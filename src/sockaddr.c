/* Socket address conversions, as the socket module does them
 * (Modules/socketmodule.c: makesockaddr, getsockaddrarg, setipaddr). */
#include "sockaddr.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/un.h>

int
fl_sockaddr_family_supported(int family)
{
    return family == AF_INET || family == AF_INET6 || family == AF_UNIX;
}

PyObject *
fl_sockaddr_to_py(const struct sockaddr_storage *ss, socklen_t len)
{
    char host[INET6_ADDRSTRLEN];

    if (len == 0) {
        /* No address: e.g. a datagram from an unbound Unix socket. */
        Py_RETURN_NONE;
    }
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        return Py_BuildValue("(si)", host, ntohs(a->sin_port));
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        return Py_BuildValue("(siII)", host, ntohs(a->sin6_port),
                             ntohl(a->sin6_flowinfo), a->sin6_scope_id);
    }
    if (ss->ss_family == AF_UNIX) {
        const struct sockaddr_un *a = (const struct sockaddr_un *)ss;
        size_t n = len > offsetof(struct sockaddr_un, sun_path)
                       ? len - offsetof(struct sockaddr_un, sun_path)
                       : 0;
        if (n > sizeof(a->sun_path)) {
            n = sizeof(a->sun_path);
        }
        if (n > 0 && a->sun_path[0] == '\0') {
            /* Linux abstract namespace */
            return PyBytes_FromStringAndSize(a->sun_path, (Py_ssize_t)n);
        }
        n = strnlen(a->sun_path, n);
        return PyUnicode_DecodeFSDefaultAndSize(a->sun_path, (Py_ssize_t)n);
    }
    Py_RETURN_NONE;
}

/* An exact int in [0, max], else -1. */
static long long
small_uint(PyObject *o, long long max)
{
    long long v;
    int overflow;

    if (!PyLong_Check(o)) {
        return -1;
    }
    v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (v == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    if (overflow || v < 0 || v > max) {
        return -1;
    }
    return v;
}

/* The host of an INET address as a NUL-free ASCII C string, or NULL. */
static const char *
numeric_host(PyObject *host)
{
    const char *s;
    Py_ssize_t n;

    if (!PyUnicode_Check(host) || !PyUnicode_IS_ASCII(host)) {
        return NULL;
    }
    s = PyUnicode_AsUTF8AndSize(host, &n);
    if (s == NULL) {
        PyErr_Clear();
        return NULL;
    }
    if (n == 0 || (size_t)n != strlen(s) || s[0] == '<') {
        return NULL; /* '' and '<broadcast>' are special */
    }
    return s;
}

static int
unix_addr(PyObject *addr, struct sockaddr_storage *ss, socklen_t *len)
{
    struct sockaddr_un *a = (struct sockaddr_un *)ss;
    PyObject *b;
    const char *p;
    size_t n;
    int ok = 0;

    if (PyUnicode_Check(addr)) {
        b = PyUnicode_EncodeFSDefault(addr);
        if (b == NULL) {
            PyErr_Clear();
            return 0;
        }
    }
    else if (PyBytes_CheckExact(addr)) {
        b = Py_NewRef(addr);
    }
    else {
        return 0;
    }
    p = PyBytes_AS_STRING(b);
    n = (size_t)PyBytes_GET_SIZE(b);
    memset(a, 0, offsetof(struct sockaddr_un, sun_path));
    a->sun_family = AF_UNIX;
    if (n == 0 || p[0] == '\0') {
        /* Linux abstract namespace (or autobind for an empty name) */
        if (n <= sizeof(a->sun_path)) {
            memcpy(a->sun_path, p, n);
            *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
            ok = 1;
        }
    }
    else if (n < sizeof(a->sun_path)) {
        memcpy(a->sun_path, p, n);
        a->sun_path[n] = '\0';
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
        ok = 1;
    }
    Py_DECREF(b);
    return ok;
}

int
fl_py_to_sockaddr(int family, PyObject *addr, struct sockaddr_storage *ss,
                  socklen_t *len)
{
    const char *host;
    Py_ssize_t n;
    long long port;

    if (family == AF_UNIX) {
        return unix_addr(addr, ss, len);
    }
    if (family != AF_INET && family != AF_INET6) {
        return 0;
    }
    if (!PyTuple_Check(addr)) {
        return 0;
    }
    n = PyTuple_GET_SIZE(addr);
    if (n < 2 || (family == AF_INET && n != 2) || n > 4) {
        return 0;
    }
    host = numeric_host(PyTuple_GET_ITEM(addr, 0));
    port = small_uint(PyTuple_GET_ITEM(addr, 1), 0xffff);
    if (host == NULL || port < 0) {
        return 0;
    }
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        memset(a, 0, sizeof(*a));
        if (inet_pton(AF_INET, host, &a->sin_addr) <= 0) {
            return 0;
        }
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        *len = sizeof(*a);
        return 1;
    }
    else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        long long flowinfo = 0, scope_id = 0;
        if (n > 2 &&
            (flowinfo = small_uint(PyTuple_GET_ITEM(addr, 2), 0xfffff)) < 0)
        {
            return 0;
        }
        if (n > 3 && (scope_id = small_uint(PyTuple_GET_ITEM(addr, 3),
                                            UINT_MAX)) < 0)
        {
            return 0;
        }
        if (strchr(host, '%') != NULL) {
            return 0; /* a zone index: getaddrinfo() resolves it */
        }
        memset(a, 0, sizeof(*a));
        if (inet_pton(AF_INET6, host, &a->sin6_addr) <= 0) {
            return 0;
        }
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        a->sin6_flowinfo = htonl((uint32_t)flowinfo);
        a->sin6_scope_id = (uint32_t)scope_id;
        *len = sizeof(*a);
        return 1;
    }
}
