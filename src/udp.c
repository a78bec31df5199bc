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
#define HIGH_WATER (64 * 1024)
#define READ_BATCH 16
#define LOG_THRESHOLD_FOR_CONNLOST_WRITES 5
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
    PyObject_HEAD
    PyObject *extra; /* asyncio.BaseTransport's `_extra` slot (a dict) */
    fl_io io;        /* io.owner == self */
    fl_loop *loop;
    PyObject *sock; /* socket.socket */
    PyObject *protocol;
    PyObject *context;           /* protocol callbacks run in it */
    PyObject *address;           /* fixed remote address, or NULL */
    PyObject *datagram_received; /* cached bound method, or NULL */
    /* The sender of the last datagram read, as the kernel gave it and as
     * given to datagram_received(): a peer sending many datagrams costs one
     * conversion, and sendto(data, addr) back to it none. */
    PyObject *last_addr; /* NULL: nothing cached */
    struct sockaddr_storage last_ss;
    socklen_t last_sslen;
    char last_sendable; /* last_ss is what fl_py_to_sockaddr(last_addr) gives */
    PyObject *weakreflist;
    PyObject *dict;

    fl_dgram *wbuf; /* ring buffer of queued datagrams */
    Py_ssize_t whead, wlen, wcap;
    Py_ssize_t wsize; /* get_write_buffer_size() */
    Py_ssize_t high, low;

    int family, socktype, proto;
    int conn_lost;
    char initialised;
    char closing;
    char paused;  /* pause_reading() */
    char reading; /* reading has been started */
    char protocol_paused;
    char protocol_connected;
    char connected; /* extra['peername'] was true: send(), not sendto() */
    char c_addr;    /* family whose addresses C converts */
    char wtail;     /* a send error left the writer on (asyncio does) */
    char fd_closed;
} fl_udp;

#define ST(self) ((self)->loop->state)

static int udp_on_io(fl_io *io, unsigned events);
static int force_close(fl_udp *self, PyObject *exc);
static PyObject *udp_call_connection_lost(fl_udp *self, PyObject *exc);

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static int
check_init(fl_udp *self)
{
    return fl_tr_check_init(self->initialised);
}

static PyObject *
call_in_ctx(fl_udp *self, PyObject *fn, PyObject *const *args,
            Py_ssize_t nargs)
{
    return fl_tr_call_in_ctx(self->context, fn, args, nargs);
}

static PyObject *
call_proto(fl_udp *self, const char *name, PyObject *const *args,
           Py_ssize_t nargs, int in_ctx)
{
    return fl_tr_call_method(in_ctx ? self->context : NULL, self->protocol,
                             name, args, nargs);
}



static void
report(fl_udp *self, const char *helper, PyObject *exc, const char *msg)
{
    fl_tr_report(self->loop, (PyObject *)self, helper, exc, msg);
}

static void
force_close_obj(PyObject *self, PyObject *exc)
{
    if (force_close((fl_udp *)self, exc) < 0) {
        PyErr_WriteUnraisable(self);
    }
}

static int
fatal_error(fl_udp *self, const char *msg)
{
    return fl_tr_fatal_error(self->loop, (PyObject *)self, msg,
                             force_close_obj);
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
        h = fl_handle_new(ST(self), self->loop, fn, NULL, 0, self->context);
        Py_DECREF(fn);
    }
    if (h != NULL) {
        r = PyObject_CallMethod((PyObject *)self->loop, "_fl_callback_error",
                                "OO", h, exc);
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

static int
call_soon_method(fl_udp *self, const char *name, PyObject *arg)
{
    return fl_tr_call_soon(self->loop, (PyObject *)self, name, arg,
                           self->context);
}

static PyObject *
oserror_from_errno(int err)
{
    return fl_tr_oserror(err);
}

/* ------------------------------------------------------------------ */
/* Watcher                                                             */

static unsigned
wanted_mask(fl_udp *self)
{
    unsigned m = 0;

    if (self->fd_closed || self->loop->closed) {
        return 0;
    }
    if (self->reading && !self->paused && !self->closing) {
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
update_io(fl_udp *self)
{
    unsigned m = wanted_mask(self);

    if (m == self->io.wanted) {
        return 0;
    }
    if (m == 0) {
        /* Stay attached: the fd remains the transport's (add_reader() on
         * it raises, as asyncio's _ensure_fd_no_transport). */
        fl_io_pause(self->loop, &self->io);
        return 0;
    }
    return fl_io_start(self->loop, &self->io, m);
}

static void
update_io_noerr(fl_udp *self)
{
    if (update_io(self) < 0) {
        PyErr_WriteUnraisable((PyObject *)self);
    }
}

/* ------------------------------------------------------------------ */
/* Write queue                                                         */

static int
wbuf_push(fl_udp *self, PyObject *bytes, PyObject *addr,
          const struct sockaddr_storage *sa, socklen_t salen)
{
    fl_dgram *d;

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

/* Drops the oldest queued datagram. */
static void
wbuf_pop(fl_udp *self)
{
    fl_dgram *d = &self->wbuf[self->whead];
    PyObject *data = d->data, *addr = d->addr;

    self->wsize -= PyBytes_GET_SIZE(data) + HEADER_SIZE;
    d->data = d->addr = NULL;
    self->whead = (self->whead + 1) % self->wcap;
    self->wlen--;
    Py_DECREF(data);
    Py_XDECREF(addr);
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
            n = send(self->io.fd, buf, len, MSG_NOSIGNAL);
        }
        else {
            n = sendto(self->io.fd, buf, len, MSG_NOSIGNAL,
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

static void
maybe_pause_protocol(fl_udp *self)
{
    PyObject *r, *exc;

    if (self->wsize <= self->high || self->protocol_paused) {
        return;
    }
    self->protocol_paused = 1;
    r = call_proto(self, "pause_writing", NULL, 0, 0);
    if (r != NULL) {
        Py_DECREF(r);
        return;
    }
    if (fl_tr_is_fatal_exc()) {
        PyErr_WriteUnraisable((PyObject *)self);
        return;
    }
    exc = fl_tr_fetch_exc();
    report(self, "_fl_protocol_error", exc, "protocol.pause_writing() failed");
    Py_XDECREF(exc);
}

static void
maybe_resume_protocol(fl_udp *self)
{
    PyObject *r, *exc;

    if (!self->protocol_paused || self->wsize > self->low) {
        return;
    }
    self->protocol_paused = 0;
    r = call_proto(self, "resume_writing", NULL, 0, 1);
    if (r != NULL) {
        Py_DECREF(r);
        return;
    }
    if (fl_tr_is_fatal_exc()) {
        PyErr_WriteUnraisable((PyObject *)self);
        return;
    }
    exc = fl_tr_fetch_exc();
    report(self, "_fl_protocol_error", exc,
           "protocol.resume_writing() failed");
    Py_XDECREF(exc);
}

/* ------------------------------------------------------------------ */
/* Closing                                                             */

/* Closes the socket exactly once. */
static void
close_fd(fl_udp *self)
{
    PyObject *r;

    if (self->fd_closed) {
        return;
    }
    self->fd_closed = 1;
    fl_io_stop(self->loop, &self->io); /* detach */
    r = PyObject_CallMethod(self->sock, "close", NULL);
    if (r == NULL) {
        PyErr_WriteUnraisable((PyObject *)self);
    }
    Py_XDECREF(r);
    self->io.fd = -1;
}

/* asyncio's _force_close. */
static int
force_close(fl_udp *self, PyObject *exc)
{
    int rc = 0;

    if (self->conn_lost) {
        return 0;
    }
    wbuf_clear(self);
    self->wtail = 0;
    self->closing = 1;
    self->conn_lost++;
    Py_INCREF(self);
    update_io_noerr(self);
    /* Fails (RuntimeError) only on a closed loop, like call_soon. */
    rc = call_soon_method(self, "_call_connection_lost", exc ? exc : Py_None);
    Py_DECREF(self);
    return rc;
}

static PyObject *
udp_call_connection_lost(fl_udp *self, PyObject *exc)
{
    PyObject *r;

    if (check_init(self) < 0) {
        return NULL;
    }
    Py_INCREF(self);
    if (self->protocol_connected && self->protocol != NULL) {
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
        close_fd(self);
        PyErr_Restore(et, ev, etb);
    }
    else {
        close_fd(self);
    }
    Py_CLEAR(self->protocol);
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
        r = call_in_ctx(self, self->datagram_received, args, 2);
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
    fl_loop *loop = self->loop;
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
        n = recvfrom(self->io.fd, loop->rbuf, MAX_SIZE, 0,
                     (struct sockaddr *)&ss, &sslen);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return 1;
        }
        exc = oserror_from_errno(errno);
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
    return !self->conn_lost && !self->closing && !self->paused &&
           !self->fd_closed && (self->io.wanted & FL_READ);
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
    while (self->wlen && !self->fd_closed) {
        fl_dgram *d = &self->wbuf[self->whead];
        int rc = send_one(self, d->data, PyBytes_AS_STRING(d->data),
                          (size_t)PyBytes_GET_SIZE(d->data), d->addr, &d->sa,
                          d->salen);
        if (rc == 1) {
            break; /* try again later */
        }
        wbuf_pop(self);
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
    if (self->wlen == 0 && !self->fd_closed) {
        update_io_noerr(self);
        if (self->closing && !self->conn_lost) {
            self->conn_lost++;
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

    if ((events & FL_WRITE) && (self->io.wanted & FL_WRITE)) {
        rc = sendto_ready(self);
    }
    if (rc == 0 && (events & FL_READ)) {
        rc = read_ready(self, READ_BATCH);
    }
    if (rc == 0 && !self->fd_closed && self->io.wanted != wanted_mask(self)) {
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
    if (check_init(self) < 0) {
        return NULL;
    }
    if (!PyBytes_Check(data) && !PyByteArray_Check(data) &&
        !PyMemoryView_Check(data))
    {
        PyErr_Format(PyExc_TypeError,
                     "data argument must be a bytes-like object, not '%.200s'",
                     Py_TYPE(data)->tp_name);
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
            if (self->conn_lost) {
                goto lost;
            }
        }
    }
    if (self->fd_closed) {
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
    if (rc < 0 || update_io(self) < 0) {
        return NULL;
    }
    maybe_pause_protocol(self);
    Py_RETURN_NONE;

lost:
    if (self->conn_lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES) {
        PyObject *r = PyObject_CallMethod((PyObject *)self->loop,
                                          "_fl_log_warning", "s",
                                          "socket.send() raised exception.");
        if (r == NULL) {
            return NULL;
        }
        Py_DECREF(r);
    }
    self->conn_lost++;
    Py_RETURN_NONE;
}

static PyObject *
udp_close(fl_udp *self, PyObject *unused)
{
    if (check_init(self) < 0) {
        return NULL;
    }
    if (self->closing) {
        Py_RETURN_NONE;
    }
    self->closing = 1;
    Py_INCREF(self);
    if (self->wlen == 0) {
        self->conn_lost++;
        self->wtail = 0;
        update_io_noerr(self);
        if (call_soon_method(self, "_call_connection_lost", Py_None) < 0) {
            Py_DECREF(self);
            return NULL;
        }
    }
    else {
        update_io_noerr(self);
    }
    Py_DECREF(self);
    Py_RETURN_NONE;
}

static PyObject *
udp_abort(fl_udp *self, PyObject *unused)
{
    if (check_init(self) < 0) {
        return NULL;
    }
    if (force_close(self, NULL) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
udp_force_close(fl_udp *self, PyObject *exc)
{
    if (check_init(self) < 0) {
        return NULL;
    }
    if (force_close(self, exc == Py_None ? NULL : exc) < 0) {
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
    if (check_init(self) < 0) {
        return NULL;
    }
    report(self, "_fl_transport_error", exc, msg);
    if (force_close(self, exc) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
udp_is_closing(fl_udp *self, PyObject *unused)
{
    return PyBool_FromLong(self->closing);
}

static PyObject *
udp_is_reading(fl_udp *self, PyObject *unused)
{
    return PyBool_FromLong(!self->paused && !self->closing);
}

static PyObject *
udp_pause_reading(fl_udp *self, PyObject *unused)
{
    if (check_init(self) < 0) {
        return NULL;
    }
    if (self->closing || self->paused) {
        Py_RETURN_NONE;
    }
    self->paused = 1;
    Py_INCREF(self);
    update_io_noerr(self);
    Py_DECREF(self);
    Py_RETURN_NONE;
}

static PyObject *
udp_resume_reading(fl_udp *self, PyObject *unused)
{
    if (check_init(self) < 0) {
        return NULL;
    }
    if (self->closing || !self->paused) {
        Py_RETURN_NONE;
    }
    self->paused = 0;
    if (update_io(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* Runs (scheduled after connection_made) to start the read watcher. */
static PyObject *
udp_start_reading(fl_udp *self, PyObject *unused)
{
    if (check_init(self) < 0) {
        return NULL;
    }
    self->reading = 1;
    if (update_io(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* asyncio's _read_ready(): one datagram. */
static PyObject *
udp_read_ready(fl_udp *self, PyObject *unused)
{
    if (check_init(self) < 0) {
        return NULL;
    }
    if (!self->conn_lost && !self->fd_closed && read_one(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* asyncio's _sendto_ready(). */
static PyObject *
udp_sendto_ready(fl_udp *self, PyObject *unused)
{
    if (check_init(self) < 0) {
        return NULL;
    }
    if (!self->fd_closed && sendto_ready(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static int
set_limits(fl_udp *self, PyObject *high_o, PyObject *low_o)
{
    Py_ssize_t high, low;

    if (high_o == Py_None) {
        if (low_o == Py_None) {
            high = HIGH_WATER;
        }
        else {
            low = PyLong_AsSsize_t(low_o);
            if (low == -1 && PyErr_Occurred()) {
                return -1;
            }
            if (low > PY_SSIZE_T_MAX / 4 || low < PY_SSIZE_T_MIN / 4) {
                PyErr_SetString(PyExc_OverflowError, "low is too large");
                return -1;
            }
            high = 4 * low;
        }
    }
    else {
        high = PyLong_AsSsize_t(high_o);
        if (high == -1 && PyErr_Occurred()) {
            return -1;
        }
    }
    if (low_o == Py_None) {
        low = high / 4;
    }
    else {
        low = PyLong_AsSsize_t(low_o);
        if (low == -1 && PyErr_Occurred()) {
            return -1;
        }
    }
    if (!(high >= low && low >= 0)) {
        PyErr_Format(PyExc_ValueError,
                     "high (%zd) must be >= low (%zd) must be >= 0", high,
                     low);
        return -1;
    }
    self->high = high;
    self->low = low;
    return 0;
}

static PyObject *
udp_set_write_buffer_limits(fl_udp *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"high", "low", NULL};
    PyObject *high = Py_None, *low = Py_None;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs,
                                     "|OO:set_write_buffer_limits", kwlist,
                                     &high, &low))
    {
        return NULL;
    }
    if (check_init(self) < 0 || set_limits(self, high, low) < 0) {
        return NULL;
    }
    maybe_pause_protocol(self);
    Py_RETURN_NONE;
}

static PyObject *
udp_get_write_buffer_limits(fl_udp *self, PyObject *unused)
{
    return Py_BuildValue("(nn)", self->low, self->high);
}

static PyObject *
udp_get_write_buffer_size(fl_udp *self, PyObject *unused)
{
    return PyLong_FromSsize_t(self->wsize);
}

static int
set_protocol(fl_udp *self, PyObject *protocol)
{
    PyObject *dr = PyObject_GetAttrString(protocol, "datagram_received");

    if (dr == NULL) {
        /* asyncio fails when a datagram arrives; so do we. */
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
            return -1;
        }
        PyErr_Clear();
    }
    Py_XSETREF(self->datagram_received, dr);
    Py_XSETREF(self->protocol, Py_NewRef(protocol));
    self->protocol_connected = 1;
    return 0;
}

static PyObject *
udp_set_protocol(fl_udp *self, PyObject *protocol)
{
    if (check_init(self) < 0 || set_protocol(self, protocol) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
udp_get_protocol(fl_udp *self, PyObject *unused)
{
    return Py_NewRef(self->protocol ? self->protocol : Py_None);
}

static PyObject *
udp_repr(fl_udp *self)
{
    const char *state = self->fd_closed ? " closed"
                        : self->closing ? " closing"
                                        : "";

    return PyUnicode_FromFormat(
        "<%s%s fd=%d read=%s write=<%s, bufsize=%zd>>",
        Py_TYPE(self)->tp_name, state, self->fd_closed ? -1 : self->io.fd,
        self->io.wanted & FL_READ ? "polling" : "idle",
        self->io.wanted & FL_WRITE ? "polling" : "idle", self->wsize);
}

/* ------------------------------------------------------------------ */
/* Construction                                                        */

static int
sock_int(PyObject *sock, const char *attr, int *out)
{
    PyObject *v = PyObject_GetAttrString(sock, attr);
    long l;

    if (v == NULL) {
        return -1;
    }
    l = PyLong_AsLong(v);
    Py_DECREF(v);
    if (l == -1 && PyErr_Occurred()) {
        return -1;
    }
    *out = (int)l;
    return 0;
}

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
    rc = PyDict_SetItemString(self->extra, key, v);
    Py_DECREF(v);
    return rc;
}

static int
schedule(fl_udp *self, PyObject *fn, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *h = fl_handle_new(ST(self), self->loop, fn, args, nargs,
                                self->context);
    int rc;

    if (h == NULL) {
        return -1;
    }
    rc = fl_ready_push(&self->loop->ready, h);
    Py_DECREF(h);
    return rc;
}

static int
udp_init(fl_udp *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"loop",   "sock",  "protocol", "address",
                             "waiter", "extra", NULL};
    PyObject *loop, *sock, *protocol, *address = Py_None, *waiter = Py_None;
    PyObject *extra = Py_None, *r, *v, *fn, *cargs[2];
    fl_state *st;
    int fd, t;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs,
                                     "OOO|OOO:DatagramTransport", kwlist,
                                     &loop, &sock, &protocol, &address,
                                     &waiter, &extra))
    {
        return -1;
    }
    if (self->initialised || self->loop != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "transport already initialised");
        return -1;
    }
    if (!fl_is_loop(loop)) {
        PyErr_SetString(PyExc_TypeError, "loop must be a fastloop Loop");
        return -1;
    }
    if (fl_loop_check_closed((fl_loop *)loop) < 0) {
        return -1;
    }
    st = ((fl_loop *)loop)->state;
    if (extra != Py_None && !PyDict_Check(extra)) {
        PyErr_SetString(PyExc_TypeError, "extra must be a dict or None");
        return -1;
    }
    if (fl_tr_check_socklike(sock) < 0) {
        return -1;
    }
    if ((fd = fl_fd_from_object(sock)) < 0) {
        return -1;
    }
    if (sock_int(sock, "family", &self->family) < 0 ||
        sock_int(sock, "type", &self->socktype) < 0 ||
        sock_int(sock, "proto", &self->proto) < 0)
    {
        return -1;
    }
    if (self->socktype == SOCK_STREAM) {
        PyErr_Format(PyExc_ValueError,
                     "A datagram socket was expected, got %R", sock);
        return -1;
    }
    r = PyObject_CallMethod(sock, "setblocking", "O", Py_False);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);

    /* From here on the fields are ours; a failure leaves the socket open
     * (the caller still owns it) and the object uninitialised. */
    self->loop = (fl_loop *)Py_NewRef(loop);
    self->sock = Py_NewRef(sock);
    self->io.fd = fd;
    self->io.owner = (PyObject *)self;
    self->io.cb = udp_on_io;
    self->io.wanted = 0;
    self->high = HIGH_WATER;
    self->low = HIGH_WATER / 4;
    self->c_addr = (char)fl_sockaddr_family_supported(self->family);
    self->context = PyContext_CopyCurrent();
    if (self->context == NULL) {
        return -1;
    }
    /* _SelectorTransport.__init__: extra, then socket/sockname/peername. */
    self->extra = PyDict_New();
    if (self->extra == NULL) {
        return -1;
    }
    if (extra != Py_None && PyDict_Update(self->extra, extra) < 0) {
        return -1;
    }
    v = PyObject_CallOneArg(st->TransportSocket, sock);
    if (v == NULL) {
        return -1;
    }
    t = PyDict_SetItemString(self->extra, "socket", v);
    Py_DECREF(v);
    if (t < 0 || set_sock_extra(self, "sockname", "getsockname") < 0) {
        return -1;
    }
    t = PyDict_GetItemString(self->extra, "peername") != NULL;
    if (!t && set_sock_extra(self, "peername", "getpeername") < 0) {
        return -1;
    }
    v = PyDict_GetItemString(self->extra, "peername");
    t = v == NULL ? 0 : PyObject_IsTrue(v);
    if (t < 0) {
        return -1;
    }
    self->connected = (char)t;
    if (address != Py_None) {
        self->address = Py_NewRef(address);
    }
    if (set_protocol(self, protocol) < 0) {
        return -1;
    }
    self->initialised = 1;
    /* The fd is the transport's from now on (asyncio registers it in
     * loop._transports): attach without watching. */
    fl_io_pause(self->loop, &self->io);

    /* connection_made, then reading, then the waiter: as asyncio. */
    fn = PyObject_GetAttrString(protocol, "connection_made");
    if (fn == NULL) {
        return -1;
    }
    cargs[0] = (PyObject *)self;
    t = schedule(self, fn, cargs, 1);
    Py_DECREF(fn);
    if (t < 0 || call_soon_method(self, "_fl_start_reading", NULL) < 0) {
        return -1;
    }
    if (waiter != Py_None) {
        cargs[0] = waiter;
        cargs[1] = Py_None;
        if (schedule(self, st->set_result_unless_cancelled, cargs, 2) < 0) {
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Type                                                                */

static int
udp_traverse(fl_udp *self, visitproc visit, void *arg)
{
    Py_ssize_t i;

    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->extra);
    Py_VISIT(self->loop);
    Py_VISIT(self->sock);
    Py_VISIT(self->protocol);
    Py_VISIT(self->context);
    Py_VISIT(self->address);
    Py_VISIT(self->datagram_received);
    Py_VISIT(self->last_addr);
    Py_VISIT(self->dict);
    for (i = 0; i < self->wlen; i++) {
        fl_dgram *d = &self->wbuf[(self->whead + i) % self->wcap];
        Py_VISIT(d->data);
        Py_VISIT(d->addr);
    }
    return 0;
}

static int
udp_clear(fl_udp *self)
{
    wbuf_clear(self);
    Py_CLEAR(self->extra);
    Py_CLEAR(self->protocol);
    Py_CLEAR(self->context);
    Py_CLEAR(self->address);
    Py_CLEAR(self->datagram_received);
    Py_CLEAR(self->last_addr);
    Py_CLEAR(self->dict);
    /* sock and loop stay until dealloc: the socket must be closed exactly
     * once, and close_fd needs both. */
    return 0;
}

static void
udp_finalize(fl_udp *self)
{
    PyObject *et, *ev, *etb;

    if (!self->initialised || self->fd_closed) {
        return;
    }
    PyErr_Fetch(&et, &ev, &etb);
    if (PyErr_ResourceWarning((PyObject *)self, 1, "unclosed transport %R",
                              (PyObject *)self) < 0)
    {
        PyErr_WriteUnraisable((PyObject *)self);
    }
    close_fd(self);
    PyErr_Restore(et, ev, etb);
}

static void
udp_dealloc(fl_udp *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    /* Weak references die first, as when the collector frees a cycle: the
     * ResourceWarning below holds the transport as its source. */
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    PyObject_GC_Track(self);
    if (PyObject_CallFinalizerFromDealloc((PyObject *)self) < 0) {
        return; /* resurrected */
    }
    PyObject_GC_UnTrack(self);
    if (self->initialised && !self->fd_closed) {
        close_fd(self);
    }
    else if (self->loop != NULL) {
        fl_io_stop(self->loop, &self->io); /* detach, if attached */
    }
    udp_clear(self);
    Py_CLEAR(self->sock);
    Py_CLEAR(self->loop);
    PyMem_Free(self->wbuf);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *
get_sock_attr(fl_udp *self, void *c)
{
    if (self->fd_closed || self->sock == NULL) {
        Py_RETURN_NONE; /* asyncio sets _sock to None once closed */
    }
    return Py_NewRef(self->sock);
}

static PyObject *
get_sock_fd(fl_udp *self, void *c)
{
    return PyLong_FromLong(self->fd_closed || !self->initialised
                               ? -1
                               : self->io.fd);
}

static PyObject *
get_address(fl_udp *self, void *c)
{
    return Py_NewRef(self->address ? self->address : Py_None);
}

static PyObject *
get_conn_lost(fl_udp *self, void *c)
{
    return PyLong_FromLong(self->conn_lost);
}

static PyObject *
get_closing(fl_udp *self, void *c)
{
    return PyBool_FromLong(self->closing);
}

static PyObject *
get_loop(fl_udp *self, void *c)
{
    if (self->fd_closed || self->loop == NULL) {
        Py_RETURN_NONE;
    }
    return Py_NewRef((PyObject *)self->loop);
}

static PyObject *
get_protocol_attr(fl_udp *self, void *c)
{
    return Py_NewRef(self->protocol ? self->protocol : Py_None);
}

static PyObject *
get_paused(fl_udp *self, void *c)
{
    return PyBool_FromLong(self->paused);
}

static PyObject *
get_protocol_paused(fl_udp *self, void *c)
{
    return PyBool_FromLong(self->protocol_paused);
}

static PyObject *
get_buffer_size(fl_udp *self, void *c)
{
    return PyLong_FromSsize_t(self->wsize);
}

static PyGetSetDef udp_getset[] = {
    {"_sock", (getter)get_sock_attr, NULL, NULL, NULL},
    {"_sock_fd", (getter)get_sock_fd, NULL, NULL, NULL},
    {"_address", (getter)get_address, NULL, NULL, NULL},
    {"_conn_lost", (getter)get_conn_lost, NULL, NULL, NULL},
    {"_closing", (getter)get_closing, NULL, NULL, NULL},
    {"_loop", (getter)get_loop, NULL, NULL, NULL},
    {"_protocol", (getter)get_protocol_attr, NULL, NULL, NULL},
    {"_paused", (getter)get_paused, NULL, NULL, NULL},
    {"_protocol_paused", (getter)get_protocol_paused, NULL, NULL, NULL},
    {"_buffer_size", (getter)get_buffer_size, NULL, NULL, NULL},
    {"max_size", (getter)get_max_size, NULL, NULL, NULL},
    {NULL},
};

/* The doc gives the text signature (inspect, mypy stubtest). */
#define NOARGS(name, fn) \
    {name, (PyCFunction)fn, METH_NOARGS, name "($self, /)\n--\n\n"}

static PyMethodDef udp_methods[] = {
    {"sendto", (PyCFunction)(void (*)(void))udp_sendto,
     METH_FASTCALL | METH_KEYWORDS, "sendto($self, data, addr=None)\n--\n\n"},
    NOARGS("close", udp_close),
    NOARGS("abort", udp_abort),
    NOARGS("is_closing", udp_is_closing),
    NOARGS("is_reading", udp_is_reading),
    NOARGS("pause_reading", udp_pause_reading),
    NOARGS("resume_reading", udp_resume_reading),
    {"set_write_buffer_limits",
     (PyCFunction)(void (*)(void))udp_set_write_buffer_limits,
     METH_VARARGS | METH_KEYWORDS, "set_write_buffer_limits($self, high=None, low=None)\n--\n\n"},
    NOARGS("get_write_buffer_limits", udp_get_write_buffer_limits),
    NOARGS("get_write_buffer_size", udp_get_write_buffer_size),
    {"set_protocol", (PyCFunction)udp_set_protocol, METH_O, "set_protocol($self, protocol, /)\n--\n\n"},
    NOARGS("get_protocol", udp_get_protocol),
    {"_call_connection_lost", (PyCFunction)udp_call_connection_lost, METH_O,
     "_call_connection_lost($self, exc, /)\n--\n\n"},
    {"_force_close", (PyCFunction)udp_force_close, METH_O, "_force_close($self, exc, /)\n--\n\n"},
    {"_fatal_error", (PyCFunction)(void (*)(void))udp_fatal_error,
     METH_VARARGS | METH_KEYWORDS, "_fatal_error($self, exc, message='Fatal error on transport')\n--\n\n"},
    NOARGS("_fl_start_reading", udp_start_reading),
    NOARGS("_read_ready", udp_read_ready),
    NOARGS("_sendto_ready", udp_sendto_ready),
    {NULL, NULL, 0, NULL},
};

static PyMemberDef udp_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(fl_udp, weakreflist),
     READONLY},
    {"__dictoffset__", T_PYSSIZET, offsetof(fl_udp, dict), READONLY},
    {NULL},
};

static PyType_Slot udp_slots[] = {
    {Py_tp_init, udp_init},
    {Py_tp_dealloc, udp_dealloc},
    {Py_tp_finalize, udp_finalize},
    {Py_tp_traverse, udp_traverse},
    {Py_tp_clear, udp_clear},
    {Py_tp_methods, udp_methods},
    {Py_tp_getset, udp_getset},
    {Py_tp_members, udp_members},
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

static Py_ssize_t
extra_offset(PyObject *cls)
{
    PyObject *d = PyObject_GetAttrString(cls, "_extra");
    Py_ssize_t off;

    if (d == NULL) {
        PyErr_Clear();
        return -1;
    }
    off = Py_IS_TYPE(d, &PyMemberDescr_Type)
              ? ((PyMemberDescrObject *)d)->d_member->offset
              : -1;
    Py_DECREF(d);
    return off;
}

int
fl_udp_init_type(PyObject *mod, fl_state *st)
{
    PyObject *asyncio, *dgram, *bases;
    PyTypeObject *tp;
    int rc;

    asyncio = PyImport_ImportModule("asyncio");
    if (asyncio == NULL) {
        return -1;
    }
    dgram = PyObject_GetAttrString(asyncio, "DatagramTransport");
    Py_DECREF(asyncio);
    if (dgram == NULL) {
        return -1;
    }
    /* Our struct starts with asyncio.BaseTransport's only slot, _extra;
     * DatagramTransport and Transport add none. */
    if (!PyType_Check(dgram) || !PyType_Check(st->aio_Transport) ||
        extra_offset(dgram) != offsetof(fl_udp, extra) ||
        extra_offset(st->aio_Transport) != offsetof(fl_udp, extra) ||
        ((PyTypeObject *)dgram)->tp_basicsize != offsetof(fl_udp, io) ||
        ((PyTypeObject *)st->aio_Transport)->tp_basicsize !=
            offsetof(fl_udp, io))
    {
        Py_DECREF(dgram);
        PyErr_SetString(PyExc_ImportError,
                        "fastloop: unexpected layout of "
                        "asyncio.DatagramTransport");
        return -1;
    }
    /* Like asyncio's _SelectorDatagramTransport, also an asyncio.Transport
     * (whose write()/pause_reading()... raise NotImplementedError or are
     * overridden here). A tuple: 3.9 requires one. */
    bases = PyTuple_Pack(2, dgram, st->aio_Transport);
    Py_DECREF(dgram);
    if (bases == NULL) {
        return -1;
    }
    tp = (PyTypeObject *)PyType_FromModuleAndSpec(mod, &udp_spec, bases);
    Py_DECREF(bases);
    if (tp == NULL) {
        return -1;
    }
    rc = PyModule_AddObject(mod, "DatagramTransport", (PyObject *)tp);
    if (rc < 0) {
        Py_DECREF(tp);
    }
    return rc;
}
