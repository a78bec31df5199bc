/* DatagramTransport: a C subclass of asyncio.DatagramTransport (and of
 * asyncio.Transport, as asyncio's own) for datagram sockets: UDP over IPv4
 * and IPv6, and Unix datagram sockets with or without a peer. Behaviour
 * follows asyncio's _SelectorDatagramTransport (selector_events.py) of the
 * running Python:
 *
 *   - the constructor schedules protocol.connection_made(), then the start
 *     of reading, then the waiter's result;
 *   - each datagram goes to protocol.datagram_received(data, addr); an
 *     OSError from recvfrom (an ICMP error such as ECONNREFUSED on a
 *     connected socket) goes to protocol.error_received(exc);
 *   - sendto() sends at once when nothing is queued; on EAGAIN the datagram
 *     and its address are queued and sent when the socket is writable; an
 *     OSError from sending goes to protocol.error_received(exc) (and the
 *     datagram is dropped), anything else is a fatal error;
 *   - write flow control calls pause_writing()/resume_writing() around the
 *     water marks of the queued bytes (3.13+: plus 8 bytes per datagram);
 *   - close() flushes the queue then calls connection_lost(None); abort()
 *     drops it.
 *
 * Differences from asyncio: several datagrams are read per readiness event
 * (stopping as soon as the transport is paused or closed); sendto() after
 * connection_lost() on a socket without a fixed address drops the datagram
 * like a connected one (asyncio raises AttributeError from its internals);
 * addresses are converted in C for numeric IPv4/IPv6 hosts and Unix paths,
 * and by the socket module otherwise (host names, '<broadcast>', errors). */
#include "sockaddr.h"
#include "transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <structmember.h>

#define MAX_SIZE (256 * 1024) /* asyncio's max_size; == stream.c READ_SIZE */
#define READ_BATCH 16
#if FL_PY313
#define HEADER_SIZE 8 /* asyncio 3.13+ counts 8 bytes per queued datagram */
#else
#define HEADER_SIZE 0
#endif

typedef struct {
    PyObject *data; /* bytes */
    PyObject *addr; /* the Python address, or NULL (connected socket) */
    struct sockaddr_storage sa;
    socklen_t salen; /* 0: not converted, send through the socket module */
} fl_dgram;

typedef struct {
    fl_transport_base base;
    PyObject *sock;              /* socket.socket */
    PyObject *address;           /* fixed remote address, or NULL */
    PyObject *datagram_received; /* cached bound method, or NULL */
    /* The sender of the last datagram read, as the kernel gave it and as
     * given to datagram_received(): a peer sending many datagrams costs one
     * conversion, and sendto(data, addr) back to it none. */
    PyObject *last_addr; /* NULL: nothing cached */
    struct sockaddr_storage last_ss;
    socklen_t last_sslen;
    char last_sendable; /* last_ss is what fl_py_to_sockaddr(last_addr) gives */

    fl_dgram *wbuf; /* ring buffer of queued datagrams */
    Py_ssize_t whead, wlen, wcap;
    Py_ssize_t wsize; /* get_write_buffer_size() */

    int family, socktype, proto;
    char connected; /* extra['peername'] was true: send(), not sendto() */
    char c_addr;    /* family whose addresses C converts */
    char wtail;     /* a send error left the writer on (asyncio does) */
} fl_udp;

#define ST(self) ((self)->base.loop->state)
#define B(self) (&(self)->base)

static int udp_on_io(fl_io *io, unsigned events);
static int force_close(fl_transport_base *b, PyObject *exc);
static PyObject *udp_call_connection_lost(fl_udp *self, PyObject *exc);

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static PyObject *
call_proto(fl_udp *self, const char *name, PyObject *const *args,
           Py_ssize_t nargs, int in_ctx)
{
    return fl_tr_call_method(in_ctx ? self->base.context : NULL,
                             self->base.protocol, name, args, nargs);
}

static int
fatal_error(fl_udp *self, const char *msg)
{
    return fl_tb_fatal_error(B(self), msg);
}

/* An exception escaped a protocol callback run from the transport's
 * reader or writer: in asyncio it escapes the _read_ready/_sendto_ready
 * handle and the loop reports it as "Exception in callback ...". Consumes
 * the current exception; returns -1 for SystemExit/KeyboardInterrupt
 * (left set), else 0. */
static int
callback_error(fl_udp *self, const char *method)
{
    PyObject *exc, *fn, *h = NULL, *r = NULL;

    if (fl_tr_is_fatal_exc()) {
        return -1;
    }
    exc = fl_tr_fetch_exc();
    if (exc == NULL) {
        return 0;
    }
    fn = PyObject_GetAttrString((PyObject *)self, method);
    if (fn != NULL) {
        h = fl_handle_new(ST(self), self->base.loop, fn, NULL, 0,
                          self->base.context);
        Py_DECREF(fn);
    }
    if (h != NULL) {
        fl_handling handling;

        fl_handling_begin(&handling, exc);
        r = PyObject_CallMethod((PyObject *)self->base.loop,
                                "_fl_callback_error",
                                "OO", h, exc);
        fl_handling_end(&handling);
        Py_DECREF(h);
    }
    if (r == NULL) {
        if (fl_tr_is_fatal_exc()) {
            Py_DECREF(exc);
            return -1;
        }
        PyErr_WriteUnraisable((PyObject *)self);
    }
    Py_XDECREF(r);
    Py_DECREF(exc);
    return 0;
}


/* ------------------------------------------------------------------ */
/* Watcher                                                             */

static unsigned
wanted_mask(fl_udp *self)
{
    unsigned m = 0;

    if (self->base.fd_closed || self->base.loop->closed) {
        return 0;
    }
    if (self->base.reading && !self->base.paused && !self->base.closing) {
        m |= FL_READ;
    }
    if (self->wlen || self->wtail) {
        m |= FL_WRITE;
    }
    return m;
}

/* Brings the loop's watcher in line with the transport's state. May drop
 * the loop's reference to self: callers hold their own. */
static int
update_io(fl_transport_base *b)
{
    return fl_tb_set_mask(b, wanted_mask((fl_udp *)b));
}

static void
update_io_noerr(fl_udp *self)
{
    if (update_io(B(self)) < 0) {
        PyErr_WriteUnraisable((PyObject *)self);
    }
}

/* ------------------------------------------------------------------ */
/* Write queue                                                         */

/* Room for one more datagram. */
static int
wbuf_reserve(fl_udp *self)
{
    if (self->wlen == self->wcap) {
        Py_ssize_t ncap = self->wcap ? self->wcap * 2 : 8, i;
        fl_dgram *n;
        if (ncap > PY_SSIZE_T_MAX / (Py_ssize_t)sizeof(fl_dgram)) {
            PyErr_NoMemory();
            return -1;
        }
        n = PyMem_Malloc((size_t)ncap * sizeof(fl_dgram));
        if (n == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (i = 0; i < self->wlen; i++) {
            n[i] = self->wbuf[(self->whead + i) % self->wcap];
        }
        PyMem_Free(self->wbuf);
        self->wbuf = n;
        self->whead = 0;
        self->wcap = ncap;
    }
    return 0;
}

static int
wbuf_push(fl_udp *self, PyObject *bytes, PyObject *addr,
          const struct sockaddr_storage *sa, socklen_t salen)
{
    fl_dgram *d;

    if (wbuf_reserve(self) < 0) {
        return -1;
    }
    d = &self->wbuf[(self->whead + self->wlen) % self->wcap];
    d->data = Py_NewRef(bytes);
    d->addr = Py_XNewRef(addr);
    d->salen = salen;
    if (salen) {
        memcpy(&d->sa, sa, (size_t)salen);
    }
    self->wlen++;
    self->wsize += PyBytes_GET_SIZE(bytes) + HEADER_SIZE;
    return 0;
}

/* Moves the oldest queued datagram (its references too) to *out. */
static void
wbuf_take(fl_udp *self, fl_dgram *out)
{
    fl_dgram *d = &self->wbuf[self->whead];

    *out = *d;
    self->wsize -= PyBytes_GET_SIZE(out->data) + HEADER_SIZE;
    d->data = d->addr = NULL;
    self->whead = (self->whead + 1) % self->wcap;
    self->wlen--;
}

/* Puts a taken datagram back at the front (its references are consumed,
 * also on failure). */
static int
wbuf_unget(fl_udp *self, fl_dgram *d)
{
    if (wbuf_reserve(self) < 0) {
        Py_DECREF(d->data);
        Py_XDECREF(d->addr);
        return -1;
    }
    self->whead = (self->whead + self->wcap - 1) % self->wcap;
    self->wbuf[self->whead] = *d;
    self->wlen++;
    self->wsize += PyBytes_GET_SIZE(d->data) + HEADER_SIZE;
    return 0;
}

/* Drops the oldest queued datagram. */
static void
wbuf_pop(fl_udp *self)
{
    fl_dgram d;

    wbuf_take(self, &d);
    Py_DECREF(d.data);
    Py_XDECREF(d.addr);
}

static void
wbuf_clear(fl_udp *self)
{
    while (self->wlen) {
        wbuf_pop(self);
    }
    self->wsize = 0;
}

/* Sends one datagram. Returns 0 (sent), 1 (would block) or -1 with an
 * exception set (an OSError for a failed send). `obj` is the Python data
 * (used only when the socket module must convert the address). */
static int
send_one(fl_udp *self, PyObject *obj, const void *buf, size_t len,
         PyObject *addr, const struct sockaddr_storage *sa, socklen_t salen)
{
    ssize_t n;

    fl_loop_touch(self->base.loop);
    if (!self->connected && salen == 0) {
        /* The socket module converts (and validates) the address. */
        PyObject *r = PyObject_CallMethod(self->sock, "sendto", "OO", obj,
                                          addr ? addr : Py_None);
        if (r != NULL) {
            Py_DECREF(r);
            return 0;
        }
        if (PyErr_ExceptionMatches(PyExc_BlockingIOError) ||
            PyErr_ExceptionMatches(PyExc_InterruptedError))
        {
            PyErr_Clear();
            return 1;
        }
        return -1;
    }
    do {
        if (self->connected) {
            n = send(self->base.io.fd, buf, len, MSG_NOSIGNAL);
        }
        else {
            n = sendto(self->base.io.fd, buf, len, MSG_NOSIGNAL,
                       (const struct sockaddr *)sa, salen);
        }
    } while (n < 0 && errno == EINTR);
    if (n >= 0) {
        return 0;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return 1;
    }
    PyErr_SetFromErrno(PyExc_OSError);
    return -1;
}

/* pause_writing() is called from sendto() directly, outside the
 * transport's context; SystemExit/KeyboardInterrupt are unraisable. */
static void
maybe_pause_protocol(fl_udp *self)
{
    if (fl_tb_maybe_pause(B(self), self->wsize, NULL) < 0) {
        PyErr_WriteUnraisable((PyObject *)self);
    }
}

static void
maybe_resume_protocol(fl_udp *self)
{
    if (fl_tb_maybe_resume(B(self), self->wsize, self->base.context) < 0) {
        PyErr_WriteUnraisable((PyObject *)self);
    }
}

/* ------------------------------------------------------------------ */
/* Closing                                                             */

/* Closes the socket exactly once. */
static void
close_fd(fl_transport_base *b)
{
    fl_udp *self = (fl_udp *)b;
    PyObject *r;

    if (self->base.fd_closed) {
        return;
    }
    self->base.fd_closed = 1;
    fl_io_stop(self->base.loop, &self->base.io); /* detach */
    r = PyObject_CallMethod(self->sock, "close", NULL);
    if (r == NULL) {
        PyErr_WriteUnraisable((PyObject *)self);
    }
    Py_XDECREF(r);
    self->base.io.fd = -1;
}

/* asyncio's _force_close. */
static int
force_close(fl_transport_base *b, PyObject *exc)
{
    fl_udp *self = (fl_udp *)b;

    if (self->base.conn_lost) {
        return 0;
    }
    wbuf_clear(self);
    self->wtail = 0;
    return fl_tb_schedule_lost(b, exc);
}

static PyObject *
udp_call_connection_lost(fl_udp *self, PyObject *exc)
{
    PyObject *r;

    if (fl_tb_check_init(B(self)) < 0) {
        return NULL;
    }
    Py_INCREF(self);
    if (self->base.protocol_connected && self->base.protocol != NULL) {
        r = call_proto(self, "connection_lost", &exc, 1, 1);
    }
    else {
        r = Py_NewRef(Py_None);
    }
    wbuf_clear(self);
    self->wtail = 0;
    if (r == NULL) {
        PyObject *et, *ev, *etb;
        PyErr_Fetch(&et, &ev, &etb);
        close_fd(B(self));
        PyErr_Restore(et, ev, etb);
    }
    else {
        close_fd(B(self));
    }
    Py_CLEAR(self->base.protocol);
    Py_CLEAR(self->datagram_received);
    Py_DECREF(self);
    return r;
}

/* ------------------------------------------------------------------ */
/* Reading                                                             */

static PyObject *
get_max_size(fl_udp *self, void *c)
{
    return PyLong_FromLong(MAX_SIZE);
}

/* Delivers one datagram. Returns 0 (keep reading), 1 (stop: error or
 * nothing left) or -1 (SystemExit/KeyboardInterrupt set). */
static int
deliver(fl_udp *self, PyObject *data, PyObject *addr)
{
    PyObject *args[2] = {data, addr}, *r;

    if (self->datagram_received != NULL) {
        /* (the call holds the cached method: set_protocol() may drop it) */
        r = fl_tb_call_in_ctx(B(self), self->datagram_received, args, 2);
    }
    else {
        r = call_proto(self, "datagram_received", args, 2, 1);
    }
    if (r == NULL) {
        return callback_error(self, "_read_ready") < 0 ? -1 : 1;
    }
    Py_DECREF(r);
    return 0;
}

static int
on_read_error(fl_udp *self, PyObject *exc)
{
    PyObject *r = call_proto(self, "error_received", &exc, 1, 1);

    if (r == NULL) {
        return callback_error(self, "_read_ready") < 0 ? -1 : 1;
    }
    Py_DECREF(r);
    return 1;
}

/* Reads one datagram through the socket module (families C does not
 * convert). */
static int
read_one_py(fl_udp *self)
{
    PyObject *r, *exc;
    int rc;

    r = PyObject_CallMethod(self->sock, "recvfrom", "i", MAX_SIZE);
    if (r == NULL) {
        if (PyErr_ExceptionMatches(PyExc_BlockingIOError) ||
            PyErr_ExceptionMatches(PyExc_InterruptedError))
        {
            PyErr_Clear();
            return 1;
        }
        if (PyErr_ExceptionMatches(PyExc_OSError)) {
            exc = fl_tr_fetch_exc();
            rc = on_read_error(self, exc);
            Py_DECREF(exc);
            return rc;
        }
        return fatal_error(self, "Fatal read error on datagram transport") <
                       0
                   ? -1
                   : 1;
    }
    if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 2) {
        Py_DECREF(r);
        PyErr_SetString(PyExc_TypeError, "recvfrom() must return a 2-tuple");
        return fatal_error(self, "Fatal read error on datagram transport") <
                       0
                   ? -1
                   : 1;
    }
    rc = deliver(self, PyTuple_GET_ITEM(r, 0), PyTuple_GET_ITEM(r, 1));
    Py_DECREF(r);
    return rc;
}

/* The sockaddr fl_py_to_sockaddr(self->family, addr) would give, when it
 * is the address of the last datagram read. */
static int
cached_sockaddr(fl_udp *self, PyObject *addr, struct sockaddr_storage *sa,
                socklen_t *salen)
{
    if (addr != self->last_addr || !self->last_sendable) {
        return 0;
    }
    memcpy(sa, &self->last_ss, self->last_sslen);
    *salen = self->last_sslen;
    return 1;
}

/* Whether converting fl_sockaddr_to_py(ss) back with fl_py_to_sockaddr
 * gives ss again, byte for byte (INET: always, the kernel zeroes sin_zero;
 * INET6: unless the flow info is too large for the socket module). */
static int
round_trips(const struct sockaddr_storage *ss, socklen_t len)
{
    if (ss->ss_family == AF_INET && len == sizeof(struct sockaddr_in)) {
        static const char zero[sizeof(((struct sockaddr_in *)0)->sin_zero)];
        return memcmp(((const struct sockaddr_in *)ss)->sin_zero, zero,
                      sizeof(zero)) == 0;
    }
    if (ss->ss_family == AF_INET6 && len == sizeof(struct sockaddr_in6)) {
        return ntohl(((const struct sockaddr_in6 *)ss)->sin6_flowinfo) <=
               0xfffff;
    }
    return 0;
}

/* The Python address of a sender (a new reference), converted once per
 * run of datagrams from the same sender. */
static PyObject *
sender_address(fl_udp *self, const struct sockaddr_storage *ss,
               socklen_t len)
{
    PyObject *addr;

    if (self->last_addr != NULL && len == self->last_sslen &&
        memcmp(ss, &self->last_ss, len) == 0)
    {
        return Py_NewRef(self->last_addr);
    }
    addr = fl_sockaddr_to_py(ss, len);
    if (addr == NULL) {
        return NULL;
    }
    Py_XSETREF(self->last_addr, Py_NewRef(addr));
    if (len > sizeof(self->last_ss)) {
        len = sizeof(self->last_ss);
    }
    memcpy(&self->last_ss, ss, len);
    self->last_sslen = len;
    self->last_sendable = (char)(self->family == ss->ss_family &&
                                 round_trips(ss, len));
    return addr;
}

static int
read_one(fl_udp *self)
{
    fl_loop *loop = self->base.loop;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    PyObject *data, *addr, *exc;
    ssize_t n;
    int rc;

    if (!self->c_addr) {
        return read_one_py(self);
    }
    /* The loop's shared read buffer (stream.c allocates the same size). */
    if (loop->rbuf == NULL) {
        loop->rbuf = aligned_alloc(4096, MAX_SIZE);
        if (loop->rbuf == NULL) {
            PyErr_NoMemory();
            return fatal_error(self,
                               "Fatal read error on datagram transport") < 0
                       ? -1
                       : 1;
        }
    }
    do {
        n = recvfrom(self->base.io.fd, loop->rbuf, MAX_SIZE, 0,
                     (struct sockaddr *)&ss, &sslen);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return 1;
        }
        exc = fl_tr_oserror(errno);
        if (exc == NULL) {
            return -1;
        }
        rc = on_read_error(self, exc);
        Py_DECREF(exc);
        return rc;
    }
    data = PyBytes_FromStringAndSize(loop->rbuf, n);
    addr = data ? sender_address(self, &ss, sslen) : NULL;
    if (addr == NULL) {
        Py_XDECREF(data);
        return fatal_error(self, "Fatal read error on datagram transport") <
                       0
                   ? -1
                   : 1;
    }
    rc = deliver(self, data, addr);
    Py_DECREF(data);
    Py_DECREF(addr);
    return rc;
}

static int
can_read(fl_udp *self)
{
    return !self->base.conn_lost && !self->base.closing &&
           !self->base.paused && !self->base.fd_closed &&
           (self->base.io.wanted & FL_READ);
}

static int
read_ready(fl_udp *self, int batch)
{
    int i, rc;

    for (i = 0; i < batch && can_read(self); i++) {
        rc = read_one(self);
        if (rc != 0) {
            return rc < 0 ? -1 : 0;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Writing (the writable event)                                        */

static int
sendto_ready(fl_udp *self)
{
    PyObject *exc, *r;

    self->wtail = 0;
    while (self->wlen && !self->base.fd_closed) {
        fl_dgram d;
        int rc;

        /* Off the queue first, as asyncio: Python code the send may run (a
         * socket wrapper's sendto(), a port's __index__) can change it. */
        wbuf_take(self, &d);
        rc = send_one(self, d.data, PyBytes_AS_STRING(d.data),
                      (size_t)PyBytes_GET_SIZE(d.data), d.addr, &d.sa,
                      d.salen);
        if (rc == 1) {
            if (wbuf_unget(self, &d) < 0) {
                return fatal_error(self,
                                   "Fatal write error on datagram transport");
            }
            break; /* try again later */
        }
        Py_DECREF(d.data);
        Py_XDECREF(d.addr);
        if (rc == 0) {
            continue;
        }
        if (!PyErr_ExceptionMatches(PyExc_OSError)) {
            return fatal_error(self, "Fatal write error on datagram transport");
        }
        /* asyncio drops the datagram and leaves the writer on. */
        self->wtail = 1;
        exc = fl_tr_fetch_exc();
        if (exc == NULL) {
            return -1;
        }
        r = call_proto(self, "error_received", &exc, 1, 1);
        Py_DECREF(exc);
        if (r == NULL) {
            return callback_error(self, "_sendto_ready");
        }
        Py_DECREF(r);
        return 0;
    }
    maybe_resume_protocol(self); /* may queue more */
    if (self->wlen == 0 && !self->base.fd_closed) {
        update_io_noerr(self);
        if (self->base.closing && !self->base.conn_lost) {
            self->base.conn_lost++;
            r = udp_call_connection_lost(self, Py_None);
            if (r == NULL) {
                return callback_error(self, "_sendto_ready");
            }
            Py_DECREF(r);
        }
    }
    return 0;
}

static int
udp_on_io(fl_io *io, unsigned events)
{
    fl_udp *self = (fl_udp *)io->owner;
    int rc = 0;

    if ((events & FL_WRITE) && (self->base.io.wanted & FL_WRITE)) {
        rc = sendto_ready(self);
    }
    if (rc == 0 && (events & FL_READ)) {
        rc = read_ready(self, READ_BATCH);
    }
    if (rc == 0 && !self->base.fd_closed &&
        self->base.io.wanted != wanted_mask(self))
    {
        update_io_noerr(self);
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* Python API                                                          */

/* sendto(data, addr=None) */
static PyObject *
udp_sendto(fl_udp *self, PyObject *const *args, Py_ssize_t nargs,
           PyObject *kwnames)
{
    PyObject *data = NULL, *addr = Py_None, *bytes;
    struct sockaddr_storage sa;
    socklen_t salen = 0;
    Py_buffer view;
    Py_ssize_t i, nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    int rc;

    if (nargs > 2 || nargs + nkw > 2) {
        PyErr_Format(PyExc_TypeError,
                     "sendto() takes from 1 to 2 arguments (%zd given)",
                     nargs + nkw);
        return NULL;
    }
    if (nargs >= 1) {
        data = args[0];
    }
    if (nargs == 2) {
        addr = args[1];
    }
    for (i = 0; i < nkw; i++) {
        PyObject *k = PyTuple_GET_ITEM(kwnames, i);
        PyObject *v = args[nargs + i];
        if (PyUnicode_Check(k) && PyUnicode_CompareWithASCIIString(k, "data")
                                      == 0 && data == NULL)
        {
            data = v;
        }
        else if (PyUnicode_Check(k) &&
                 PyUnicode_CompareWithASCIIString(k, "addr") == 0 &&
                 nargs < 2)
        {
            addr = v;
        }
        else {
            PyErr_Format(PyExc_TypeError,
                         "sendto() got an unexpected keyword argument %R", k);
            return NULL;
        }
    }
    if (data == NULL) {
        PyErr_SetString(PyExc_TypeError,
                        "sendto() missing required argument 'data'");
        return NULL;
    }
    if (fl_tb_check_init(B(self)) < 0) {
        return NULL;
    }
    if (fl_tr_check_bytes_like(data) < 0) {
        return NULL;
    }
    if (self->address != NULL) {
        int t = PyObject_IsTrue(self->address);
        if (t < 0) {
            return NULL;
        }
        if (t) {
            if (addr != Py_None && addr != self->address) {
                int eq = PyObject_RichCompareBool(Py_None, addr, Py_EQ);
                if (eq == 0) {
                    eq = PyObject_RichCompareBool(self->address, addr, Py_EQ);
                }
                if (eq < 0) {
                    return NULL;
                }
                if (!eq) {
                    PyErr_Format(PyExc_ValueError,
                                 "Invalid address: must be None or %S",
                                 self->address);
                    return NULL;
                }
            }
            addr = self->address;
            if (self->base.conn_lost) {
                goto lost;
            }
        }
    }
    if (self->base.fd_closed) {
        goto lost;
    }
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
#if !FL_PY313
    if (view.len == 0) {
        /* asyncio < 3.13 sends no empty datagrams */
        PyBuffer_Release(&view);
        Py_RETURN_NONE;
    }
#endif
    if (!self->connected && self->c_addr && addr != Py_None &&
        !cached_sockaddr(self, addr, &sa, &salen))
    {
        if (!fl_py_to_sockaddr(self->family, addr, &sa, &salen)) {
            salen = 0;
        }
    }
    if (self->wlen == 0) {
        /* Nothing queued: try to send right away. */
        rc = send_one(self, data, view.buf, (size_t)view.len, addr, &sa,
                      salen);
        if (rc == 0) {
            PyBuffer_Release(&view);
            Py_RETURN_NONE;
        }
        if (rc < 0) {
            PyObject *exc, *r;
            PyBuffer_Release(&view);
            if (!PyErr_ExceptionMatches(PyExc_OSError)) {
                if (fatal_error(self,
                                "Fatal write error on datagram transport") <
                    0)
                {
                    return NULL;
                }
                Py_RETURN_NONE;
            }
            exc = fl_tr_fetch_exc();
            if (exc == NULL) {
                return NULL;
            }
            /* Called directly, as asyncio does: errors propagate. */
            r = call_proto(self, "error_received", &exc, 1, 0);
            Py_DECREF(exc);
            if (r == NULL) {
                return NULL;
            }
            Py_DECREF(r);
            Py_RETURN_NONE;
        }
    }
    /* Queue it; bytes are immutable so a reference will do. */
    if (PyBytes_CheckExact(data)) {
        bytes = Py_NewRef(data);
    }
    else {
        bytes = PyBytes_FromStringAndSize(view.buf, view.len);
    }
    PyBuffer_Release(&view);
    if (bytes == NULL) {
        return NULL;
    }
    rc = wbuf_push(self, bytes, self->connected ? NULL : addr, &sa, salen);
    Py_DECREF(bytes);
    if (rc < 0 || update_io(B(self)) < 0) {
        return NULL;
    }
    maybe_pause_protocol(self);
    Py_RETURN_NONE;

lost:
    if (fl_tb_lost_write(B(self), "socket.send() raised exception.") < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
udp_close(fl_udp *self, PyObject *unused)
{
    if (fl_tb_check_init(B(self)) < 0) {
        return NULL;
    }
    if (!self->base.closing && self->wlen == 0) {
        self->wtail = 0;
    }
    if (fl_tb_close(B(self), self->wlen != 0) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
udp_fatal_error(fl_udp *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"exc", "message", NULL};
    PyObject *exc;
    const char *msg = "Fatal error on transport";

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|s:_fatal_error",
                                     kwlist, &exc, &msg))
    {
        return NULL;
    }
    if (fl_tb_check_init(B(self)) < 0) {
        return NULL;
    }
    fl_tb_report(B(self), "_fl_transport_error", exc, msg);
    if (force_close(B(self), exc) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* asyncio's _read_ready(): one datagram. */
static PyObject *
udp_read_ready(fl_udp *self, PyObject *unused)
{
    if (fl_tb_check_init(B(self)) < 0) {
        return NULL;
    }
    if (!self->base.conn_lost && !self->base.fd_closed && read_one(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* asyncio's _sendto_ready(). */
static PyObject *
udp_sendto_ready(fl_udp *self, PyObject *unused)
{
    if (fl_tb_check_init(B(self)) < 0) {
        return NULL;
    }
    if (!self->base.fd_closed && sendto_ready(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
udp_set_write_buffer_limits(fl_udp *self, PyObject *args, PyObject *kwargs)
{
    if (fl_tb_set_limits(B(self), args, kwargs) < 0) {
        return NULL;
    }
    maybe_pause_protocol(self);
    Py_RETURN_NONE;
}

static int
set_protocol(fl_transport_base *b, PyObject *protocol)
{
    fl_udp *self = (fl_udp *)b;
    PyObject *dr = PyObject_GetAttrString(protocol, "datagram_received");

    if (dr == NULL) {
        /* asyncio fails when a datagram arrives; so do we. */
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
            return -1;
        }
        PyErr_Clear();
    }
    Py_XSETREF(self->datagram_received, dr);
    fl_tb_set_protocol(B(self), protocol);
    return 0;
}

static PyObject *
udp_repr(fl_udp *self)
{
    return fl_tb_sock_repr(B(self), self->base.io.wanted & FL_WRITE,
                           self->wsize);
}

/* ------------------------------------------------------------------ */
/* Construction                                                        */

/* extra[key] = sock.<method>(), or None on OSError. */
static int
set_sock_extra(fl_udp *self, const char *key, const char *method)
{
    PyObject *v = PyObject_CallMethod(self->sock, method, NULL);
    int rc;

    if (v == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_OSError)) {
            return -1;
        }
        PyErr_Clear();
        v = Py_NewRef(Py_None);
    }
    rc = PyDict_SetItemString(self->base.extra, key, v);
    Py_DECREF(v);
    return rc;
}

static Py_ssize_t
ops_buffer_size(fl_transport_base *b)
{
    return ((fl_udp *)b)->wsize;
}

static const fl_transport_ops udp_ops = {
    .update_io = update_io,
    .force_close = force_close,
    .close_fd = close_fd,
    .buffer_size = ops_buffer_size,
    .set_protocol = set_protocol,
};

static int
udp_init(fl_udp *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"loop",   "sock",  "protocol", "address",
                             "waiter", "extra", NULL};
    PyObject *loop, *sock, *protocol, *address = Py_None, *waiter = Py_None;
    PyObject *extra = Py_None, *v;
    int fd, t;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs,
                                     "OOO|OOO:DatagramTransport", kwlist,
                                     &loop, &sock, &protocol, &address,
                                     &waiter, &extra))
    {
        return -1;
    }
    if (fl_tb_init_check(B(self), loop, extra) < 0 ||
        fl_tr_check_socklike(sock) < 0 ||
        fl_tr_sock_params(sock, &fd, &self->family, &self->socktype,
                          &self->proto) < 0)
    {
        return -1;
    }
    if (self->socktype == SOCK_STREAM) {
        PyErr_Format(PyExc_ValueError,
                     "A datagram socket was expected, got %R", sock);
        return -1;
    }
    if (fl_tr_set_nonblocking(sock) < 0) {
        return -1;
    }

    /* From here on the fields are ours; a failure leaves the socket open
     * (the caller still owns it) and the object uninitialised. */
    self->sock = Py_NewRef(sock);
    self->base.io.fd = fd;
    self->c_addr = (char)fl_sockaddr_family_supported(self->family);
    /* _SelectorTransport.__init__: extra, then socket/sockname/peername. */
    if (fl_tb_setup(B(self), (fl_loop *)loop, &udp_ops, udp_on_io, extra) <
        0)
    {
        return -1;
    }
    v = PyObject_CallOneArg(ST(self)->TransportSocket, sock);
    if (v == NULL) {
        return -1;
    }
    t = PyDict_SetItemString(self->base.extra, "socket", v);
    Py_DECREF(v);
    if (t < 0 || set_sock_extra(self, "sockname", "getsockname") < 0) {
        return -1;
    }
    t = PyDict_GetItemString(self->base.extra, "peername") != NULL;
    if (!t && set_sock_extra(self, "peername", "getpeername") < 0) {
        return -1;
    }
    v = PyDict_GetItemString(self->base.extra, "peername");
    t = v == NULL ? 0 : PyObject_IsTrue(v);
    if (t < 0) {
        return -1;
    }
    self->connected = (char)t;
    if (address != Py_None) {
        self->address = Py_NewRef(address);
    }
    if (set_protocol(B(self), protocol) < 0) {
        return -1;
    }
    self->base.initialised = 1;
    /* The fd is the transport's from now on (asyncio registers it in
     * loop._transports): attach without watching. */
    fl_io_pause(self->base.loop, &self->base.io);
    return fl_tb_schedule_start(B(self), protocol, "_fl_start_reading",
                                waiter);
}

/* ------------------------------------------------------------------ */
/* Type                                                                */

static int
udp_traverse(fl_udp *self, visitproc visit, void *arg)
{
    Py_ssize_t i;

    Py_VISIT(self->sock);
    Py_VISIT(self->address);
    Py_VISIT(self->datagram_received);
    Py_VISIT(self->last_addr);
    for (i = 0; i < self->wlen; i++) {
        fl_dgram *d = &self->wbuf[(self->whead + i) % self->wcap];
        Py_VISIT(d->data);
        Py_VISIT(d->addr);
    }
    return fl_tb_traverse(B(self), visit, arg);
}

static int
udp_clear(fl_udp *self)
{
    wbuf_clear(self);
    Py_CLEAR(self->address);
    Py_CLEAR(self->datagram_received);
    Py_CLEAR(self->last_addr);
    fl_tb_clear(B(self));
    /* sock and loop stay until dealloc: the socket must be closed exactly
     * once, and close_fd needs both. */
    return 0;
}

static void
udp_dealloc(fl_udp *self)
{
    if (fl_tb_dealloc_begin(B(self)) < 0) {
        return; /* resurrected */
    }
    udp_clear(self);
    Py_CLEAR(self->sock);
    PyMem_Free(self->wbuf);
    fl_tb_dealloc_end(B(self));
}

static PyObject *
get_sock_attr(fl_udp *self, void *c)
{
    if (self->base.fd_closed || self->sock == NULL) {
        Py_RETURN_NONE; /* asyncio sets _sock to None once closed */
    }
    return Py_NewRef(self->sock);
}

static PyObject *
get_address(fl_udp *self, void *c)
{
    return Py_NewRef(self->address ? self->address : Py_None);
}

static PyObject *
get_buffer_size(fl_udp *self, void *c)
{
    return PyLong_FromSsize_t(self->wsize);
}

static PyGetSetDef udp_getset[] = {
    FL_GETTER("_sock", get_sock_attr),
    FL_GETTER("_sock_fd", fl_tb_get_sock_fd),
    FL_GETTER("_address", get_address),
    FL_GETTER("_conn_lost", fl_tb_get_conn_lost),
    FL_GETTER("_closing", fl_tb_get_closing),
    FL_GETTER("_loop", fl_tb_get_loop),
    FL_GETTER("_protocol", fl_tb_get_protocol_attr),
    FL_GETTER("_paused", fl_tb_get_paused),
    FL_GETTER("_protocol_paused", fl_tb_get_protocol_paused),
    FL_GETTER("_buffer_size", get_buffer_size),
    FL_GETTER("max_size", get_max_size),
    {NULL},
};

static PyMethodDef udp_methods[] = {
    {"sendto", (PyCFunction)(void (*)(void))udp_sendto,
     METH_FASTCALL | METH_KEYWORDS, "sendto($self, data, addr=None)\n--\n\n"},
    FL_NOARGS("close", udp_close),
    FL_NOARGS("abort", fl_tb_abort),
    FL_NOARGS("is_closing", fl_tb_is_closing),
    FL_NOARGS("is_reading", fl_tb_is_reading),
    FL_NOARGS("pause_reading", fl_tb_pause_reading_meth),
    FL_NOARGS("resume_reading", fl_tb_resume_reading_meth),
    {"set_write_buffer_limits",
     (PyCFunction)(void (*)(void))udp_set_write_buffer_limits,
     METH_VARARGS | METH_KEYWORDS, "set_write_buffer_limits($self, high=None, low=None)\n--\n\n"},
    FL_NOARGS("get_write_buffer_limits", fl_tb_get_write_buffer_limits),
    FL_NOARGS("get_write_buffer_size", fl_tb_get_write_buffer_size),
    {"set_protocol", (PyCFunction)fl_tb_set_protocol_meth, METH_O,
     "set_protocol($self, protocol, /)\n--\n\n"},
    FL_NOARGS("get_protocol", fl_tb_get_protocol),
    {"_call_connection_lost", (PyCFunction)udp_call_connection_lost, METH_O,
     "_call_connection_lost($self, exc, /)\n--\n\n"},
    {"_force_close", (PyCFunction)fl_tb_force_close_meth, METH_O, "_force_close($self, exc, /)\n--\n\n"},
    {"_fatal_error", (PyCFunction)(void (*)(void))udp_fatal_error,
     METH_VARARGS | METH_KEYWORDS, "_fatal_error($self, exc, message='Fatal error on transport')\n--\n\n"},
    FL_NOARGS("_fl_start_reading", fl_tb_start_reading),
    FL_NOARGS("_read_ready", udp_read_ready),
    FL_NOARGS("_sendto_ready", udp_sendto_ready),
    {NULL, NULL, 0, NULL},
};

static PyType_Slot udp_slots[] = {
    {Py_tp_init, udp_init},
    {Py_tp_dealloc, udp_dealloc},
    {Py_tp_finalize, fl_tb_finalize},
    {Py_tp_traverse, udp_traverse},
    {Py_tp_clear, udp_clear},
    {Py_tp_methods, udp_methods},
    {Py_tp_getset, udp_getset},
    {Py_tp_members, fl_tb_members},
    {Py_tp_repr, udp_repr},
    {Py_tp_doc, "A datagram (UDP or Unix) transport of a fastloop Loop."},
    {0, NULL},
};

static PyType_Spec udp_spec = {
    .name = "fastloop._core.DatagramTransport",
    .basicsize = sizeof(fl_udp),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = udp_slots,
};

int
fl_udp_init_type(PyObject *mod, fl_state *st)
{
    PyObject *asyncio, *dgram, *bases;
    PyTypeObject *tp;

    asyncio = PyImport_ImportModule("asyncio");
    if (asyncio == NULL) {
        return -1;
    }
    dgram = PyObject_GetAttrString(asyncio, "DatagramTransport");
    Py_DECREF(asyncio);
    if (dgram == NULL) {
        return -1;
    }
    /* Like asyncio's _SelectorDatagramTransport, also an asyncio.Transport
     * (whose write()/pause_reading()... raise NotImplementedError or are
     * overridden here). */
    bases = PyTuple_Pack(2, dgram, st->aio_Transport);
    Py_DECREF(dgram);
    if (bases == NULL) {
        return -1;
    }
    tp = fl_tb_add_type(mod, &udp_spec, bases, "DatagramTransport",
                        "asyncio.DatagramTransport");
    Py_DECREF(bases);
    if (tp == NULL) {
        return -1;
    }
    Py_DECREF(tp);
    return 0;
}
