/* Stream transport (TCP and Unix sockets): shared between stream.c and
 * server.c. */
#ifndef FASTLOOP_STREAM_H
#define FASTLOOP_STREAM_H

#include "transport.h"
#include "wbuf.h"

typedef struct {
    fl_transport_base base;
    PyObject *sock; /* socket.socket, or NULL until needed */
    PyObject *server;
    PyObject *data_received; /* cached bound methods of the protocol */
    PyObject *get_buffer;
    PyObject *buffer_updated;
    PyObject *empty_waiter;

    fl_wbuf wbuf; /* pending chunks */

    int family, socktype, proto;
    char eof;         /* write_eof() called */
    char buffered;    /* protocol is a BufferedProtocol */
    char fd_released; /* lent out by _fl_release_fd() */
    char read_eof;    /* eof_received() kept the transport open */
    char streams;     /* an adopted asyncio.StreamReaderProtocol (streams.h) */
    char wprobe;      /* write() calls left to look for the caller's
                         StreamWriter (fl_streams_adopt_caller) */
} fl_stream;

int fl_stream_init_type(PyObject *mod, fl_state *st);
/* Creates a transport for an accepted connection. Steals nothing; on
 * failure returns NULL and the caller still owns fd. */
PyObject *fl_stream_accepted(fl_loop *loop, int fd, int family, int socktype,
                             int proto, PyObject *protocol, PyObject *server,
                             PyObject *peername);

/* transport.write(data) of a StreamTransport. */
PyObject *fl_stream_write(PyObject *self, PyObject *data);

#endif
