/* The wheel's write loop in C: one slice of a group's sockets, each written what it is owed.

   It does what `slots.write_slice_py` does, slot by slot, with one difference: a socket whose
   transport is uvloop's plain TCP transport with nothing queued is written with one `send()`
   on its descriptor instead of through the transport's `write`. At 10,000 sockets a turn the
   Python loop and the transport's bookkeeping were about a fifth of the fan-out's CPU, and
   `write()` on a socket pays for the file layer that `send()` skips (docs/benchmarks.md).
   Whatever `send()` does not take (a full socket buffer, an error) goes to the transport's
   own `write`, which queues it or meets the error its own way, so the transport stays the
   owner of what is queued and of the connection's end.

   A slot (slots.Slot) carries `seq`, `alive`, `write` (the transport's bound write), `fd` (-1
   for a transport this loop must not bypass) and `buffered` (the transport's bound
   get_write_buffer_size). The descriptor is only written while the slot is alive: a
   transport closes its socket only after it has called the protocol's connection_lost, which
   takes the socket out of the hub (alive = False), so while the slot is alive the number
   cannot belong to another connection. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

static PyObject *name_seq, *name_alive, *name_write, *name_fd, *name_buffered;

/* `value` (a new reference, or NULL after an exception) as a Py_ssize_t; it is released.
   0, or -1 on an exception. */
static int
take_ssize(PyObject *value, Py_ssize_t *out)
{
    if (value == NULL)
        return -1;
    *out = PyLong_AsSsize_t(value);
    Py_DECREF(value);
    return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

/* 1: written whole here; 0: the transport must take `data` from `sent` on; -1: an exception. */
static int
write_direct(PyObject *slot, PyObject *data, Py_ssize_t *sent)
{
    *sent = 0;
    Py_ssize_t fd, queued;
    if (take_ssize(PyObject_GetAttr(slot, name_fd), &fd) < 0)
        return -1;
    if (fd < 0)
        return 0;
    if (take_ssize(PyObject_CallMethodNoArgs(slot, name_buffered), &queued) < 0)
        return -1;
    if (queued != 0)
        return 0; /* behind what is queued: the transport keeps the order */

    const char *buffer = PyBytes_AS_STRING(data);
    Py_ssize_t size = PyBytes_GET_SIZE(data);
    ssize_t written;
    do {
        written = send((int)fd, buffer, (size_t)size, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (written < 0 && errno == EINTR);
    if (written == size)
        return 1;
    if (written > 0)
        *sent = written;
    return 0; /* EAGAIN or an error: the transport's write queues it or closes */
}

static int
send_owed(PyObject *slot, PyObject *data)
{
    Py_ssize_t sent;
    int direct = write_direct(slot, data, &sent);
    if (direct != 0)
        return direct < 0 ? -1 : 0;
    PyObject *rest = data;
    if (sent > 0) {
        rest = PyBytes_FromStringAndSize(PyBytes_AS_STRING(data) + sent,
                                         PyBytes_GET_SIZE(data) - sent);
        if (rest == NULL)
            return -1;
    }
    else {
        Py_INCREF(rest);
    }
    PyObject *write = PyObject_GetAttr(slot, name_write);
    PyObject *result = write == NULL ? NULL : PyObject_CallOneArg(write, rest);
    Py_XDECREF(write);
    Py_DECREF(rest);
    if (result == NULL)
        return -1;
    Py_DECREF(result);
    return 0;
}

/* The frames from `seq` on, as (bytes, count): one call of `since` per distinct `seq`. */
static PyObject *
owed_from(PyObject *cache, PyObject *since, PyObject *seq)
{
    PyObject *owed = PyDict_GetItemWithError(cache, seq);
    if (owed != NULL) {
        Py_INCREF(owed);
        return owed;
    }
    if (PyErr_Occurred())
        return NULL;
    owed = PyObject_CallOneArg(since, seq);
    if (owed == NULL)
        return NULL;
    if (!PyTuple_Check(owed) || PyTuple_GET_SIZE(owed) != 2
        || !PyBytes_Check(PyTuple_GET_ITEM(owed, 0))) {
        Py_DECREF(owed);
        PyErr_SetString(PyExc_TypeError, "since() must return (bytes, int)");
        return NULL;
    }
    if (PyDict_SetItem(cache, seq, owed) < 0) {
        Py_DECREF(owed);
        return NULL;
    }
    return owed;
}

/* One slot: 1 if written, 0 if it owed nothing, -1 on an exception. */
static int
serve_slot(PyObject *slot, PyObject *head, PyObject *cache, PyObject *since,
           Py_ssize_t *frames, Py_ssize_t *oldest)
{
    PyObject *seq = PyObject_GetAttr(slot, name_seq);
    if (seq == NULL)
        return -1;
    int result = -1;
    PyObject *owed = NULL;
    int behind = PyObject_RichCompareBool(seq, head, Py_LT);
    if (behind <= 0) {
        result = behind;
        goto done;
    }
    PyObject *alive_obj = PyObject_GetAttr(slot, name_alive);
    if (alive_obj == NULL)
        goto done;
    int alive = PyObject_IsTrue(alive_obj);
    Py_DECREF(alive_obj);
    if (alive <= 0) {
        result = alive;
        goto done;
    }
    owed = owed_from(cache, since, seq);
    if (owed == NULL || PyObject_SetAttr(slot, name_seq, head) < 0)
        goto done;
    Py_ssize_t count = PyLong_AsSsize_t(PyTuple_GET_ITEM(owed, 1));
    if (count == -1 && PyErr_Occurred())
        goto done;
    if (count == 0) {
        result = 0;
        goto done;
    }
    if (send_owed(slot, PyTuple_GET_ITEM(owed, 0)) < 0)
        goto done;
    Py_ssize_t first = PyLong_AsSsize_t(seq);
    if (first == -1 && PyErr_Occurred())
        goto done;
    *frames += count;
    if (first < *oldest)
        *oldest = first;
    result = 1;
done:
    Py_XDECREF(owed);
    Py_DECREF(seq);
    return result;
}

PyDoc_STRVAR(write_slice_doc,
"write_slice(slots, head, since) -> (frames, writes, oldest)\n\n"
"Write each live slot behind `head` what it is owed (`since(seq)` gives the frames from\n"
"`seq` on, joined, and how many), move it to `head`, and return the frames and writes made\n"
"and the oldest sequence number written (`head` if none).");

static PyObject *
write_slice(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyList_Check(args[0]) || !PyLong_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "write_slice(slots: list, head: int, since)");
        return NULL;
    }
    PyObject *slots = args[0], *head = args[1], *since = args[2];
    Py_ssize_t oldest = PyLong_AsSsize_t(head);
    if (oldest == -1 && PyErr_Occurred())
        return NULL;
    PyObject *cache = PyDict_New();
    if (cache == NULL)
        return NULL;
    Py_ssize_t frames = 0, writes = 0;
    /* The list is read by index each time: a callback may not change it, but if one did, this
       would still read only what is there. */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(slots); i++) {
        PyObject *slot = PyList_GET_ITEM(slots, i);
        Py_INCREF(slot);
        int served = serve_slot(slot, head, cache, since, &frames, &oldest);
        Py_DECREF(slot);
        if (served < 0) {
            Py_DECREF(cache);
            return NULL;
        }
        writes += served;
    }
    Py_DECREF(cache);
    return Py_BuildValue("nnn", frames, writes, oldest);
}

static PyMethodDef wheel_methods[] = {
    {"write_slice", (PyCFunction)(void (*)(void))write_slice, METH_FASTCALL, write_slice_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef wheel_module = {
    PyModuleDef_HEAD_INIT, "_wheel", "The wheel's write loop in C (see hub.py).", -1,
    wheel_methods,
};

PyMODINIT_FUNC
PyInit__wheel(void)
{
    name_seq = PyUnicode_InternFromString("seq");
    name_alive = PyUnicode_InternFromString("alive");
    name_write = PyUnicode_InternFromString("write");
    name_fd = PyUnicode_InternFromString("fd");
    name_buffered = PyUnicode_InternFromString("buffered");
    if (!name_seq || !name_alive || !name_write || !name_fd || !name_buffered)
        return NULL;
    return PyModule_Create(&wheel_module);
}
