/* Messages and mailboxes as C types (lunatic_mp.vm.mailbox re-exports them as Message and Mailbox).
 *
 * The C host functions of lunatic::message (message.c) read and write a message's fields and take
 * from a mailbox without a Python attribute lookup or call; Python code (signals, native processes,
 * frames from other workers) uses the same objects through the same attributes as before. Neither
 * type needs wasmtime: importing them does not load the library.
 *
 * A Message is not tracked by the cyclic garbage collector: what it holds (bytes, modules, sockets)
 * never refers back to a message, and untracked objects are smaller and cheaper to make, which
 * matters at one per message. A Mailbox is tracked: its on_take hook refers back to its process.
 */
#include "core.h"

#include <string.h>

static PyObject *lmp_kinds;   /* tuple: Kind members by code */
static PyObject *lmp_reasons; /* tuple: DeathReason members by code */

/* --- Message ------------------------------------------------------------------------------- */

static lmp_message *lmp_message_alloc(void) {
    lmp_message *message = PyObject_New(lmp_message, &lmp_MessageType);
    if (message == NULL)
        return NULL;
    message->tag = 0;
    message->pid = 0;
    message->kind = LMP_KIND_DATA;
    message->reason = 0;
    message->cursor = 0;
    message->data = NULL;
    message->modules = NULL;
    message->streams = NULL;
    return message;
}

lmp_message *lmp_message_new(int64_t tag, PyObject *data) {
    lmp_message *message = lmp_message_alloc();
    if (message == NULL)
        return NULL;
    message->tag = tag;
    message->data = Py_NewRef(data);
    return message;
}

static void lmp_message_dealloc(lmp_message *self) {
    Py_XDECREF(self->data);
    Py_XDECREF(self->modules);
    Py_XDECREF(self->streams);
    PyObject_Free(self);
}

/* An i64 from a Python int: any value of i64 or of u64 (taken as its bits, as the ABI does). */
static int lmp_int64(PyObject *value, int64_t *out, const char *what) {
    if (!PyLong_Check(value)) {
        PyErr_Format(PyExc_TypeError, "Message.%s must be an int, got %s", what, Py_TYPE(value)->tp_name);
        return -1;
    }
    int overflow = 0;
    long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow > 0) {
        unsigned long long bits = PyLong_AsUnsignedLongLong(value);
        if (bits == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Format(PyExc_OverflowError, "Message.%s does not fit 64 bits", what);
            return -1;
        }
        number = (long long)bits;
    } else if (overflow < 0) {
        PyErr_Format(PyExc_OverflowError, "Message.%s does not fit 64 bits", what);
        return -1;
    } else if (number == -1 && PyErr_Occurred()) {
        return -1;
    }
    *out = number;
    return 0;
}

static int lmp_code(PyObject *value, PyObject *members, int32_t *out, const char *what) {
    long code = PyLong_AsLong(value);
    if (code == -1 && PyErr_Occurred())
        return -1;
    if (code < 0 || code >= PyTuple_GET_SIZE(members)) {
        PyErr_Format(PyExc_ValueError, "Message.%s: %ld is not a valid code", what, code);
        return -1;
    }
    *out = (int32_t)code;
    return 0;
}

static int lmp_set_data(lmp_message *self, PyObject *data) {
    if (PyBytes_Check(data) || PyByteArray_Check(data)) {
        Py_XSETREF(self->data, Py_NewRef(data));
        return 0;
    }
    PyObject *copy = PyBytes_FromObject(data);
    if (copy == NULL)
        return -1;
    Py_XSETREF(self->data, copy);
    return 0;
}

static PyObject *lmp_message_tp_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    (void)type;
    static char *keywords[] = {"tag", "data", "kind", "pid", "reason", "modules", NULL};
    PyObject *tag, *data = NULL, *kind = NULL, *pid = NULL, *reason = NULL, *modules = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|OOOOO:Message", keywords, &tag, &data, &kind, &pid, &reason,
                                     &modules))
        return NULL;
    lmp_message *self = lmp_message_alloc();
    if (self == NULL)
        return NULL;
    if (lmp_int64(tag, &self->tag, "tag") < 0 || (pid != NULL && lmp_int64(pid, &self->pid, "pid") < 0) ||
        (kind != NULL && lmp_code(kind, lmp_kinds, &self->kind, "kind") < 0) ||
        (reason != NULL && lmp_code(reason, lmp_reasons, &self->reason, "reason") < 0))
        goto fail;
    if (data == NULL) {
        self->data = PyBytes_FromStringAndSize(NULL, 0);
        if (self->data == NULL)
            goto fail;
    } else if (lmp_set_data(self, data) < 0) {
        goto fail;
    }
    if (modules != Py_None) {
        if (!PyList_Check(modules)) {
            PyErr_SetString(PyExc_TypeError, "Message.modules must be a list or None");
            goto fail;
        }
        self->modules = Py_NewRef(modules);
    }
    return (PyObject *)self;
fail:
    Py_DECREF(self);
    return NULL;
}

static PyObject *lmp_message_get_tag(lmp_message *self, void *closure) {
    (void)closure;
    return PyLong_FromLongLong(self->tag);
}

static int lmp_message_set_tag(lmp_message *self, PyObject *value, void *closure) {
    (void)closure;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete Message.tag");
        return -1;
    }
    return lmp_int64(value, &self->tag, "tag");
}

static PyObject *lmp_message_get_pid(lmp_message *self, void *closure) {
    (void)closure;
    return PyLong_FromLongLong(self->pid);
}

static int lmp_message_set_pid(lmp_message *self, PyObject *value, void *closure) {
    (void)closure;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete Message.pid");
        return -1;
    }
    return lmp_int64(value, &self->pid, "pid");
}

static PyObject *lmp_message_get_kind(lmp_message *self, void *closure) {
    (void)closure;
    return Py_NewRef(PyTuple_GET_ITEM(lmp_kinds, self->kind));
}

static int lmp_message_set_kind(lmp_message *self, PyObject *value, void *closure) {
    (void)closure;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete Message.kind");
        return -1;
    }
    return lmp_code(value, lmp_kinds, &self->kind, "kind");
}

static PyObject *lmp_message_get_reason(lmp_message *self, void *closure) {
    (void)closure;
    return Py_NewRef(PyTuple_GET_ITEM(lmp_reasons, self->reason));
}

static int lmp_message_set_reason(lmp_message *self, PyObject *value, void *closure) {
    (void)closure;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete Message.reason");
        return -1;
    }
    return lmp_code(value, lmp_reasons, &self->reason, "reason");
}

static PyObject *lmp_message_get_cursor(lmp_message *self, void *closure) {
    (void)closure;
    return PyLong_FromSsize_t(self->cursor);
}

static int lmp_message_set_cursor(lmp_message *self, PyObject *value, void *closure) {
    (void)closure;
    Py_ssize_t cursor = value != NULL ? PyLong_AsSsize_t(value) : -1;
    if (cursor == -1 && (value == NULL || PyErr_Occurred())) {
        if (value == NULL)
            PyErr_SetString(PyExc_AttributeError, "cannot delete Message.cursor");
        return -1;
    }
    self->cursor = cursor < 0 ? 0 : cursor;
    return 0;
}

static PyObject *lmp_message_get_data(lmp_message *self, void *closure) {
    (void)closure;
    return Py_NewRef(self->data);
}

static int lmp_message_set_data(lmp_message *self, PyObject *value, void *closure) {
    (void)closure;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete Message.data");
        return -1;
    }
    return lmp_set_data(self, value);
}

static PyObject *lmp_message_get_modules(lmp_message *self, void *closure) {
    (void)closure;
    if (self->modules == NULL && (self->modules = PyList_New(0)) == NULL)
        return NULL;
    return Py_NewRef(self->modules);
}

static int lmp_message_set_modules(lmp_message *self, PyObject *value, void *closure) {
    (void)closure;
    if (value != NULL && value != Py_None && !PyList_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "Message.modules must be a list");
        return -1;
    }
    Py_XSETREF(self->modules, value == NULL || value == Py_None ? NULL : Py_NewRef(value));
    return 0;
}

static PyObject *lmp_message_get_streams(lmp_message *self, void *closure) {
    (void)closure;
    return Py_NewRef(self->streams != NULL ? self->streams : Py_None);
}

static int lmp_message_set_streams(lmp_message *self, PyObject *value, void *closure) {
    (void)closure;
    Py_XSETREF(self->streams, value == NULL || value == Py_None ? NULL : Py_NewRef(value));
    return 0;
}

static PyGetSetDef lmp_message_getset[] = {
    {"tag", (getter)lmp_message_get_tag, (setter)lmp_message_set_tag, "The tag (an i64).", NULL},
    {"pid", (getter)lmp_message_get_pid, (setter)lmp_message_set_pid,
     "The sender; for a death notice, the process that died.", NULL},
    {"kind", (getter)lmp_message_get_kind, (setter)lmp_message_set_kind, "Kind: data or a death notice.", NULL},
    {"reason", (getter)lmp_message_get_reason, (setter)lmp_message_set_reason, "A LinkDied's DeathReason.", NULL},
    {"cursor", (getter)lmp_message_get_cursor, (setter)lmp_message_set_cursor, "Where read_data reads next.",
     NULL},
    {"data", (getter)lmp_message_get_data, (setter)lmp_message_set_data,
     "The bytes: a bytearray while the guest writes it, bytes once sent.", NULL},
    {"modules", (getter)lmp_message_get_modules, (setter)lmp_message_set_modules, "Modules attached (a list).",
     NULL},
    {"streams", (getter)lmp_message_get_streams, (setter)lmp_message_set_streams,
     "TCP streams attached (lunatic::networking), or None.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyObject *lmp_message_repr(lmp_message *self) {
    PyObject *kind = PyObject_GetAttrString(PyTuple_GET_ITEM(lmp_kinds, self->kind), "name");
    if (kind == NULL)
        return NULL;
    PyObject *text = PyUnicode_FromFormat("Message(tag=%lld, kind=%U, pid=%lld, %zd bytes)", (long long)self->tag,
                                          kind, (long long)self->pid, PyObject_Length(self->data));
    Py_DECREF(kind);
    return text;
}

static PyObject *lmp_message_link_died(PyObject *cls, PyObject *args) {
    (void)cls;
    long long pid, tag;
    int reason;
    if (!PyArg_ParseTuple(args, "LLi:link_died", &pid, &tag, &reason))
        return NULL;
    if (reason < 0 || reason >= PyTuple_GET_SIZE(lmp_reasons)) {
        PyErr_Format(PyExc_ValueError, "Message.link_died: %d is not a DeathReason", reason);
        return NULL;
    }
    PyObject *empty = PyBytes_FromStringAndSize(NULL, 0);
    lmp_message *message = empty != NULL ? lmp_message_new(tag, empty) : NULL;
    Py_XDECREF(empty);
    if (message != NULL) {
        message->kind = LMP_KIND_LINK_DIED;
        message->pid = pid;
        message->reason = reason;
    }
    return (PyObject *)message;
}

static PyObject *lmp_message_process_died(PyObject *cls, PyObject *pid_obj) {
    (void)cls;
    long long pid = PyLong_AsLongLong(pid_obj);
    if (pid == -1 && PyErr_Occurred())
        return NULL;
    PyObject *empty = PyBytes_FromStringAndSize(NULL, 0);
    lmp_message *message = empty != NULL ? lmp_message_new(0, empty) : NULL;
    Py_XDECREF(empty);
    if (message != NULL) {
        message->kind = LMP_KIND_PROCESS_DIED;
        message->pid = pid;
    }
    return (PyObject *)message;
}

static PyMethodDef lmp_message_methods[] = {
    {"link_died", lmp_message_link_died, METH_VARARGS | METH_CLASS,
     "link_died(pid, tag, reason): the notice that linked process pid died."},
    {"process_died", lmp_message_process_died, METH_O | METH_CLASS,
     "process_died(pid): the notice that monitored process pid died."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject lmp_MessageType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "lunatic_mp.vm.mailbox.Message",
    .tp_doc = PyDoc_STR("Message(tag, data=b'', kind=Kind.DATA, pid=0, reason=DeathReason.NORMAL, modules=None)\n\n"
                        "A message: data with a tag and attached resources, or a death notice (pid: the\n"
                        "process that died; empty data). For data messages pid is the sender."),
    .tp_basicsize = sizeof(lmp_message),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = lmp_message_tp_new,
    .tp_dealloc = (destructor)lmp_message_dealloc,
    .tp_repr = (reprfunc)lmp_message_repr,
    .tp_getset = lmp_message_getset,
    .tp_methods = lmp_message_methods,
};

/* --- Mailbox ------------------------------------------------------------------------------- */

static lmp_message **lmp_slot(lmp_mailbox *box, Py_ssize_t index) {
    return &box->items[(box->head + index) % box->capacity];
}

int lmp_mailbox_put(lmp_mailbox *box, lmp_message *message) {
    if (box->count == box->capacity) {
        Py_ssize_t capacity = box->capacity ? box->capacity * 2 : 8;
        lmp_message **items = PyMem_Malloc((size_t)capacity * sizeof(*items));
        if (items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t i = 0; i < box->count; i++)
            items[i] = *lmp_slot(box, i);
        PyMem_Free(box->items);
        box->items = items;
        box->head = 0;
        box->capacity = capacity;
    }
    Py_INCREF(message);
    box->items[(box->head + box->count) % box->capacity] = message;
    box->count++;
    return 0;
}

static int lmp_wanted(int64_t tag, const int64_t *tags, Py_ssize_t count, int any) {
    if (any)
        return 1;
    for (Py_ssize_t i = 0; i < count; i++)
        if (tags[i] == tag)
            return 1;
    return 0;
}

/* Remove and return the oldest message at index >= start whose tag is wanted (a new reference),
 * calling on_take after; NULL with no exception when there is none, NULL with one on error. */
lmp_message *lmp_mailbox_take(lmp_mailbox *box, const int64_t *tags, Py_ssize_t count, int any, Py_ssize_t start) {
    for (Py_ssize_t index = start < 0 ? 0 : start; index < box->count; index++) {
        lmp_message *message = *lmp_slot(box, index);
        if (!lmp_wanted(message->tag, tags, count, any))
            continue;
        if (index == 0) {
            box->head = (box->head + 1) % box->capacity;
        } else {
            for (Py_ssize_t i = index; i + 1 < box->count; i++)
                *lmp_slot(box, i) = *lmp_slot(box, i + 1);
        }
        box->count--;
        if (box->on_take != NULL) {
            PyObject *result = PyObject_CallNoArgs(box->on_take);
            if (result == NULL) {
                Py_DECREF(message);
                return NULL;
            }
            Py_DECREF(result);
        }
        return message;
    }
    return NULL;
}

int lmp_mailbox_wants(lmp_mailbox *box, int64_t tag) {
    return box->receive_start >= 0 && lmp_wanted(tag, box->tags, box->ntags, box->any_tag);
}

/* Tags from Python (None: any; else an iterable of ints) into an array; *any set for None. */
static int lmp_read_tags(PyObject *value, int64_t **tags, Py_ssize_t *count, int *any) {
    *tags = NULL;
    *count = 0;
    *any = value == Py_None;
    if (*any)
        return 0;
    PyObject *items = PySequence_Fast(value, "tags must be None or a sequence of ints");
    if (items == NULL)
        return -1;
    Py_ssize_t size = PySequence_Fast_GET_SIZE(items);
    *tags = PyMem_Malloc((size_t)(size ? size : 1) * sizeof(int64_t));
    if (*tags == NULL) {
        Py_DECREF(items);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < size; i++) {
        int64_t tag;
        if (lmp_int64(PySequence_Fast_GET_ITEM(items, i), &tag, "tag") < 0) {
            PyMem_Free(*tags);
            *tags = NULL;
            Py_DECREF(items);
            return -1;
        }
        (*tags)[i] = tag;
    }
    *count = size;
    Py_DECREF(items);
    return 0;
}

void lmp_mailbox_set_wait(lmp_mailbox *box, int64_t *tags, Py_ssize_t count, int any, Py_ssize_t start) {
    box->waiter = NULL; /* a C receive names itself after arming the wait (message.c) */
    PyMem_Free(box->tags);
    box->tags = tags;
    box->ntags = count;
    box->any_tag = any;
    box->receive_start = start;
}

static PyObject *lmp_mailbox_tp_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    (void)args;
    (void)kwargs;
    lmp_mailbox *self = (lmp_mailbox *)type->tp_alloc(type, 0);
    if (self != NULL)
        self->receive_start = -1;
    return (PyObject *)self;
}

static int lmp_mailbox_traverse(lmp_mailbox *self, visitproc visit, void *arg) {
    for (Py_ssize_t i = 0; i < self->count; i++)
        Py_VISIT(*lmp_slot(self, i));
    Py_VISIT(self->on_take);
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static int lmp_mailbox_clear(lmp_mailbox *self) {
    while (self->count > 0) {
        lmp_message *message = *lmp_slot(self, 0);
        self->head = (self->head + 1) % self->capacity;
        self->count--;
        Py_DECREF(message);
    }
    Py_CLEAR(self->on_take);
    return 0;
}

static void lmp_mailbox_dealloc(lmp_mailbox *self) {
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    lmp_mailbox_clear(self);
    PyMem_Free(self->items);
    PyMem_Free(self->tags);
    type->tp_free((PyObject *)self);
    if (type->tp_flags & Py_TPFLAGS_HEAPTYPE)
        Py_DECREF(type);
}

static Py_ssize_t lmp_mailbox_length(lmp_mailbox *self) { return self->count; }

static PyObject *lmp_mailbox_py_put(lmp_mailbox *self, PyObject *message) {
    if (!Py_IS_TYPE(message, &lmp_MessageType)) {
        PyErr_Format(PyExc_TypeError, "Mailbox.put takes a Message, got %s", Py_TYPE(message)->tp_name);
        return NULL;
    }
    if (lmp_mailbox_put(self, (lmp_message *)message) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *lmp_mailbox_py_take(lmp_mailbox *self, PyObject *args) {
    PyObject *tags_obj = Py_None;
    Py_ssize_t start = 0;
    if (!PyArg_ParseTuple(args, "|On:take", &tags_obj, &start))
        return NULL;
    int64_t *tags;
    Py_ssize_t count;
    int any;
    if (lmp_read_tags(tags_obj, &tags, &count, &any) < 0)
        return NULL;
    lmp_message *message = lmp_mailbox_take(self, tags, count, any, start);
    PyMem_Free(tags);
    if (message == NULL && !PyErr_Occurred())
        Py_RETURN_NONE;
    return (PyObject *)message;
}

static PyObject *lmp_mailbox_py_wants(lmp_mailbox *self, PyObject *message) {
    if (!Py_IS_TYPE(message, &lmp_MessageType)) {
        PyErr_Format(PyExc_TypeError, "Mailbox.wants takes a Message, got %s", Py_TYPE(message)->tp_name);
        return NULL;
    }
    return PyBool_FromLong(lmp_mailbox_wants(self, ((lmp_message *)message)->tag));
}

static PyObject *lmp_mailbox_py_wait(lmp_mailbox *self, PyObject *args) {
    PyObject *tags_obj;
    Py_ssize_t start;
    if (!PyArg_ParseTuple(args, "On:wait", &tags_obj, &start))
        return NULL;
    int64_t *tags;
    Py_ssize_t count;
    int any;
    if (lmp_read_tags(tags_obj, &tags, &count, &any) < 0)
        return NULL;
    lmp_mailbox_set_wait(self, tags, count, any, start < 0 ? 0 : start);
    Py_RETURN_NONE;
}

static PyObject *lmp_mailbox_py_stop_waiting(lmp_mailbox *self, PyObject *unused) {
    (void)unused;
    lmp_mailbox_set_wait(self, NULL, 0, 0, -1);
    Py_RETURN_NONE;
}

static PyObject *lmp_mailbox_iter(lmp_mailbox *self) {
    PyObject *items = PyList_New(self->count);
    if (items == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < self->count; i++)
        PyList_SET_ITEM(items, i, Py_NewRef((PyObject *)*lmp_slot(self, i)));
    PyObject *iterator = PyObject_GetIter(items);
    Py_DECREF(items);
    return iterator;
}

static PyObject *lmp_mailbox_get_on_take(lmp_mailbox *self, void *closure) {
    (void)closure;
    return Py_NewRef(self->on_take != NULL ? self->on_take : Py_None);
}

static int lmp_mailbox_set_on_take(lmp_mailbox *self, PyObject *value, void *closure) {
    (void)closure;
    Py_XSETREF(self->on_take, value == NULL || value == Py_None ? NULL : Py_NewRef(value));
    return 0;
}

static PyObject *lmp_mailbox_get_receive_start(lmp_mailbox *self, void *closure) {
    (void)closure;
    return PyLong_FromSsize_t(self->receive_start);
}

static PyObject *lmp_mailbox_get_bound(lmp_mailbox *self, void *closure) {
    (void)closure;
    return PyLong_FromSsize_t(self->bound);
}

static int lmp_mailbox_set_bound(lmp_mailbox *self, PyObject *value, void *closure) {
    (void)closure;
    Py_ssize_t bound = value != NULL ? PyLong_AsSsize_t(value) : -1;
    if (bound < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "Mailbox.bound must be an int >= 0");
        return -1;
    }
    self->bound = bound;
    return 0;
}

static PyGetSetDef lmp_mailbox_getset[] = {
    {"bound", (getter)lmp_mailbox_get_bound, (setter)lmp_mailbox_set_bound,
     "The process's max_mailbox (0: unbounded): the C send leaves a put that reaches it to the engine.", NULL},
    {"on_take", (getter)lmp_mailbox_get_on_take, (setter)lmp_mailbox_set_on_take,
     "Called after each take that removed a message, while set (senders wait for room).", NULL},
    {"receive_start", (getter)lmp_mailbox_get_receive_start, NULL,
     "The index a suspended receive searches from, or -1 when none waits (see wait).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyObject *lmp_mailbox_matches(PyObject *unused, PyObject *args) {
    (void)unused;
    PyObject *message, *tags;
    if (!PyArg_ParseTuple(args, "OO:matches", &message, &tags))
        return NULL;
    if (tags == Py_None)
        Py_RETURN_TRUE;
    PyObject *tag = PyObject_GetAttrString(message, "tag");
    if (tag == NULL)
        return NULL;
    int found = PySequence_Contains(tags, tag);
    Py_DECREF(tag);
    return found < 0 ? NULL : PyBool_FromLong(found);
}

static PyMethodDef lmp_mailbox_methods[] = {
    {"put", (PyCFunction)lmp_mailbox_py_put, METH_O, "put(message): append a message."},
    {"take", (PyCFunction)lmp_mailbox_py_take, METH_VARARGS,
     "take(tags=None, start=0): remove the oldest message at index >= start whose tag is in tags\n"
     "(any if None), or return None."},
    {"wait", (PyCFunction)lmp_mailbox_py_wait, METH_VARARGS,
     "wait(tags, start): a receive suspends for a message tagged in tags (any if None) from index\n"
     "start: wants() tells which message wakes it."},
    {"stop_waiting", (PyCFunction)lmp_mailbox_py_stop_waiting, METH_NOARGS, "The receive waits no more."},
    {"wants", (PyCFunction)lmp_mailbox_py_wants, METH_O,
     "wants(message): whether a suspended receive takes this message."},
    {"matches", lmp_mailbox_matches, METH_VARARGS | METH_STATIC,
     "matches(message, tags): whether tags (None: any) admit the message."},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods lmp_mailbox_sequence = {
    .sq_length = (lenfunc)lmp_mailbox_length,
};

PyTypeObject lmp_MailboxType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "lunatic_mp.vm.mailbox.Mailbox",
    .tp_doc = PyDoc_STR("Mailbox(): messages in arrival order; take removes the oldest one whose tag is\n"
                        "wanted. on_take, while set, is called after each take that removed a message."),
    .tp_basicsize = sizeof(lmp_mailbox),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = lmp_mailbox_tp_new,
    .tp_dealloc = (destructor)lmp_mailbox_dealloc,
    .tp_traverse = (traverseproc)lmp_mailbox_traverse,
    .tp_clear = (inquiry)lmp_mailbox_clear,
    .tp_iter = (getiterfunc)lmp_mailbox_iter,
    .tp_as_sequence = &lmp_mailbox_sequence,
    .tp_getset = lmp_mailbox_getset,
    .tp_methods = lmp_mailbox_methods,
};

const char lmp_mailbox_types_doc[] =
    "mailbox_types(kinds, reasons) -> tuple[type, type]\n\n"
    "Message and Mailbox, given the Kind and DeathReason members by code (lunatic_mp.vm.mailbox).";

PyObject *lmp_mailbox_types(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2 || !PyTuple_CheckExact(args[0]) || !PyTuple_CheckExact(args[1]) ||
        PyTuple_GET_SIZE(args[0]) != 3 || PyTuple_GET_SIZE(args[1]) != 3) {
        PyErr_SetString(PyExc_TypeError, "mailbox_types(kinds, reasons): two tuples of 3 members");
        return NULL;
    }
    Py_XSETREF(lmp_kinds, Py_NewRef(args[0]));
    Py_XSETREF(lmp_reasons, Py_NewRef(args[1]));
    return PyTuple_Pack(2, (PyObject *)&lmp_MessageType, (PyObject *)&lmp_MailboxType);
}

int lmp_mailbox_ready(void) { return lmp_kinds != NULL; }
