/* A 4-ary min-heap of TimerHandles ordered by (when, seq). Each handle
 * stores its own index (fl_timer_extra.index), so cancel is O(log n).
 * A 4-ary heap is shallower than a binary one and its children share a
 * cache line or two (libev's observation). */
#include "fastloop.h"

#define D 4

static inline int
less(PyObject *a, PyObject *b)
{
    fl_timer_extra *x = fl_timer_x(a), *y = fl_timer_x(b);

    if (x->when != y->when) {
        return x->when < y->when;
    }
    return x->seq < y->seq;
}

static inline void
place(fl_heap *h, Py_ssize_t i, PyObject *th)
{
    h->items[i] = th;
    fl_timer_x(th)->index = i;
}

static void
sift_up(fl_heap *h, Py_ssize_t i)
{
    PyObject *th = h->items[i];

    while (i > 0) {
        Py_ssize_t parent = (i - 1) / D;
        if (!less(th, h->items[parent])) {
            break;
        }
        place(h, i, h->items[parent]);
        i = parent;
    }
    place(h, i, th);
}

static void
sift_down(fl_heap *h, Py_ssize_t i)
{
    PyObject *th = h->items[i];

    for (;;) {
        Py_ssize_t first = i * D + 1, best, c, last;
        if (first >= h->len) {
            break;
        }
        best = first;
        last = first + D < h->len ? first + D : h->len;
        for (c = first + 1; c < last; c++) {
            if (less(h->items[c], h->items[best])) {
                best = c;
            }
        }
        if (!less(h->items[best], th)) {
            break;
        }
        place(h, i, h->items[best]);
        i = best;
    }
    place(h, i, th);
}

int
fl_heap_push(fl_heap *h, PyObject *th)
{
    if (h->len == h->cap) {
        Py_ssize_t ncap = h->cap ? h->cap * 2 : 64;
        PyObject **n = PyMem_Realloc(h->items, ncap * sizeof(PyObject *));
        if (n == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        h->items = n;
        h->cap = ncap;
    }
    Py_INCREF(th);
    h->items[h->len] = th;
    h->len++;
    sift_up(h, h->len - 1);
    return 0;
}

/* Removes the item at index i and returns the reference the heap held. */
PyObject *
fl_heap_remove(fl_heap *h, Py_ssize_t i)
{
    PyObject *th = h->items[i];
    PyObject *last;

    assert(i >= 0 && i < h->len);
    h->len--;
    last = h->items[h->len];
    h->items[h->len] = NULL;
    if (i < h->len) {
        place(h, i, last);
        if (i > 0 && less(last, h->items[(i - 1) / D])) {
            sift_up(h, i);
        }
        else {
            sift_down(h, i);
        }
    }
    fl_timer_x(th)->index = -1;
    /* Give memory back after a burst of timers (churn keeps it flat). */
    if (h->cap > 1024 && h->len < h->cap / 4) {
        Py_ssize_t ncap = h->cap / 2;
        PyObject **n = PyMem_Realloc(h->items, ncap * sizeof(PyObject *));
        if (n != NULL) {
            h->items = n;
            h->cap = ncap;
        }
    }
    return th;
}

PyObject *
fl_heap_pop(fl_heap *h)
{
    return h->len ? fl_heap_remove(h, 0) : NULL;
}

void
fl_heap_clear(fl_heap *h)
{
    PyObject *th;

    while ((th = fl_heap_pop(h)) != NULL) {
        Py_DECREF(th);
    }
}

void
fl_heap_free(fl_heap *h)
{
    fl_heap_clear(h);
    PyMem_Free(h->items);
    h->items = NULL;
    h->cap = 0;
}

int
fl_heap_traverse(fl_heap *h, visitproc visit, void *arg)
{
    Py_ssize_t i;

    for (i = 0; i < h->len; i++) {
        Py_VISIT(h->items[i]);
    }
    return 0;
}
