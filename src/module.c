/* fastloop._core: module state, multi-phase init. */
#include "fastloop.h"
#include "stream.h"
#include "streams.h"

int fl_listener_init_type(PyObject *mod, fl_state *st);
int fl_udp_init_type(PyObject *mod, fl_state *st);
int fl_pipe_init_types(PyObject *mod, fl_state *st);

static fl_state *
get_state(PyObject *mod)
{
    return (fl_state *)PyModule_GetState(mod);
}

static PyObject *
import_attr(const char *module, const char *name)
{
    PyObject *m = PyImport_ImportModule(module), *r;

    if (m == NULL) {
        return NULL;
    }
    r = PyObject_GetAttrString(m, name);
    Py_DECREF(m);
    return r;
}

static int
intern(PyObject **dst, const char *s)
{
    *dst = PyUnicode_InternFromString(s);
    return *dst == NULL ? -1 : 0;
}

static int
module_exec(PyObject *mod)
{
    fl_state *st = get_state(mod);

    if ((st->aio_Future = import_attr("asyncio", "Future")) == NULL ||
        (st->aio_Task = import_attr("asyncio", "Task")) == NULL ||
        (st->aio_Handle = import_attr("asyncio.events", "Handle")) == NULL ||
        (st->aio_TimerHandle = import_attr("asyncio.events", "TimerHandle")) ==
            NULL ||
        (st->iscoroutine = import_attr("asyncio.coroutines", "iscoroutine")) ==
            NULL ||
        (st->iscoroutinefunction =
             import_attr("asyncio.coroutines", "iscoroutinefunction")) ==
            NULL ||
        (st->extract_stack =
             import_attr("asyncio.format_helpers", "extract_stack")) == NULL ||
        (st->aio_Transport = import_attr("asyncio", "Transport")) == NULL ||
        (st->aio_BufferedProtocol =
             import_attr("asyncio", "BufferedProtocol")) == NULL ||
        (st->TransportSocket =
             import_attr("asyncio.trsock", "TransportSocket")) == NULL ||
        (st->socket_socket = import_attr("socket", "socket")) == NULL ||
        (st->set_result_unless_cancelled = import_attr(
             "asyncio.futures", "_set_result_unless_cancelled")) == NULL)
    {
        return -1;
    }
    if (intern(&st->str_context, "context") < 0 ||
        intern(&st->str_loop, "loop") < 0 ||
        intern(&st->str_name, "name") < 0 ||
        intern(&st->str_fileno, "fileno") < 0 ||
        intern(&st->str_callback_error, "_fl_callback_error") < 0 ||
        intern(&st->str_slow_callback, "_fl_slow_callback") < 0 ||
        intern(&st->str_time, "time") < 0)
    {
        return -1;
    }
    st->empty_tuple = PyTuple_New(0);
    if (st->empty_tuple == NULL) {
        return -1;
    }
    if (fl_handle_init_types(mod, st) < 0) {
        return -1;
    }
    st->LoopType =
        (PyTypeObject *)PyType_FromModuleAndSpec(mod, &fl_loop_spec, NULL);
    if (st->LoopType == NULL) {
        return -1;
    }
    if (PyModule_AddObject(mod, "Loop", Py_NewRef((PyObject *)st->LoopType)) <
        0)
    {
        Py_DECREF(st->LoopType);
        return -1;
    }
    st->loop_time = _PyType_Lookup(st->LoopType, st->str_time);
    if (st->loop_time == NULL) {
        PyErr_SetString(PyExc_SystemError, "Loop.time is missing");
        return -1;
    }
    Py_INCREF(st->loop_time);
    if (fl_stream_init_type(mod, st) < 0 ||
        fl_listener_init_type(mod, st) < 0 ||
        fl_udp_init_type(mod, st) < 0 ||
        fl_pipe_init_types(mod, st) < 0 || fl_streams_init(mod, st) < 0)
    {
        return -1;
    }
    if (PyModule_AddStringConstant(mod, "POLLER", fl_poller_name()) < 0) {
        return -1;
    }
#ifdef FL_DEBUG
    if (PyModule_AddIntConstant(mod, "DEBUG_BUILD", 1) < 0) {
        return -1;
    }
#else
    if (PyModule_AddIntConstant(mod, "DEBUG_BUILD", 0) < 0) {
        return -1;
    }
#endif
    return 0;
}

static int
module_traverse(PyObject *mod, visitproc visit, void *arg)
{
    fl_state *st = get_state(mod);

    Py_VISIT(st->LoopType);
    Py_VISIT(st->loop_time);
    Py_VISIT(st->HandleType);
    Py_VISIT(st->TimerHandleType);
    Py_VISIT(st->aio_Future);
    Py_VISIT(st->aio_Task);
    Py_VISIT(st->aio_Handle);
    Py_VISIT(st->aio_TimerHandle);
    Py_VISIT(st->iscoroutine);
    Py_VISIT(st->iscoroutinefunction);
    Py_VISIT(st->extract_stack);
    Py_VISIT(st->StreamTransportType);
    Py_VISIT(st->ListenerType);
    Py_VISIT(st->aio_Transport);
    Py_VISIT(st->aio_BufferedProtocol);
    Py_VISIT(st->TransportSocket);
    Py_VISIT(st->socket_socket);
    Py_VISIT(st->set_result_unless_cancelled);
    return fl_streams_traverse(st, visit, arg);
}

static int
module_clear(PyObject *mod)
{
    fl_state *st = get_state(mod);

    Py_CLEAR(st->LoopType);
    Py_CLEAR(st->HandleType);
    Py_CLEAR(st->TimerHandleType);
    Py_CLEAR(st->aio_Future);
    Py_CLEAR(st->aio_Task);
    Py_CLEAR(st->aio_Handle);
    Py_CLEAR(st->aio_TimerHandle);
    Py_CLEAR(st->iscoroutine);
    Py_CLEAR(st->iscoroutinefunction);
    Py_CLEAR(st->extract_stack);
    Py_CLEAR(st->str_context);
    Py_CLEAR(st->str_context_alias);
    Py_CLEAR(st->empty_tuple);
    Py_CLEAR(st->str_loop);
    Py_CLEAR(st->str_name);
    Py_CLEAR(st->str_fileno);
    Py_CLEAR(st->str_callback_error);
    Py_CLEAR(st->str_slow_callback);
    Py_CLEAR(st->str_time);
    Py_CLEAR(st->loop_time);
    Py_CLEAR(st->StreamTransportType);
    Py_CLEAR(st->ListenerType);
    Py_CLEAR(st->aio_Transport);
    Py_CLEAR(st->aio_BufferedProtocol);
    Py_CLEAR(st->TransportSocket);
    Py_CLEAR(st->socket_socket);
    Py_CLEAR(st->set_result_unless_cancelled);
    fl_streams_clear(st);
    return 0;
}

static void
module_free(void *mod)
{
    module_clear((PyObject *)mod);
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};

static PyMethodDef module_methods[] = {
    {"_native_streams", (PyCFunction)(void (*)(void))fl_streams_switch,
     METH_FASTCALL,
     "_native_streams($module, enabled=None, /)\n--\n\n"
     "Whether stream transports adopt asyncio's StreamReader and "
     "StreamWriter\n(the previous setting; sets it when enabled is "
     "given)."},
    {"_streams_adopt_reader", (PyCFunction)fl_streams_adopt_reader, METH_O,
     "_streams_adopt_reader($module, reader, /)\n--\n\n"
     "Moves an asyncio.StreamReader to fastloop's C subclass when native "
     "streams\nare on; returns whether the reader is native now."},
    {"_sendfile", (PyCFunction)(void (*)(void))fl_sendfile, METH_FASTCALL,
     "_sendfile($module, out_fd, in_fd, offset, count, /)\n--\n\n"
     "os.sendfile() for the loop's own transfers (fileops.c)."},
    {"_stat", (PyCFunction)fl_stat, METH_O,
     "_stat($module, path, /)\n--\n\n"
     "(st_mode, st_ino) of os.stat(path), for the loop's own use."},
    {"_unlink", (PyCFunction)fl_unlink, METH_O,
     "_unlink($module, path, /)\n--\n\n"
     "os.unlink(path), for the loop's own use."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef fl_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "fastloop._core",
    .m_doc = "The C core of fastloop, an asyncio event loop.",
    .m_size = sizeof(fl_state),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC
PyInit__core(void)
{
    return PyModuleDef_Init(&fl_module);
}
