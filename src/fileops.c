/* File-system and sendfile system calls the loop makes for itself.
 *
 * asyncio makes these through the os module (os.sendfile in
 * sock_sendfile/sendfile, os.stat/os.remove/os.unlink around Unix server
 * sockets). Tools that patch os functions to find blocking calls in
 * coroutines (blockbuster) exempt asyncio's own call sites by file and
 * function name; fastloop's make the calls here, in C, as a C loop does,
 * so they are not mistaken for calls from user code. Each raises OSError as
 * the os function does (FileNotFoundError, BlockingIOError, ...). */
#include "fastloop.h"

#include <errno.h>
#include <limits.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

/* An int argument (before 3.10 PyLong_AsLong() would take a float). */
static int
as_long_long(PyObject *o, long long *v)
{
    PyObject *i = PyNumber_Index(o);

    if (i == NULL) {
        return -1;
    }
    *v = PyLong_AsLongLong(i);
    Py_DECREF(i);
    return *v == -1 && PyErr_Occurred() ? -1 : 0;
}

static int
as_fd(PyObject *o, int *fd)
{
    long long v;

    if (as_long_long(o, &v) < 0) {
        return -1;
    }
    if (v < 0 || v > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "invalid file descriptor");
        return -1;
    }
    *fd = (int)v;
    return 0;
}

/* _sendfile(out_fd, in_fd, offset, count) -> bytes sent; as os.sendfile,
 * the GIL released and EINTR retried. */
PyObject *
fl_sendfile(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    int out_fd, in_fd;
    long long offset, count;
    ssize_t n;
    off_t off;

    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError,
                     "_sendfile() takes exactly 4 arguments (%zd given)",
                     nargs);
        return NULL;
    }
    if (as_fd(args[0], &out_fd) < 0 || as_fd(args[1], &in_fd) < 0) {
        return NULL;
    }
    if (as_long_long(args[2], &offset) < 0 ||
        as_long_long(args[3], &count) < 0)
    {
        return NULL;
    }
    if (offset < 0 || count < 0 || count > PY_SSIZE_T_MAX) {
        PyErr_SetString(PyExc_ValueError,
                        "offset or count out of range");
        return NULL;
    }
    for (;;) {
        off = (off_t)offset;
        Py_BEGIN_ALLOW_THREADS
        n = sendfile(out_fd, in_fd, &off, (size_t)count);
        Py_END_ALLOW_THREADS
        if (n >= 0) {
            return PyLong_FromSsize_t(n);
        }
        if (errno != EINTR) {
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        if (PyErr_CheckSignals() < 0) {
            return NULL;
        }
    }
}

/* Runs stat(2) on a path (str, bytes or os.PathLike). */
static int
stat_path(PyObject *path, struct stat *st, PyObject **encoded)
{
    int rc;

    if (!PyUnicode_FSConverter(path, encoded)) {
        return -1;
    }
    Py_BEGIN_ALLOW_THREADS
    rc = stat(PyBytes_AS_STRING(*encoded), st);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
        Py_CLEAR(*encoded);
        return -1;
    }
    return 0;
}

/* _stat(path) -> (st_mode, st_ino), as os.stat(path) would give them. */
PyObject *
fl_stat(PyObject *mod, PyObject *path)
{
    PyObject *encoded = NULL;
    struct stat st;

    if (stat_path(path, &st, &encoded) < 0) {
        return NULL;
    }
    Py_DECREF(encoded);
    return Py_BuildValue("(kK)", (unsigned long)st.st_mode,
                         (unsigned long long)st.st_ino);
}

/* _unlink(path): os.unlink(path). */
PyObject *
fl_unlink(PyObject *mod, PyObject *path)
{
    PyObject *encoded = NULL;
    int rc;

    if (!PyUnicode_FSConverter(path, &encoded)) {
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    rc = unlink(PyBytes_AS_STRING(encoded));
    Py_END_ALLOW_THREADS
    Py_DECREF(encoded);
    if (rc < 0) {
        return PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
    }
    Py_RETURN_NONE;
}
