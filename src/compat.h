/* Version guards for CPython 3.9-3.13. */
#ifndef FASTLOOP_COMPAT_H
#define FASTLOOP_COMPAT_H

#define FL_PY310 (PY_VERSION_HEX >= 0x030A0000)
#define FL_PY311 (PY_VERSION_HEX >= 0x030B0000)
#define FL_PY312 (PY_VERSION_HEX >= 0x030C0000)
#define FL_PY313 (PY_VERSION_HEX >= 0x030D0000)

#if !FL_PY310
static inline PyObject *
Py_NewRef(PyObject *o)
{
    Py_INCREF(o);
    return o;
}
static inline PyObject *
Py_XNewRef(PyObject *o)
{
    Py_XINCREF(o);
    return o;
}
#endif

#endif
