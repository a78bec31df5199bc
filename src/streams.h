/* Native paths for asyncio streams (streams.c).
 *
 * asyncio.start_server() and open_connection() build their StreamReader,
 * StreamWriter and StreamReaderProtocol from asyncio's own classes. When a
 * stream transport finds such a protocol (of exactly asyncio's class, with
 * none of the methods below replaced), it moves the reader and the writer
 * to C subclasses of asyncio's classes whose read(), feed_data(), write()
 * and drain() are written in C, and feeds received bytes straight into the
 * reader's buffer. Every other method and all state stay asyncio's: the
 * objects keep their __dict__, and the C methods read and write the same
 * attributes asyncio's Python does. */
#ifndef FASTLOOP_STREAMS_H
#define FASTLOOP_STREAMS_H

#include "fastloop.h"

int fl_streams_init(PyObject *mod, fl_state *st);
int fl_streams_traverse(fl_state *st, visitproc visit, void *arg);
void fl_streams_clear(fl_state *st);

/* Whether protocol is an unmodified asyncio.StreamReaderProtocol whose
 * data_received is the bound method dr; if so its reader (and writer,
 * once connection_made() made one) move to the C classes. 1 yes, 0 no;
 * never fails (a failed check answers no). */
int fl_streams_adopt(fl_state *st, PyObject *protocol, PyObject *dr);

/* Called from a stream transport's write() while its protocol is adopted:
 * when the Python caller is asyncio's StreamWriter.write() or
 * writelines() on a writer of exactly asyncio's class over protocol
 * (open_connection() makes the client's writer after the connection,
 * where the transport cannot see it), that writer moves to the C class.
 * 1 adopted, 0 not; never fails. */
int fl_streams_adopt_caller(fl_state *st, PyObject *protocol);

/* StreamReaderProtocol.data_received(buf[:n]) for an adopted protocol
 * without a bytes object: 1 done, 0 not applicable (call data_received),
 * -1 error (as raised by data_received). */
int fl_streams_feed(fl_state *st, PyObject *protocol, const char *buf,
                    Py_ssize_t n);

/* Reading into an adopted reader (stream.c). fl_streams_room() returns 1
 * and fills *slot when the protocol's reader is native, open and has a
 * bytearray buffer; slot->room > 0 when that buffer has (or, empty, could
 * take from the pool) room for at least min bytes at slot->dst. 0: not
 * applicable (read, then fl_streams_feed()); -1: an error, as
 * data_received() would raise. Nothing may run Python code before
 * fl_streams_commit(), which adds n bytes (n <= 0: none) read at
 * slot->dst (buf NULL) or copied from buf, with the rest of feed_data(),
 * and releases the slot: 0 or -1. */
typedef struct {
    PyObject *dict, *buffer;
    char *dst;
    Py_ssize_t room;
} fl_streams_slot;
int fl_streams_room(fl_state *st, PyObject *protocol, Py_ssize_t min,
                    fl_streams_slot *slot);
int fl_streams_commit(fl_state *st, fl_streams_slot *slot, const char *buf,
                      Py_ssize_t n);
/* _core._streams_adopt_reader(reader) -> whether it is native now. */
PyObject *fl_streams_adopt_reader(PyObject *mod, PyObject *reader);

/* _core._native_streams(enabled=None) -> the previous setting. */
PyObject *fl_streams_switch(PyObject *mod, PyObject *const *args,
                            Py_ssize_t nargs);

#endif
