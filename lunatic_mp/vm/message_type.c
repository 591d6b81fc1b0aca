/* The Message C type (lunatic_mp.vm.mailbox re-exports it as Message).
 *
 * A message is the one object made per message on the hot path, and a slow receiver's backlog is
 * made of them, so the layout is chosen for memory: a 40-byte header (tag, sender, cursor, size,
 * kind, reason) and then the data itself, in one allocation. A queued 8-byte message takes one
 * 48-byte block, where a header object and a bytes object took 128 bytes.
 *
 * A message that must hold Python objects keeps an lmp_message_extras where the data would be
 * ("external"): the bytearray a guest writes into (create_data's draft), modules or streams
 * attached, or data over LMP_INLINE_MAX bytes, kept as a shared bytes object rather than copied.
 * An inline message's data never changes, and it carries no resources: `data` reads as a new
 * bytes object, `modules` as a new empty list, and `extensible()` gives an external copy for code
 * that attaches something (push_module on a received message, lunatic_mp/vm/host/).
 *
 * Messages are not tracked by the cyclic garbage collector: what one holds (bytes, modules,
 * sockets) never refers back to a message, and untracked objects are smaller and cheaper to make.
 * The type needs no wasmtime: importing it does not load the library.
 */
#include "core.h"

#include <string.h>

static PyObject *lmp_kinds;   /* tuple: Kind members by code */
static PyObject *lmp_reasons; /* tuple: DeathReason members by code */

static const char LMP_INLINE_FIXED[] =
    "holds its data inline (a sent or received message without resources, up to 64 KiB), which "
    "never changes: call extensible() for a copy that can";

static lmp_message *lmp_message_alloc(size_t body, int external) {
    lmp_message *message = PyObject_Malloc(sizeof(lmp_message) + body);
    if (message == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    PyObject_Init((PyObject *)message, &lmp_MessageType);
    message->tag = 0;
    message->pid = 0;
    message->cursor = 0;
    message->size = 0;
    message->kind = LMP_KIND_DATA;
    message->reason = 0;
    message->external = external != 0;
    return message;
}

lmp_message *lmp_message_external(int64_t tag, PyObject *data) {
    lmp_message *message = lmp_message_alloc(sizeof(lmp_message_extras), 1);
    if (message == NULL)
        return NULL;
    message->tag = tag;
    lmp_message_extras *extras = lmp_extras(message);
    extras->data = Py_NewRef(data);
    extras->modules = NULL;
    extras->streams = NULL;
    return message;
}

lmp_message *lmp_message_inline(int64_t tag, int64_t pid, const void *data, size_t size) {
    lmp_message *message;
    if (size > LMP_INLINE_MAX) {
        PyObject *bytes = PyBytes_FromStringAndSize(data, (Py_ssize_t)size);
        message = bytes != NULL ? lmp_message_external(tag, bytes) : NULL;
        Py_XDECREF(bytes);
    } else if ((message = lmp_message_alloc(size, 0)) != NULL) {
        message->tag = tag;
        message->size = (uint32_t)size;
        if (size)
            memcpy(message->body, data, size);
    }
    if (message != NULL)
        message->pid = pid;
    return message;
}

const uint8_t *lmp_message_bytes(lmp_message *message, size_t *size) {
    if (!message->external) {
        *size = message->size;
        return message->body;
    }
    PyObject *data = lmp_extras(message)->data;
    if (PyBytes_Check(data)) {
        *size = (size_t)PyBytes_GET_SIZE(data);
        return (const uint8_t *)PyBytes_AS_STRING(data);
    }
    *size = (size_t)PyByteArray_GET_SIZE(data);
    return (const uint8_t *)PyByteArray_AS_STRING(data);
}

static int lmp_empty_or_absent(PyObject *list) {
    return list == NULL || list == Py_None || (PyList_CheckExact(list) && PyList_GET_SIZE(list) == 0);
}

int lmp_message_plain(lmp_message *message) {
    if (!message->external)
        return 1;
    lmp_message_extras *extras = lmp_extras(message);
    return lmp_empty_or_absent(extras->modules) && lmp_empty_or_absent(extras->streams);
}

/* copy (NULL after a failed allocation) with every field of message but its data; returns copy. */
static lmp_message *lmp_same_fields(lmp_message *copy, lmp_message *message) {
    if (copy != NULL) {
        copy->pid = message->pid;
        copy->cursor = message->cursor;
        copy->kind = message->kind;
        copy->reason = message->reason;
    }
    return copy;
}

lmp_message *lmp_message_external_copy(lmp_message *message, PyObject *(*make)(const char *, Py_ssize_t)) {
    if (message->external)
        return (lmp_message *)Py_NewRef((PyObject *)message);
    PyObject *data = make((const char *)message->body, (Py_ssize_t)message->size);
    lmp_message *copy = data != NULL ? lmp_message_external(message->tag, data) : NULL;
    Py_XDECREF(data);
    return lmp_same_fields(copy, message);
}

lmp_message *lmp_message_inline_copy(lmp_message *message) {
    size_t size;
    const uint8_t *bytes = lmp_message_bytes(message, &size);
    return lmp_same_fields(lmp_message_inline(message->tag, message->pid, bytes, size), message);
}

static void lmp_message_dealloc(lmp_message *self) {
    if (self->external) {
        lmp_message_extras *extras = lmp_extras(self);
        Py_XDECREF(extras->data);
        Py_XDECREF(extras->modules);
        Py_XDECREF(extras->streams);
    }
    PyObject_Free(self);
}

int lmp_message_int64(PyObject *value, int64_t *out, const char *what) {
    if (!PyLong_Check(value)) {
        PyErr_Format(PyExc_TypeError, "Message.%s must be an int, got %s", what, Py_TYPE(value)->tp_name);
        return -1;
    }
    int overflow = 0;
    long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow > 0) { /* any value of u64 is taken as its bits, as the ABI does */
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

static int lmp_code(PyObject *value, PyObject *members, int *out, const char *what) {
    long code = PyLong_AsLong(value);
    if (code == -1 && PyErr_Occurred())
        return -1;
    if (code < 0 || code >= PyTuple_GET_SIZE(members)) {
        PyErr_Format(PyExc_ValueError, "Message.%s: %ld is not a valid code", what, code);
        return -1;
    }
    *out = (int)code;
    return 0;
}

/* Data from Python: bytes or a bytearray as they are, any other bytes-like object as bytes. */
static PyObject *lmp_data_object(PyObject *data) {
    if (PyBytes_Check(data) || PyByteArray_Check(data))
        return Py_NewRef(data);
    return PyBytes_FromObject(data);
}

static PyObject *lmp_message_tp_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    (void)type;
    static char *keywords[] = {"tag", "data", "kind", "pid", "reason", "modules", "streams", NULL};
    PyObject *tag_obj, *data_obj = NULL, *kind_obj = NULL, *pid_obj = NULL, *reason_obj = NULL;
    PyObject *modules = Py_None, *streams = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|OOOOOO:Message", keywords, &tag_obj, &data_obj, &kind_obj,
                                     &pid_obj, &reason_obj, &modules, &streams))
        return NULL;
    int64_t tag, pid = 0;
    int kind = LMP_KIND_DATA, reason = 0;
    if (lmp_message_int64(tag_obj, &tag, "tag") < 0 || (pid_obj != NULL && lmp_message_int64(pid_obj, &pid, "pid") < 0) ||
        (kind_obj != NULL && lmp_code(kind_obj, lmp_kinds, &kind, "kind") < 0) ||
        (reason_obj != NULL && lmp_code(reason_obj, lmp_reasons, &reason, "reason") < 0))
        return NULL;
    if (modules != Py_None && !PyList_Check(modules)) {
        PyErr_SetString(PyExc_TypeError, "Message.modules must be a list or None");
        return NULL;
    }
    if (streams != Py_None && !PyList_Check(streams)) {
        PyErr_SetString(PyExc_TypeError, "Message.streams must be a list or None");
        return NULL;
    }
    PyObject *data = data_obj != NULL ? lmp_data_object(data_obj) : PyBytes_FromStringAndSize(NULL, 0);
    if (data == NULL)
        return NULL;
    lmp_message *self;
    if (PyBytes_Check(data) && PyBytes_GET_SIZE(data) <= LMP_INLINE_MAX && modules == Py_None && streams == Py_None)
        self = lmp_message_inline(tag, pid, PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data));
    else
        self = lmp_message_external(tag, data);
    Py_DECREF(data);
    if (self == NULL)
        return NULL;
    self->pid = pid;
    self->kind = (unsigned)kind;
    self->reason = (unsigned)reason;
    if (self->external) {
        lmp_message_extras *extras = lmp_extras(self);
        extras->modules = modules != Py_None ? Py_NewRef(modules) : NULL;
        extras->streams = streams != Py_None ? Py_NewRef(streams) : NULL;
    }
    return (PyObject *)self;
}

static int lmp_no_delete(PyObject *value, const char *what) {
    if (value != NULL)
        return 0;
    PyErr_Format(PyExc_AttributeError, "cannot delete Message.%s", what);
    return -1;
}

static PyObject *lmp_message_get_tag(lmp_message *self, void *closure) {
    (void)closure;
    return PyLong_FromLongLong(self->tag);
}

static int lmp_message_set_tag(lmp_message *self, PyObject *value, void *closure) {
    (void)closure;
    return lmp_no_delete(value, "tag") < 0 ? -1 : lmp_message_int64(value, &self->tag, "tag");
}

static PyObject *lmp_message_get_pid(lmp_message *self, void *closure) {
    (void)closure;
    return PyLong_FromLongLong(self->pid);
}

static int lmp_message_set_pid(lmp_message *self, PyObject *value, void *closure) {
    (void)closure;
    return lmp_no_delete(value, "pid") < 0 ? -1 : lmp_message_int64(value, &self->pid, "pid");
}

static PyObject *lmp_message_get_kind(lmp_message *self, void *closure) {
    (void)closure;
    return Py_NewRef(PyTuple_GET_ITEM(lmp_kinds, self->kind));
}

static int lmp_message_set_kind(lmp_message *self, PyObject *value, void *closure) {
    (void)closure;
    int kind;
    if (lmp_no_delete(value, "kind") < 0 || lmp_code(value, lmp_kinds, &kind, "kind") < 0)
        return -1;
    self->kind = (unsigned)kind;
    return 0;
}

static PyObject *lmp_message_get_reason(lmp_message *self, void *closure) {
    (void)closure;
    return Py_NewRef(PyTuple_GET_ITEM(lmp_reasons, self->reason));
}

static int lmp_message_set_reason(lmp_message *self, PyObject *value, void *closure) {
    (void)closure;
    int reason;
    if (lmp_no_delete(value, "reason") < 0 || lmp_code(value, lmp_reasons, &reason, "reason") < 0)
        return -1;
    self->reason = (unsigned)reason;
    return 0;
}

static PyObject *lmp_message_get_cursor(lmp_message *self, void *closure) {
    (void)closure;
    return PyLong_FromUnsignedLong(self->cursor);
}

static int lmp_message_set_cursor(lmp_message *self, PyObject *value, void *closure) {
    (void)closure;
    if (lmp_no_delete(value, "cursor") < 0)
        return -1;
    long long cursor = PyLong_AsLongLong(value);
    if (cursor == -1 && PyErr_Occurred())
        return -1;
    self->cursor = cursor < 0 ? 0 : cursor > UINT32_MAX ? UINT32_MAX : (uint32_t)cursor;
    return 0;
}

static PyObject *lmp_message_get_data(lmp_message *self, void *closure) {
    (void)closure;
    if (self->external)
        return Py_NewRef(lmp_extras(self)->data);
    return PyBytes_FromStringAndSize((const char *)self->body, (Py_ssize_t)self->size);
}

static int lmp_message_set_data(lmp_message *self, PyObject *value, void *closure) {
    (void)closure;
    if (lmp_no_delete(value, "data") < 0)
        return -1;
    if (!self->external) {
        PyErr_Format(PyExc_AttributeError, "cannot set Message.data: this message %s", LMP_INLINE_FIXED);
        return -1;
    }
    PyObject *data = lmp_data_object(value);
    if (data == NULL)
        return -1;
    Py_SETREF(lmp_extras(self)->data, data);
    return 0;
}

static PyObject *lmp_message_get_modules(lmp_message *self, void *closure) {
    (void)closure;
    if (!self->external)
        return PyList_New(0);
    lmp_message_extras *extras = lmp_extras(self);
    if (extras->modules == NULL && (extras->modules = PyList_New(0)) == NULL)
        return NULL;
    return Py_NewRef(extras->modules);
}

/* Set a resource list (modules or streams) of an external message; on an inline one only to
 * nothing (None or an empty list), which it already holds. */
static int lmp_set_resources(lmp_message *self, PyObject *value, size_t offset, const char *what) {
    int nothing = value == NULL || value == Py_None;
    if (!nothing && !PyList_Check(value)) {
        PyErr_Format(PyExc_TypeError, "Message.%s must be a list or None", what);
        return -1;
    }
    if (!self->external) {
        if (nothing || PyList_GET_SIZE(value) == 0)
            return 0;
        PyErr_Format(PyExc_TypeError, "cannot attach Message.%s: this message %s", what, LMP_INLINE_FIXED);
        return -1;
    }
    PyObject **slot = (PyObject **)((char *)lmp_extras(self) + offset);
    Py_XSETREF(*slot, nothing ? NULL : Py_NewRef(value));
    return 0;
}

static int lmp_message_set_modules(lmp_message *self, PyObject *value, void *closure) {
    (void)closure;
    return lmp_set_resources(self, value, offsetof(lmp_message_extras, modules), "modules");
}

static PyObject *lmp_message_get_streams(lmp_message *self, void *closure) {
    (void)closure;
    PyObject *streams = self->external ? lmp_extras(self)->streams : NULL;
    return Py_NewRef(streams != NULL ? streams : Py_None);
}

static int lmp_message_set_streams(lmp_message *self, PyObject *value, void *closure) {
    (void)closure;
    return lmp_set_resources(self, value, offsetof(lmp_message_extras, streams), "streams");
}

static PyObject *lmp_message_get_inline(lmp_message *self, void *closure) {
    (void)closure;
    return PyBool_FromLong(!self->external);
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
     "The bytes (a bytearray while a guest writes them); settable only on a message that is not inline.", NULL},
    {"modules", (getter)lmp_message_get_modules, (setter)lmp_message_set_modules,
     "Modules attached (a list; a new empty one for an inline message).", NULL},
    {"streams", (getter)lmp_message_get_streams, (setter)lmp_message_set_streams,
     "TCP streams attached (lunatic::networking), or None.", NULL},
    {"inline", (getter)lmp_message_get_inline, NULL,
     "Whether the data is held inline (fixed, and no resources can be attached).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyObject *lmp_message_repr(lmp_message *self) {
    PyObject *kind = PyObject_GetAttrString(PyTuple_GET_ITEM(lmp_kinds, self->kind), "name");
    if (kind == NULL)
        return NULL;
    size_t size;
    lmp_message_bytes(self, &size);
    PyObject *text = PyUnicode_FromFormat("Message(tag=%lld, kind=%U, pid=%lld, %zu bytes)", (long long)self->tag,
                                          kind, (long long)self->pid, size);
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
    lmp_message *message = lmp_message_inline(tag, pid, NULL, 0);
    if (message != NULL) {
        message->kind = LMP_KIND_LINK_DIED;
        message->reason = (unsigned)reason;
    }
    return (PyObject *)message;
}

static PyObject *lmp_message_process_died(PyObject *cls, PyObject *pid_obj) {
    (void)cls;
    long long pid = PyLong_AsLongLong(pid_obj);
    if (pid == -1 && PyErr_Occurred())
        return NULL;
    lmp_message *message = lmp_message_inline(0, pid, NULL, 0);
    if (message != NULL)
        message->kind = LMP_KIND_PROCESS_DIED;
    return (PyObject *)message;
}

static PyObject *lmp_message_extensible(lmp_message *self, PyObject *unused) {
    (void)unused;
    return (PyObject *)lmp_message_external_copy(self, PyBytes_FromStringAndSize);
}

static PyObject *lmp_message_sizeof(lmp_message *self, PyObject *unused) {
    (void)unused;
    return PyLong_FromSize_t(sizeof(lmp_message) + (self->external ? sizeof(lmp_message_extras) : self->size));
}

static PyMethodDef lmp_message_methods[] = {
    {"link_died", lmp_message_link_died, METH_VARARGS | METH_CLASS,
     "link_died(pid, tag, reason): the notice that linked process pid died."},
    {"process_died", lmp_message_process_died, METH_O | METH_CLASS,
     "process_died(pid): the notice that monitored process pid died."},
    {"extensible", (PyCFunction)lmp_message_extensible, METH_NOARGS,
     "This message if it is not inline, else a copy that is not (same fields), to attach resources to."},
    {"__sizeof__", (PyCFunction)lmp_message_sizeof, METH_NOARGS, "The bytes of this message's allocation."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject lmp_MessageType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "lunatic_mp.vm.mailbox.Message",
    .tp_doc = PyDoc_STR("Message(tag, data=b'', kind=Kind.DATA, pid=0, reason=DeathReason.NORMAL, modules=None,\n"
                        "        streams=None)\n\n"
                        "A message: data with a tag and attached resources, or a death notice (pid: the\n"
                        "process that died; empty data). For data messages pid is the sender. A message\n"
                        "without resources and with up to 64 KiB of bytes holds them inline: fixed."),
    .tp_basicsize = sizeof(lmp_message),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = lmp_message_tp_new,
    .tp_dealloc = (destructor)lmp_message_dealloc,
    .tp_repr = (reprfunc)lmp_message_repr,
    .tp_getset = lmp_message_getset,
    .tp_methods = lmp_message_methods,
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
