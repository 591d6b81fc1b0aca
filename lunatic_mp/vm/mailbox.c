/* The mailbox as a C type (lunatic_mp.vm.mailbox re-exports it as Mailbox; its messages are the
 * Message type of message_type.c).
 *
 * The C host functions of lunatic::message (message.c, receive.c) put into and take from a mailbox
 * without a Python attribute lookup or call; Python code (signals, native processes, frames from
 * other workers) uses the same object through the same methods. It needs no wasmtime. A Mailbox is
 * tracked by the cyclic garbage collector: its on_take hook refers back to its process.
 */
#include "core.h"

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
        if (lmp_message_int64(PySequence_Fast_GET_ITEM(items, i), &tag, "tag") < 0) {
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
