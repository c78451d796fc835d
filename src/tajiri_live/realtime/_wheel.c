/* The fan-out's innermost loop in C: a socket's way out (Wire), its place in a group (Slot),
   and the loop that writes a slice of a group's sockets (write_slice).

   It does what `slots.py`'s Python classes do, with one difference: a Wire on uvloop's plain
   TCP transport sends on the descriptor with one `send()` while the transport holds nothing,
   instead of going through the transport's `write`. At 10,000 sockets a turn the Python loop
   and the transport's bookkeeping were about a fifth of the fan-out's CPU, and `write()` on a
   socket pays for the file layer that `send()` skips (docs/benchmarks.md). Whatever `send()`
   does not take (a full socket buffer, an error) goes to the transport's own `write`, which
   queues it or meets the error its own way, so the transport stays the owner of what is
   queued and of the connection's end.

   Order. Every write of a socket goes through its one Wire (the hub's frames, the socket's
   own replies, its close). The Wire remembers when it last handed bytes to the transport
   (`queued`); until the transport says its queue is empty again, later bytes go through the
   transport behind them. So the transport is asked only after it was given something, not
   before every send. (uvloop holds what `write` is given at least until its loop's turn ends,
   so "given" means "queued" until asked.)

   The descriptor. A Wire sends on it only while `fd` >= 0; the connection calls `forget()`
   in connection_lost, and uvloop closes a transport's socket only after that call, so the
   number never belongs to another connection when it is used. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <errno.h>
#include <sys/socket.h>

/* --- Wire -------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    int fd;             /* the descriptor to send on directly, or -1: always `write` */
    char queued;        /* bytes went to the transport since it was last seen empty */
    PyObject *write;    /* the transport's bound write */
    PyObject *buffered; /* the transport's bound get_write_buffer_size */
} Wire;

static int
Wire_traverse(Wire *self, visitproc visit, void *arg)
{
    Py_VISIT(self->write);
    Py_VISIT(self->buffered);
    return 0;
}

static int
Wire_clear(Wire *self)
{
    Py_CLEAR(self->write);
    Py_CLEAR(self->buffered);
    return 0;
}

static void
Wire_dealloc(Wire *self)
{
    PyObject_GC_UnTrack(self);
    Wire_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
Wire_init(Wire *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"write", "buffered", "fd", NULL};
    PyObject *write, *buffered;
    int fd = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|i", kwlist, &write, &buffered, &fd))
        return -1;
    Py_INCREF(write);
    Py_XSETREF(self->write, write);
    Py_INCREF(buffered);
    Py_XSETREF(self->buffered, buffered);
    self->fd = fd;
    self->queued = 0;
    return 0;
}

/* 1: the transport holds nothing, a direct send keeps the order; 0: through the transport;
   -1: an exception. */
static int
wire_may_send(Wire *wire)
{
    if (wire->fd < 0)
        return 0;
    if (!wire->queued)
        return 1;
    PyObject *size = PyObject_CallNoArgs(wire->buffered);
    if (size == NULL)
        return -1;
    Py_ssize_t queued = PyLong_AsSsize_t(size);
    Py_DECREF(size);
    if (queued == -1 && PyErr_Occurred())
        return -1;
    if (queued != 0)
        return 0;
    wire->queued = 0;
    return 1;
}

/* Write `data` (bytes) to the socket: 0, or -1 on an exception. */
static int
wire_send(Wire *wire, PyObject *data)
{
    Py_ssize_t sent = 0;
    int direct = wire_may_send(wire);
    if (direct < 0)
        return -1;
    if (direct) {
        const char *buffer = PyBytes_AS_STRING(data);
        Py_ssize_t size = PyBytes_GET_SIZE(data);
        ssize_t written;
        do {
            written = send(wire->fd, buffer, (size_t)size, MSG_DONTWAIT | MSG_NOSIGNAL);
        } while (written < 0 && errno == EINTR);
        if (written == size)
            return 0;
        if (written > 0)
            sent = written;
        /* EAGAIN or an error: the transport's write queues the rest or closes */
    }
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
    wire->queued = 1;
    PyObject *result = PyObject_CallOneArg(wire->write, rest);
    Py_DECREF(rest);
    if (result == NULL)
        return -1;
    Py_DECREF(result);
    return 0;
}

static PyObject *
Wire_send(Wire *self, PyObject *data)
{
    if (!PyBytes_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "send(data: bytes)");
        return NULL;
    }
    if (PyBytes_GET_SIZE(data) == 0)
        Py_RETURN_NONE;
    if (wire_send(self, data) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
Wire_forget(Wire *self, PyObject *Py_UNUSED(ignored))
{
    self->fd = -1;
    Py_RETURN_NONE;
}

static PyMethodDef Wire_methods[] = {
    {"send", (PyCFunction)Wire_send, METH_O, "Write bytes to the socket, in order."},
    {"forget", (PyCFunction)Wire_forget, METH_NOARGS,
     "Never send on the descriptor again (the connection is lost)."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Wire_members[] = {
    {"fd", T_INT, offsetof(Wire, fd), READONLY, "the descriptor sent on directly, or -1"},
    {"queued", T_BOOL, offsetof(Wire, queued), READONLY,
     "bytes went to the transport since it was last seen empty"},
    {NULL},
};

static PyTypeObject WireType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tajiri_live.realtime._wheel.Wire",
    .tp_doc = PyDoc_STR("Wire(write, buffered, fd=-1): one socket's way out"),
    .tp_basicsize = sizeof(Wire),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Wire_init,
    .tp_dealloc = (destructor)Wire_dealloc,
    .tp_traverse = (traverseproc)Wire_traverse,
    .tp_clear = (inquiry)Wire_clear,
    .tp_methods = Wire_methods,
    .tp_members = Wire_members,
};

/* --- Slot -------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    Py_ssize_t seq; /* the first frame of the group's log this socket has not been written */
    char alive;     /* 0 once it left: turns already planned skip it */
    Wire *wire;
} Slot;

static int
Slot_traverse(Slot *self, visitproc visit, void *arg)
{
    Py_VISIT(self->wire);
    return 0;
}

static int
Slot_clear(Slot *self)
{
    Py_CLEAR(self->wire);
    return 0;
}

static void
Slot_dealloc(Slot *self)
{
    PyObject_GC_UnTrack(self);
    Slot_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
Slot_init(Slot *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"wire", "seq", NULL};
    PyObject *wire;
    Py_ssize_t seq;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!n", kwlist, &WireType, &wire, &seq))
        return -1;
    Py_INCREF(wire);
    Py_XSETREF(self->wire, (Wire *)wire);
    self->seq = seq;
    self->alive = 1;
    return 0;
}

static PyMemberDef Slot_members[] = {
    {"seq", T_PYSSIZET, offsetof(Slot, seq), 0,
     "the first frame of the log this socket has not been written"},
    {"alive", T_BOOL, offsetof(Slot, alive), 0, "False once the socket left"},
    {"wire", T_OBJECT, offsetof(Slot, wire), READONLY, "the socket's way out"},
    {NULL},
};

static PyTypeObject SlotType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tajiri_live.realtime._wheel.Slot",
    .tp_doc = PyDoc_STR("Slot(wire, seq): one socket's place in one group"),
    .tp_basicsize = sizeof(Slot),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Slot_init,
    .tp_dealloc = (destructor)Slot_dealloc,
    .tp_traverse = (traverseproc)Slot_traverse,
    .tp_clear = (inquiry)Slot_clear,
    .tp_members = Slot_members,
};

/* --- write_slice ------------------------------------------------------------------------- */

/* The frames from `seq` on, as a new reference to (bytes, count). */
static PyObject *
owed_from(PyObject *since, Py_ssize_t seq)
{
    PyObject *start = PyLong_FromSsize_t(seq);
    if (start == NULL)
        return NULL;
    PyObject *owed = PyObject_CallOneArg(since, start);
    Py_DECREF(start);
    if (owed == NULL)
        return NULL;
    if (!PyTuple_Check(owed) || PyTuple_GET_SIZE(owed) != 2
        || !PyBytes_Check(PyTuple_GET_ITEM(owed, 0)) || !PyLong_Check(PyTuple_GET_ITEM(owed, 1))) {
        Py_DECREF(owed);
        PyErr_SetString(PyExc_TypeError, "since() must return (bytes, int)");
        return NULL;
    }
    return owed;
}

/* The frames owed from `seq`: one call of `since` per distinct `seq` in a slice. The slots of
   a slice mostly owe from the same place (they were all written up to the last turn's head),
   so the last answer is kept beside the dict. A borrowed reference, or NULL. */
static PyObject *
owed_cached(PyObject *cache, PyObject *since, Py_ssize_t seq, Py_ssize_t *last_seq,
            PyObject **last_owed)
{
    if (*last_owed != NULL && *last_seq == seq)
        return *last_owed;
    PyObject *key = PyLong_FromSsize_t(seq);
    if (key == NULL)
        return NULL;
    PyObject *owed = PyDict_GetItemWithError(cache, key); /* borrowed */
    if (owed == NULL && !PyErr_Occurred()) {
        owed = owed_from(since, seq);
        if (owed != NULL) {
            int stored = PyDict_SetItem(cache, key, owed);
            Py_DECREF(owed); /* the dict holds it */
            if (stored < 0)
                owed = NULL;
        }
    }
    Py_DECREF(key);
    if (owed != NULL) {
        *last_seq = seq;
        *last_owed = owed;
    }
    return owed;
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
        PyErr_SetString(PyExc_TypeError, "write_slice(slots: list[Slot], head: int, since)");
        return NULL;
    }
    PyObject *slots = args[0], *since = args[2];
    Py_ssize_t head = PyLong_AsSsize_t(args[1]);
    if (head == -1 && PyErr_Occurred())
        return NULL;
    PyObject *cache = PyDict_New();
    if (cache == NULL)
        return NULL;
    Py_ssize_t frames = 0, writes = 0, oldest = head, last_seq = -1;
    PyObject *last_owed = NULL; /* borrowed from the cache */
    /* The list is read by index each time: a callback may not change it, but if one did, this
       would still read only what is there. */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(slots); i++) {
        PyObject *item = PyList_GET_ITEM(slots, i);
        if (Py_TYPE(item) != &SlotType) {
            PyErr_SetString(PyExc_TypeError, "write_slice() takes Slot objects");
            goto fail;
        }
        Slot *slot = (Slot *)item;
        Py_ssize_t seq = slot->seq;
        if (seq >= head || !slot->alive)
            continue;
        Py_INCREF(item); /* a callback below may drop the list's reference */
        PyObject *owed = owed_cached(cache, since, seq, &last_seq, &last_owed);
        if (owed == NULL) {
            Py_DECREF(item);
            goto fail;
        }
        slot->seq = head;
        Py_ssize_t count = PyLong_AsSsize_t(PyTuple_GET_ITEM(owed, 1));
        if (count == -1 && PyErr_Occurred()) {
            Py_DECREF(item);
            goto fail;
        }
        if (count > 0) {
            Py_INCREF(owed); /* the write below runs Python code */
            int failed = wire_send(slot->wire, PyTuple_GET_ITEM(owed, 0)) < 0;
            Py_DECREF(owed);
            if (failed) {
                Py_DECREF(item);
                goto fail;
            }
            frames += count;
            writes += 1;
            if (seq < oldest)
                oldest = seq;
        }
        Py_DECREF(item);
    }
    Py_DECREF(cache);
    return Py_BuildValue("nnn", frames, writes, oldest);
fail:
    Py_DECREF(cache);
    return NULL;
}

static PyMethodDef wheel_methods[] = {
    {"write_slice", (PyCFunction)(void (*)(void))write_slice, METH_FASTCALL, write_slice_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef wheel_module = {
    PyModuleDef_HEAD_INIT, "_wheel", "The fan-out's innermost loop in C (see slots.py).", -1,
    wheel_methods,
};

PyMODINIT_FUNC
PyInit__wheel(void)
{
    PyObject *module = PyModule_Create(&wheel_module);
    if (module == NULL)
        return NULL;
    if (PyModule_AddType(module, &WireType) < 0 || PyModule_AddType(module, &SlotType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
