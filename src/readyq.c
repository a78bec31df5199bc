/* The ready queue: a growable ring buffer of strong references. */
#include "fastloop.h"

static int
grow(fl_ready *q)
{
    Py_ssize_t ncap = q->cap ? q->cap * 2 : 64;
    PyObject **n = PyMem_Malloc(ncap * sizeof(PyObject *));
    Py_ssize_t i;

    if (n == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    /* Unwrap the ring into the new array, oldest first. */
    for (i = 0; i < q->len; i++) {
        n[i] = q->items[(q->head + i) & (q->cap - 1)];
    }
    PyMem_Free(q->items);
    q->items = n;
    q->head = 0;
    q->cap = ncap;
    return 0;
}

int
fl_ready_push(fl_ready *q, PyObject *h)
{
    if (q->len == q->cap && grow(q) < 0) {
        return -1;
    }
    q->items[(q->head + q->len) & (q->cap - 1)] = Py_NewRef(h);
    q->len++;
    return 0;
}

PyObject *
fl_ready_pop(fl_ready *q)
{
    PyObject *h;

    if (q->len == 0) {
        return NULL;
    }
    h = q->items[q->head];
    q->items[q->head] = NULL;
    q->head = (q->head + 1) & (q->cap - 1);
    q->len--;
    return h;
}

void
fl_ready_clear(fl_ready *q)
{
    PyObject *h;

    /* Pop one at a time: a handle's destructor may run arbitrary code. */
    while ((h = fl_ready_pop(q)) != NULL) {
        Py_DECREF(h);
    }
}

void
fl_ready_free(fl_ready *q)
{
    fl_ready_clear(q);
    PyMem_Free(q->items);
    q->items = NULL;
    q->cap = 0;
    q->head = 0;
}

int
fl_ready_traverse(fl_ready *q, visitproc visit, void *arg)
{
    Py_ssize_t i;

    for (i = 0; i < q->len; i++) {
        Py_VISIT(q->items[(q->head + i) & (q->cap - 1)]);
    }
    return 0;
}
