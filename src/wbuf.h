/* Write buffer shared by the byte-stream transports (stream.c, pipe.c): a
 * ring of immutable bytes chunks, drained with one vectored write. */
#ifndef FASTLOOP_WBUF_H
#define FASTLOOP_WBUF_H

#include "fastloop.h"

#include <sys/types.h>

typedef struct {
    PyObject *obj;  /* bytes: immutable, so a reference is enough */
    Py_ssize_t off; /* bytes of obj already sent */
} fl_wchunk;

typedef struct {
    fl_wchunk *items; /* ring of pending chunks */
    Py_ssize_t head, len, cap;
    Py_ssize_t size; /* pending bytes */
} fl_wbuf;

/* Queues bytes[off:] (increfs bytes). 0, or -1 with MemoryError. */
int fl_wbuf_push(fl_wbuf *b, PyObject *bytes, Py_ssize_t off);
/* The end of write(): queues what is left of data (whose buffer is view)
 * after `sent` bytes, and releases view unless its obj is NULL. */
int fl_wbuf_push_rest(fl_wbuf *b, PyObject *data, Py_buffer *view,
                      Py_ssize_t sent);
/* Drops n sent bytes from the front. */
void fl_wbuf_consume(fl_wbuf *b, Py_ssize_t n);
/* Drops everything queued (keeps the ring's memory). */
void fl_wbuf_clear(fl_wbuf *b);
/* fl_wbuf_clear and frees the ring. */
void fl_wbuf_free(fl_wbuf *b);
int fl_wbuf_traverse(fl_wbuf *b, visitproc visit, void *arg);
/* One vectored write of the pending chunks (EINTR retried): send/sendmsg
 * with MSG_NOSIGNAL on a socket, write/writev otherwise. Returns the bytes
 * written or -errno; does not consume them. */
ssize_t fl_wbuf_write(fl_wbuf *b, int fd, int is_socket);

#endif
