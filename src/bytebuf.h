/* Reuse of the storage of stream readers' bytearray buffers (bytebuf.c).
 *
 * asyncio's StreamReader appends to a bytearray and a read takes its bytes
 * out; once a read empties it, CPython shrinks its storage to one byte and
 * the next feed allocates again. For messages of tens of KiB that is a
 * malloc and a free of that size per message, and glibc gives a freed
 * chunk that merges into the top of the heap back to the kernel once the
 * top exceeds 128 KiB: the next allocation then page-faults its memory in
 * again (8 faults per 100 KiB echo measured, ~40 % of the server's CPU).
 *
 * Here an emptied buffer keeps a small allocation in place and gives a large
 * one to a bounded pool; a feed into an empty buffer takes pooled storage
 * that is big enough. Only exact bytearrays with no buffer exports are
 * touched; everything else goes through PyByteArray_Resize as before. */
#ifndef FASTLOOP_BYTEBUF_H
#define FASTLOOP_BYTEBUF_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#define FL_BB_SLOTS 128

typedef struct {
    char *mem[FL_BB_SLOTS];
    Py_ssize_t cap[FL_BB_SLOTS];
    int n;
    int low;          /* the fewest entries since `window` began */
    Py_ssize_t total;  /* sum of cap[] */
    Py_ssize_t maxcap; /* at least the largest cap[] (0: empty) */
    double window;    /* loop time */
} fl_bytebuf_pool;

/* buffer += buf[:n]; buffer is an exact bytearray. 0 or -1 (as
 * bytearray.extend: MemoryError, BufferError while exported). */
int fl_bytebuf_append(fl_bytebuf_pool *pool, PyObject *buffer,
                      const char *buf, Py_ssize_t n);
/* Spare room of at least min bytes at the end of buffer (an exact
 * bytearray with no exports), taking pooled storage if it is empty:
 * returns the room and sets *dst, or returns 0. Never raises. Nothing may
 * touch the buffer before fl_bytebuf_commit(). */
Py_ssize_t fl_bytebuf_room(fl_bytebuf_pool *pool, PyObject *buffer,
                           Py_ssize_t min, char **dst);
/* n bytes were written at *dst: they join the buffer. */
void fl_bytebuf_commit(PyObject *buffer, Py_ssize_t n);
/* del buffer[:] for an exact bytearray: 0 done, -1 not applicable (the
 * caller deletes the slice itself). Never raises. */
int fl_bytebuf_clear(fl_bytebuf_pool *pool, PyObject *buffer);
/* About to block: storage that stayed in the pool for a whole second
 * is freed. Returns the poll timeout (ns, -1: none), shortened to wake
 * the loop for that if needed. */
int64_t fl_bytebuf_idle(fl_bytebuf_pool *pool, double now, int64_t timeout);
/* Free the pooled storage. */
void fl_bytebuf_pool_free(fl_bytebuf_pool *pool);

#endif
