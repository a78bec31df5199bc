/* Stream transport (TCP and Unix sockets): shared between stream.c and
 * server.c. */
#ifndef FASTLOOP_STREAM_H
#define FASTLOOP_STREAM_H

#include "fastloop.h"
#include "wbuf.h"

typedef struct {
    PyObject_HEAD
    PyObject *extra; /* asyncio.BaseTransport's `_extra` slot (a dict) */
    fl_io io;        /* io.owner == self */
    fl_loop *loop;
    PyObject *sock;     /* socket.socket, or NULL until needed */
    PyObject *protocol;
    PyObject *server;
    PyObject *context; /* protocol callbacks run in it */
    PyObject *data_received; /* cached bound methods of the protocol */
    PyObject *get_buffer;
    PyObject *buffer_updated;
    PyObject *empty_waiter;
    PyObject *weakreflist;
    PyObject *dict;

    fl_wbuf wbuf; /* pending chunks */
    Py_ssize_t high, low;

    int family, socktype, proto;
    int conn_lost;
    char initialised;
    char closing;
    char eof;        /* write_eof() called */
    char paused;     /* pause_reading() */
    char reading;    /* reading has been started */
    char protocol_paused;
    char protocol_connected;
    char buffered;   /* protocol is a BufferedProtocol */
    char fd_closed;
    char fd_released; /* lent out by _fl_release_fd() */
    char read_eof;    /* eof_received() kept the transport open */
} fl_stream;

int fl_stream_init_type(PyObject *mod, fl_state *st);
/* Creates a transport for an accepted connection. Steals nothing; on
 * failure returns NULL and the caller still owns fd. */
PyObject *fl_stream_accepted(fl_loop *loop, int fd, int family, int socktype,
                             int proto, PyObject *protocol, PyObject *server,
                             PyObject *peername);

#endif
