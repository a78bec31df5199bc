/* The byte-stream write buffer (see wbuf.h). */
#include "wbuf.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_IOV 1024

int
fl_wbuf_push(fl_wbuf *b, PyObject *bytes, Py_ssize_t off)
{
    fl_wchunk *c;

    if (b->len == b->cap) {
        Py_ssize_t ncap = b->cap ? b->cap * 2 : 16, i;
        fl_wchunk *n = PyMem_Malloc(ncap * sizeof(fl_wchunk));
        if (n == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (i = 0; i < b->len; i++) {
            n[i] = b->items[(b->head + i) % b->cap];
        }
        PyMem_Free(b->items);
        b->items = n;
        b->head = 0;
        b->cap = ncap;
    }
    c = &b->items[(b->head + b->len) % b->cap];
    c->obj = Py_NewRef(bytes);
    c->off = off;
    b->len++;
    b->size += PyBytes_GET_SIZE(bytes) - off;
    return 0;
}

int
fl_wbuf_push_rest(fl_wbuf *b, PyObject *data, Py_buffer *view,
                  Py_ssize_t sent)
{
    PyObject *bytes;
    int rc;

    /* bytes are immutable: a reference will do. */
    if (PyBytes_CheckExact(data)) {
        bytes = Py_NewRef(data);
    }
    else {
        bytes = PyBytes_FromStringAndSize((char *)view->buf + sent,
                                          view->len - sent);
        sent = 0;
    }
    if (view->obj != NULL) {
        PyBuffer_Release(view);
    }
    if (bytes == NULL) {
        return -1;
    }
    rc = fl_wbuf_push(b, bytes, sent);
    Py_DECREF(bytes);
    return rc;
}

void
fl_wbuf_consume(fl_wbuf *b, Py_ssize_t n)
{
    b->size -= n;
    while (n > 0 && b->len) {
        fl_wchunk *c = &b->items[b->head];
        Py_ssize_t left = PyBytes_GET_SIZE(c->obj) - c->off;
        if (n < left) {
            c->off += n;
            return;
        }
        n -= left;
        Py_CLEAR(c->obj);
        b->head = (b->head + 1) % b->cap;
        b->len--;
    }
}

void
fl_wbuf_clear(fl_wbuf *b)
{
    /* Unlink each chunk before dropping it: a finaliser run by the decref
     * may look at the buffer. */
    while (b->len) {
        PyObject *o = b->items[b->head].obj;
        b->items[b->head].obj = NULL;
        b->head = (b->head + 1) % b->cap;
        b->len--;
        Py_DECREF(o);
    }
    b->size = 0;
}

void
fl_wbuf_free(fl_wbuf *b)
{
    fl_wbuf_clear(b);
    PyMem_Free(b->items);
    b->items = NULL;
    b->head = b->cap = 0;
}

int
fl_wbuf_traverse(fl_wbuf *b, visitproc visit, void *arg)
{
    Py_ssize_t i;

    for (i = 0; i < b->len; i++) {
        Py_VISIT(b->items[(b->head + i) % b->cap].obj);
    }
    return 0;
}

ssize_t
fl_wbuf_write(fl_wbuf *b, int fd, int is_socket)
{
    struct iovec iov[MAX_IOV];
    Py_ssize_t i, n = b->len < MAX_IOV ? b->len : MAX_IOV;
    ssize_t r;

    if (n == 0) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        fl_wchunk *c = &b->items[(b->head + i) % b->cap];
        iov[i].iov_base = PyBytes_AS_STRING(c->obj) + c->off;
        iov[i].iov_len = (size_t)(PyBytes_GET_SIZE(c->obj) - c->off);
    }
    do {
        if (!is_socket) {
            r = n == 1 ? write(fd, iov[0].iov_base, iov[0].iov_len)
                       : writev(fd, iov, (int)n);
        }
        else if (n == 1) {
            r = send(fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
        }
        else {
            struct msghdr mh = {0};
            mh.msg_iov = iov;
            mh.msg_iovlen = (size_t)n;
            r = sendmsg(fd, &mh, MSG_NOSIGNAL);
        }
    } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : r;
}
