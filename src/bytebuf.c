/* Reuse of stream readers' bytearray storage: see bytebuf.h.
 *
 * The fields of PyByteArrayObject are public (cpython/bytearrayobject.h)
 * and the same in 3.9-3.13; ob_bytes is allocated with PyObject_Malloc
 * and its family by bytearray itself, so storage moved between bytearrays
 * here stays in that allocator. An empty bytearray with ob_bytes NULL and
 * ob_alloc 0 is what bytearray() makes. */
#include "fastloop.h"

#include <string.h>

#if PY_VERSION_HEX < 0x030E0000 && !defined(Py_GIL_DISABLED)
#define FL_BB_ENABLED 1
#else
#define FL_BB_ENABLED 0 /* 3.14 backs bytearray with a bytes object; the
                           * pool relies on the GIL */
#endif

/* Storage up to this size stays with its bytearray when it empties. */
#define FL_BB_KEEP 2048
/* Larger storage goes to the pool, up to this size per buffer and in all. */
#define FL_BB_MAX_ONE (1024 * 1024)
#define FL_BB_MAX_TOTAL (32 * 1024 * 1024)
/* Seconds an entry may stay unused before it is freed. */
#define FL_BB_DECAY 1.0

#if FL_BB_ENABLED

static void
set_empty(PyByteArrayObject *b, char *mem, Py_ssize_t cap)
{
    b->ob_bytes = b->ob_start = mem;
    b->ob_alloc = cap;
    Py_SET_SIZE(b, 0);
    if (mem != NULL) {
        mem[0] = '\0';
    }
}

/* Pooled storage of at least need bytes, or NULL. Looks from the most
 * recently pooled entry back and takes the first that is at most twice
 * the need, else the smallest that fits. */
static char *
pool_take(fl_bytebuf_pool *pool, Py_ssize_t need, Py_ssize_t *cap)
{
    int best = -1, i;
    char *mem;

    if (need > pool->maxcap) {
        return NULL;
    }
    for (i = pool->n - 1; i >= 0; i--) {
        Py_ssize_t c = pool->cap[i];

        if (c >= need && (best < 0 || c < pool->cap[best])) {
            best = i;
            if (c / 2 <= need) {
                break;
            }
        }
    }
    if (best < 0) {
        return NULL;
    }
    mem = pool->mem[best];
    *cap = pool->cap[best];
    pool->total -= *cap;
    pool->n--;
    if (pool->n < pool->low) {
        pool->low = pool->n;
    }
    pool->mem[best] = pool->mem[pool->n];
    pool->cap[best] = pool->cap[pool->n];
    if (*cap == pool->maxcap) {
        pool->maxcap = 0;
        for (i = 0; i < pool->n; i++) {
            if (pool->cap[i] > pool->maxcap) {
                pool->maxcap = pool->cap[i];
            }
        }
    }
    return mem;
}

static int
pool_put(fl_bytebuf_pool *pool, char *mem, Py_ssize_t cap)
{
    if (cap > FL_BB_MAX_ONE || pool->n == FL_BB_SLOTS ||
        pool->total + cap > FL_BB_MAX_TOTAL)
    {
        return -1;
    }
    pool->mem[pool->n] = mem;
    pool->cap[pool->n] = cap;
    pool->n++;
    pool->total += cap;
    if (cap > pool->maxcap) {
        pool->maxcap = cap;
    }
    return 0;
}

int
fl_bytebuf_append(fl_bytebuf_pool *pool, PyObject *buffer, const char *buf,
                  Py_ssize_t n)
{
    PyByteArrayObject *b = (PyByteArrayObject *)buffer;
    Py_ssize_t old = Py_SIZE(b), cap;
    char *mem;

    if (b->ob_exports == 0 && n > 0) {
        if (b->ob_bytes != NULL &&
            (b->ob_start - b->ob_bytes) + old + n < b->ob_alloc)
        {
            memcpy(b->ob_start + old, buf, (size_t)n);
            Py_SET_SIZE(b, old + n);
            b->ob_start[old + n] = '\0';
            return 0;
        }
        if (old == 0 && (mem = pool_take(pool, n + 1, &cap)) != NULL) {
            PyObject_Free(b->ob_bytes);
            set_empty(b, mem, cap);
            memcpy(mem, buf, (size_t)n);
            Py_SET_SIZE(b, n);
            mem[n] = '\0';
            return 0;
        }
    }
    if (PyByteArray_Resize(buffer, old + n) < 0) {
        return -1;
    }
    memcpy(PyByteArray_AS_STRING(buffer) + old, buf, (size_t)n);
    return 0;
}

Py_ssize_t
fl_bytebuf_room(fl_bytebuf_pool *pool, PyObject *buffer, Py_ssize_t min,
                char **dst)
{
    PyByteArrayObject *b = (PyByteArrayObject *)buffer;
    Py_ssize_t old = Py_SIZE(b), room, cap;
    char *mem;

    if (b->ob_exports != 0) {
        return 0;
    }
    if (old == 0 && (b->ob_bytes == NULL || b->ob_alloc <= min)) {
        if ((mem = pool_take(pool, min + 1, &cap)) == NULL) {
            return 0;
        }
        PyObject_Free(b->ob_bytes);
        set_empty(b, mem, cap);
    }
    if (b->ob_bytes == NULL) {
        return 0;
    }
    room = b->ob_alloc - (b->ob_start - b->ob_bytes) - old - 1;
    if (room < min) {
        return 0;
    }
    *dst = b->ob_start + old;
    return room;
}

void
fl_bytebuf_commit(PyObject *buffer, Py_ssize_t n)
{
    PyByteArrayObject *b = (PyByteArrayObject *)buffer;

    Py_SET_SIZE(b, Py_SIZE(b) + n);
    b->ob_start[Py_SIZE(b)] = '\0';
}

int
fl_bytebuf_clear(fl_bytebuf_pool *pool, PyObject *buffer)
{
    PyByteArrayObject *b = (PyByteArrayObject *)buffer;

    if (b->ob_exports != 0) {
        return -1;
    }
    if (b->ob_bytes == NULL || b->ob_alloc <= FL_BB_KEEP) {
        set_empty(b, b->ob_bytes, b->ob_alloc);
        return 0;
    }
    if (pool_put(pool, b->ob_bytes, b->ob_alloc) < 0) {
        PyObject_Free(b->ob_bytes);
    }
    set_empty(b, NULL, 0);
    return 0;
}

#else /* !FL_BB_ENABLED */

int
fl_bytebuf_append(fl_bytebuf_pool *pool, PyObject *buffer, const char *buf,
                  Py_ssize_t n)
{
    Py_ssize_t old = PyByteArray_GET_SIZE(buffer);

    if (PyByteArray_Resize(buffer, old + n) < 0) {
        return -1;
    }
    memcpy(PyByteArray_AS_STRING(buffer) + old, buf, (size_t)n);
    return 0;
}

int
fl_bytebuf_clear(fl_bytebuf_pool *pool, PyObject *buffer)
{
    return -1;
}

Py_ssize_t
fl_bytebuf_room(fl_bytebuf_pool *pool, PyObject *buffer, Py_ssize_t min,
                char **dst)
{
    return 0;
}

void
fl_bytebuf_commit(PyObject *buffer, Py_ssize_t n)
{
}

#endif

int64_t
fl_bytebuf_idle(fl_bytebuf_pool *pool, double now, int64_t timeout)
{
    double wait;

    if (pool->n == 0) {
        pool->window = now;
        pool->low = 0;
        return timeout;
    }
    wait = pool->window + FL_BB_DECAY - now;
    if (wait > 0) {
        return fl_cap_timeout(timeout, wait);
    }
    /* The `low` entries nobody took during the window go (the pool is
     * not ordered by use: which ones does not matter). */
    while (pool->low > 0 && pool->n > 0) {
        pool->low--;
        pool->n--;
        pool->total -= pool->cap[pool->n];
        PyObject_Free(pool->mem[pool->n]);
    }
    if (pool->n == 0) {
        pool->maxcap = 0;
    }
    pool->window = now;
    pool->low = pool->n;
    return pool->n > 0 ? fl_cap_timeout(timeout, FL_BB_DECAY) : timeout;
}

void
fl_bytebuf_pool_free(fl_bytebuf_pool *pool)
{
    while (pool->n > 0) {
        pool->n--;
        PyObject_Free(pool->mem[pool->n]);
    }
    pool->total = 0;
    pool->low = 0;
    pool->maxcap = 0;
}
