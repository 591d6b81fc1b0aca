/* Messages from other workers, straight into mailboxes.
 *
 * A worker reads its inbound ring as a list of frames (lunatic_mp.cluster.hub.Hub.receive). The
 * most common by far is a plain message, lunatic_mp.cluster.frames.Message with no module
 * attached, which Python used to decode into a frame, turn into a Message and hand to
 * Engine.deliver: about 2 µs each. deliver_messages does the same for a run of them here: it
 * parses each frame, makes the Message and puts it into the local mailbox, or wakes the receiver
 * waiting for it in C (lmp_deliver, as a guest's send does), or calls Engine.deliver for the
 * rest (a bound reached, a receiver that is not plain, a process elsewhere). It stops at the first
 * frame that is anything else, malformed included, for Python to decode and handle in order.
 *
 * The frame is msgspec's msgpack encoding of the array-like struct tagged Kind.MESSAGE (1):
 * [1, to, sender, tag, data, modules], the integers i64, data bin, modules an empty array here.
 * A guest's plain sends to another worker of the node come as one Forward frame (Kind.FORWARD,
 * 43) per step: [43, place, records, []], records being link records (below) of such message
 * frames, each for that place; it is delivered here whole, or left to Python whole.
 * tests/vm/test_inbox.py checks that both sides agree on the encoding frames.encode makes.
 */
#include "message.h"

#include <string.h>

enum { LMP_FRAME_MESSAGE = 1, LMP_MESSAGE_FIELDS = 6, LMP_FRAME_FORWARD = 43, LMP_FORWARD_FIELDS = 4 };

#define LMP_RECORD_FRAME 1
#define LMP_RECORD_MODULE 2
#define LMP_RECORD_HEAD 5 /* u32 length, u8 type */
#define LMP_PLACE_SIZE 8

typedef struct {
    const uint8_t *at, *end;
} lmp_reader;

static uint64_t lmp_big_endian(const uint8_t *bytes, int size) {
    uint64_t value = 0;
    for (int i = 0; i < size; i++)
        value = value << 8 | bytes[i];
    return value;
}

static uint64_t lmp_le(const uint8_t *at, int size) {
    uint64_t value = 0;
    for (int i = size - 1; i >= 0; i--)
        value = (value << 8) | at[i];
    return value;
}

/* The next msgpack integer as an i64: 1, or 0 when it is not one (or does not fit an i64). */
static int lmp_read_i64(lmp_reader *in, int64_t *out) {
    if (in->at >= in->end)
        return 0;
    uint8_t head = *in->at++;
    if (head <= 0x7f || head >= 0xe0) { /* positive, negative fixint */
        *out = (int8_t)head;
        return 1;
    }
    int size;
    int is_signed = head >= 0xd0;
    if (head == 0xcc || head == 0xd0)
        size = 1;
    else if (head == 0xcd || head == 0xd1)
        size = 2;
    else if (head == 0xce || head == 0xd2)
        size = 4;
    else if (head == 0xcf || head == 0xd3)
        size = 8;
    else
        return 0;
    if (in->end - in->at < size)
        return 0;
    uint64_t bits = lmp_big_endian(in->at, size);
    in->at += size;
    if (!is_signed) {
        if (bits > INT64_MAX)
            return 0;
        *out = (int64_t)bits;
    } else if (size == 8) {
        *out = (int64_t)bits;
    } else { /* sign-extend */
        uint64_t sign = (uint64_t)1 << (size * 8 - 1);
        *out = (int64_t)((bits ^ sign) - sign);
    }
    return 1;
}

/* The next msgpack bin: its bytes and length; 0 when it is not one. */
static int lmp_read_bin(lmp_reader *in, const uint8_t **data, size_t *size) {
    if (in->at >= in->end)
        return 0;
    uint8_t head = *in->at++;
    int width = head == 0xc4 ? 1 : head == 0xc5 ? 2 : head == 0xc6 ? 4 : 0;
    if (width == 0 || in->end - in->at < width)
        return 0;
    size_t length = (size_t)lmp_big_endian(in->at, width);
    in->at += width;
    if ((size_t)(in->end - in->at) < length)
        return 0;
    *data = in->at;
    *size = length;
    in->at += length;
    return 1;
}

/* A plain message frame in [bytes, bytes + size): 1 with its fields, 0 for anything else. */
static int lmp_parse_message(const uint8_t *bytes, size_t size, int64_t *to, int64_t *sender, int64_t *tag,
                             const uint8_t **data, size_t *data_size) {
    lmp_reader in = {bytes, bytes + size};
    int64_t kind;
    if (size < 2 || *in.at++ != (0x90 | LMP_MESSAGE_FIELDS))
        return 0;
    if (!lmp_read_i64(&in, &kind) || kind != LMP_FRAME_MESSAGE)
        return 0;
    if (!lmp_read_i64(&in, to) || !lmp_read_i64(&in, sender) || !lmp_read_i64(&in, tag))
        return 0;
    if (!lmp_read_bin(&in, data, data_size))
        return 0;
    return in.end - in.at == 1 && *in.at == 0x90; /* no module attached, nothing after */
}

/* Deliver one parsed message as Engine.deliver would: 0, or -1 with an exception set. */
static int lmp_deliver_one(PyObject *hooks, int64_t to, int64_t sender, int64_t tag, const uint8_t *data,
                           size_t size) {
    lmp_message *message = lmp_message_inline(tag, sender, data, size);
    PyObject *pid = message != NULL ? PyLong_FromLongLong(to) : NULL;
    int status = pid != NULL ? lmp_deliver(hooks, pid, message) : -1;
    Py_XDECREF(pid);
    Py_XDECREF(message);
    return status;
}

/* A Forward frame carrying records of plain messages (a peer worker's batch of its guests' sends,
 * lunatic_mp.cluster.worker): 1 with its payload if every record is a plain message frame for its
 * place, 0 for anything else, for Python to decode and judge. */
static int lmp_parse_records(const uint8_t *bytes, size_t size, const uint8_t **payload, size_t *payload_size) {
    lmp_reader in = {bytes, bytes + size};
    int64_t kind, place;
    if (size < 2 || *in.at++ != (0x90 | LMP_FORWARD_FIELDS))
        return 0;
    if (!lmp_read_i64(&in, &kind) || kind != LMP_FRAME_FORWARD || !lmp_read_i64(&in, &place))
        return 0;
    if (!lmp_read_bin(&in, payload, payload_size) || in.end - in.at != 1 || *in.at != 0x90)
        return 0; /* modules attached: the frames refer to some */
    const uint8_t *at = *payload, *end = *payload + *payload_size;
    while (at < end) {
        int64_t to, sender, tag;
        const uint8_t *data;
        size_t data_size;
        if (end - at < LMP_RECORD_HEAD + LMP_PLACE_SIZE)
            return 0;
        uint64_t length = lmp_le(at, 4);
        if (at[4] != LMP_RECORD_FRAME || length < 1 + LMP_PLACE_SIZE || length > (uint64_t)(end - at) - 4)
            return 0;
        if (lmp_le(at + LMP_RECORD_HEAD, LMP_PLACE_SIZE) != (uint64_t)place)
            return 0;
        const uint8_t *frame = at + LMP_RECORD_HEAD + LMP_PLACE_SIZE;
        at += 4 + length;
        if (!lmp_parse_message(frame, (size_t)(at - frame), &to, &sender, &tag, &data, &data_size))
            return 0;
    }
    return 1;
}

/* Deliver the messages of records that lmp_parse_records accepted: 0, or -1 with an exception. */
static int lmp_deliver_records(PyObject *hooks, const uint8_t *at, const uint8_t *end) {
    while (at < end) {
        int64_t to, sender, tag;
        const uint8_t *data;
        size_t size;
        const uint8_t *frame = at + LMP_RECORD_HEAD + LMP_PLACE_SIZE;
        at += 4 + lmp_le(at, 4);
        lmp_parse_message(frame, (size_t)(at - frame), &to, &sender, &tag, &data, &size);
        if (lmp_deliver_one(hooks, to, sender, tag, data, size) < 0)
            return -1;
    }
    return 0;
}

const char lmp_deliver_messages_doc[] =
    "deliver_messages(hooks, frames, start) -> int\n\n"
    "Deliver the plain Message frames (bytes, no module attached), and the Forward frames of records\n"
    "of them that a peer worker batches, of the list frames from index start on, as Engine.deliver\n"
    "would, up to the first frame that is anything else; its index\n"
    "(len(frames) when all were). hooks: the lunatic::message hooks (Engine.message_hooks).";

PyObject *lmp_deliver_messages(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 3 || !PyList_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "deliver_messages(hooks, frames: list, start: int)");
        return NULL;
    }
    if (lmp_check_hooks(args[0], "deliver_messages") < 0)
        return NULL;
    Py_ssize_t index = PyLong_AsSsize_t(args[2]);
    if (index == -1 && PyErr_Occurred())
        return NULL;
    if (index < 0) {
        PyErr_SetString(PyExc_ValueError, "deliver_messages: start must be >= 0");
        return NULL;
    }
    for (; index < PyList_GET_SIZE(args[1]); index++) {
        PyObject *frame = PyList_GET_ITEM(args[1], index);
        if (!PyBytes_CheckExact(frame))
            break;
        int64_t to, sender, tag;
        const uint8_t *data;
        size_t size;
        const uint8_t *bytes = (const uint8_t *)PyBytes_AS_STRING(frame);
        size_t frame_size = (size_t)PyBytes_GET_SIZE(frame);
        int records = 0;
        if (!lmp_parse_message(bytes, frame_size, &to, &sender, &tag, &data, &size)) {
            if (!lmp_parse_records(bytes, frame_size, &data, &size))
                break;
            records = 1;
        }
        Py_INCREF(frame); /* a delivery may run Python that changes the list */
        int status = records ? lmp_deliver_records(args[0], data, data + size)
                             : lmp_deliver_one(args[0], to, sender, tag, data, size);
        Py_DECREF(frame);
        if (status < 0)
            return NULL;
    }
    return PyLong_FromSsize_t(index);
}

/* --- the other way: a plain message's frame, encoded ------------------------------------------- */

static uint8_t *lmp_put_big_endian(uint8_t *at, uint64_t value, int size) {
    for (int i = size - 1; i >= 0; i--) {
        at[i] = (uint8_t)value;
        value >>= 8;
    }
    return at + size;
}

/* value in msgpack's smallest form, as msgspec writes it (at most 9 bytes). */
static uint8_t *lmp_put_i64(uint8_t *at, int64_t value) {
    if (value >= 0) {
        uint64_t bits = (uint64_t)value;
        if (bits <= 0x7f) {
            *at++ = (uint8_t)bits;
            return at;
        }
        int size = bits <= 0xff ? 1 : bits <= 0xffff ? 2 : bits <= 0xffffffffu ? 4 : 8;
        *at++ = size == 1 ? 0xcc : size == 2 ? 0xcd : size == 4 ? 0xce : 0xcf;
        return lmp_put_big_endian(at, bits, size);
    }
    if (value >= -32) {
        *at++ = (uint8_t)(int8_t)value;
        return at;
    }
    int size = value >= INT8_MIN ? 1 : value >= INT16_MIN ? 2 : value >= INT32_MIN ? 4 : 8;
    *at++ = size == 1 ? 0xd0 : size == 2 ? 0xd1 : size == 4 ? 0xd2 : 0xd3;
    return lmp_put_big_endian(at, (uint64_t)value, size);
}

/* array, kind, three i64 of at most 9 bytes each, a bin head of at most 5 */
#define LMP_MESSAGE_HEAD_MAX (2 + 3 * 9 + 5)

/* A plain message frame's bytes before its data, into head (LMP_MESSAGE_HEAD_MAX); their count.
 * size is at most UINT32_MAX (the caller checks). */
static size_t lmp_message_head(uint8_t *head, int64_t to, int64_t sender, int64_t tag, uint64_t size) {
    uint8_t *at = head;
    *at++ = 0x90 | LMP_MESSAGE_FIELDS;
    *at++ = LMP_FRAME_MESSAGE;
    at = lmp_put_i64(at, to);
    at = lmp_put_i64(at, sender);
    at = lmp_put_i64(at, tag);
    int width = size <= 0xff ? 1 : size <= 0xffff ? 2 : 4;
    *at++ = width == 1 ? 0xc4 : width == 2 ? 0xc5 : 0xc6;
    at = lmp_put_big_endian(at, size, width);
    return (size_t)(at - head);
}

/* The whole frame at out (head_size + size + 1 bytes): the head, the data, no modules. */
static void lmp_message_frame(uint8_t *out, const uint8_t *head, size_t head_size, const char *data,
                              Py_ssize_t size) {
    memcpy(out, head, head_size);
    memcpy(out + head_size, data, (size_t)size);
    out[head_size + (size_t)size] = 0x90;
}

const char lmp_encode_message_doc[] =
    "encode_message(to, sender, tag, data) -> bytes\n\n"
    "The frame lunatic_mp.cluster.frames.encode makes of Message(to, sender, tag, data, ()): the\n"
    "same bytes, without building the frame object.";

PyObject *lmp_encode_message(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 4 || !PyBytes_CheckExact(args[3])) {
        PyErr_SetString(PyExc_TypeError, "encode_message(to: int, sender: int, tag: int, data: bytes)");
        return NULL;
    }
    int64_t fields[3];
    for (int i = 0; i < 3; i++) {
        fields[i] = PyLong_AsLongLong(args[i]);
        if (fields[i] == -1 && PyErr_Occurred())
            return NULL;
    }
    Py_ssize_t size = PyBytes_GET_SIZE(args[3]);
    if ((uint64_t)size > UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "encode_message: data past 4 GiB");
        return NULL;
    }
    uint8_t head[LMP_MESSAGE_HEAD_MAX];
    size_t head_size = lmp_message_head(head, fields[0], fields[1], fields[2], (uint64_t)size);
    PyObject *frame = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)head_size + size + 1);
    if (frame == NULL)
        return NULL;
    lmp_message_frame((uint8_t *)PyBytes_AS_STRING(frame), head, head_size, PyBytes_AS_STRING(args[3]), size);
    return frame;
}

/* The inbound side of a cluster link (lunatic_mp.cluster.gateway): records [u32 length][u8 type]
 * [body], length counting the type byte and the body; a frame record's body is the u64 place it
 * is for, then the encoded frame. Splitting them is the per-frame work of a node's reader thread,
 * so it is here rather than in a Python loop. */


const char lmp_split_link_records_doc[] =
    "split_link_records(buffer, start, node, max_frame) -> (frames, end, module_next)\n\n"
    "The frame records of a cluster link in buffer, from offset start: a dict worker -> [frame, ...]\n"
    "(each worker's in the order they came) of every complete record up to the first module record or\n"
    "the last complete record; the offset after them; and whether a module record starts there (the\n"
    "caller reads it). A frame for the supervisor (worker 0) or for any worker (0xffff) comes alone,\n"
    "the frames before it first: the supervisor handles those as they come, in order with the rest.\n"
    "ValueError on a record out of bounds (a frame past max_frame bytes), of an unknown type, or for\n"
    "a place on another node than node.";

#define LMP_SUPERVISOR 0
#define LMP_ANY_WORKER 0xffff


PyObject *lmp_split_link_records(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "split_link_records(buffer, start: int, node: int, max_frame: int)");
        return NULL;
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[1]);
    if (start == -1 && PyErr_Occurred())
        return NULL;
    long long node = PyLong_AsLongLong(args[2]);
    if (node == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t max_frame = PyLong_AsSsize_t(args[3]);
    if (max_frame == -1 && PyErr_Occurred())
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *frames = NULL;
    if (start < 0 || start > view.len) {
        PyErr_Format(PyExc_ValueError, "split_link_records: start %zd is outside the buffer", start);
        goto fail;
    }
    if ((frames = PyDict_New()) == NULL)
        goto fail;
    PyObject *list = NULL; /* borrowed: the last record's worker's list (runs of one worker are common) */
    uint64_t list_worker = 0;
    const uint8_t *data = (const uint8_t *)view.buf;
    Py_ssize_t at = start;
    int module_next = 0;
    while (view.len - at >= LMP_RECORD_HEAD) {
        uint64_t length = lmp_le(data + at, 4);
        uint8_t kind = data[at + 4];
        if (kind == LMP_RECORD_MODULE) {
            module_next = 1;
            break;
        }
        if (kind != LMP_RECORD_FRAME) {
            PyErr_Format(PyExc_ValueError, "unknown record type %d", (int)kind);
            goto fail;
        }
        if (length < 1 + LMP_PLACE_SIZE || length - 1 - LMP_PLACE_SIZE > (uint64_t)max_frame) {
            PyErr_Format(PyExc_ValueError, "a frame record of %llu bytes is out of bounds",
                         (unsigned long long)length);
            goto fail;
        }
        if ((uint64_t)(view.len - at) < 4 + length)
            break; /* the rest of it has not arrived yet */
        Py_ssize_t end = at + 4 + (Py_ssize_t)length;
        uint64_t place = lmp_le(data + at + LMP_RECORD_HEAD, LMP_PLACE_SIZE);
        if ((long long)(place >> 16) != node) {
            PyErr_Format(PyExc_ValueError, "a frame for node %llu arrived at node %lld",
                         (unsigned long long)(place >> 16), node);
            goto fail;
        }
        Py_ssize_t body = at + LMP_RECORD_HEAD + LMP_PLACE_SIZE;
        uint64_t worker = place & 0xffff;
        int alone = worker == LMP_SUPERVISOR || worker == LMP_ANY_WORKER;
        if (alone && at > start)
            break; /* after the frames before it */
        if (list == NULL || worker != list_worker) {
            PyObject *key = PyLong_FromUnsignedLongLong(worker);
            if (key == NULL)
                goto fail;
            list = PyDict_GetItemWithError(frames, key);
            if (list == NULL && !PyErr_Occurred() && (list = PyList_New(0)) != NULL) {
                int stored = PyDict_SetItem(frames, key, list);
                Py_DECREF(list); /* the dict holds it */
                list = stored < 0 ? NULL : list;
            }
            Py_DECREF(key);
            if (list == NULL)
                goto fail;
            list_worker = worker;
        }
        PyObject *frame = PyBytes_FromStringAndSize((const char *)data + body, end - body);
        if (frame == NULL)
            goto fail;
        int appended = PyList_Append(list, frame);
        Py_DECREF(frame);
        if (appended < 0)
            goto fail;
        at = end;
        if (alone)
            break; /* and the frames after it next */
    }
    PyBuffer_Release(&view);
    return Py_BuildValue("(NnO)", frames, at, module_next ? Py_True : Py_False);
fail:
    Py_XDECREF(frames);
    PyBuffer_Release(&view);
    return NULL;
}

/* --- the outbound side: a worker's batch of link records for another node ---------------------
 *
 * A guest's send to a pid on another node is the per-message work of a cross-node stream; in
 * Python (Engine.deliver, the router, the worker's batching) it cost about 3 µs. Here it is a
 * dict lookup and an append: the worker (lunatic_mp.cluster.worker) keeps, for each node it may
 * batch for, the bytearray its Python path appends the same records to (so a sender's frames keep
 * their order whichever path each takes), and withdraws it while the link is congested, so that
 * sends go through Python, which pauses the sender. */

#define LMP_LINK_BATCH_MAX (1 << 20) /* bytes in a batch past which Python takes over (and may pause) */
/* The same for another worker of the node: a batch stays well under a ring's largest record (a
 * quarter of its 1 MiB by default), so it is written whole and delivered as soon as it arrives */
#define LMP_WORKER_BATCH_MAX (1 << 16)
#define LMP_LINK_DATA_MAX (1 << 16)  /* larger messages take the Python path */

static void lmp_put_le(uint8_t *at, uint64_t value, int size) {
    for (int i = 0; i < size; i++) {
        at[i] = (uint8_t)value;
        value >>= 8;
    }
}

/* Append message, for pid to, to batch as a link record: 1 if it did, 0 if Python must (a batch
 * of max bytes or more, modules or streams attached, large data), -1 with an exception set. */
static int lmp_append_record(PyObject *batch, Py_ssize_t max, int64_t to, lmp_message *message) {
    if (!lmp_message_plain(message)) /* its bytes, wherever they are, are copied into the batch now */
        return 0;
    size_t data_size;
    const uint8_t *data = lmp_message_bytes(message, &data_size);
    if (data_size > LMP_LINK_DATA_MAX || !PyByteArray_CheckExact(batch) || PyByteArray_GET_SIZE(batch) >= max)
        return 0;
    Py_ssize_t size = (Py_ssize_t)data_size;
    uint8_t head[LMP_MESSAGE_HEAD_MAX];
    size_t head_size = lmp_message_head(head, to, message->pid, message->tag, (uint64_t)size);
    size_t frame_size = head_size + (size_t)size + 1;
    Py_ssize_t old = PyByteArray_GET_SIZE(batch);
    Py_ssize_t size_after = old + LMP_RECORD_HEAD + LMP_PLACE_SIZE + (Py_ssize_t)frame_size;
    Py_INCREF(batch); /* resizing cannot run Python, but the dict is not ours */
    int resized = 0;
    if (size_after >= ((PyByteArrayObject *)batch)->ob_alloc) /* double it: bytearray grows by 1/8 */
        resized = PyByteArray_Resize(batch, 2 * size_after);
    if (resized == 0) /* within what is allocated now: no copy */
        resized = PyByteArray_Resize(batch, size_after);
    if (resized == 0) {
        uint8_t *record = (uint8_t *)PyByteArray_AS_STRING(batch) + old;
        lmp_put_le(record, 1 + LMP_PLACE_SIZE + frame_size, 4);
        record[4] = LMP_RECORD_FRAME;
        lmp_put_le(record + LMP_RECORD_HEAD, (uint64_t)to >> 32, LMP_PLACE_SIZE);
        lmp_message_frame(record + LMP_RECORD_HEAD + LMP_PLACE_SIZE, head, head_size, (const char *)data, size);
    }
    Py_DECREF(batch);
    return resized < 0 ? -1 : 1;
}

/* Append message to batches[key] (borrowed dict) if there is one: as lmp_append_record. */
static int lmp_append_to(PyObject *batches, long long key, Py_ssize_t max, int64_t to, lmp_message *message) {
    if (!PyDict_CheckExact(batches) || PyDict_GET_SIZE(batches) == 0)
        return 0;
    PyObject *number = PyLong_FromLongLong(key);
    if (number == NULL)
        return -1;
    PyObject *batch = PyDict_GetItemWithError(batches, number); /* borrowed */
    Py_DECREF(number);
    if (batch == NULL)
        return PyErr_Occurred() ? -1 : 0;
    return lmp_append_record(batch, max, to, message);
}

int lmp_batch_for_node(PyObject *hooks, int64_t to, lmp_message *message) {
    return to <= 0 ? 0 : lmp_append_to(LMP_HOOK(hooks, LMP_LINK_BATCHES), to >> 48, LMP_LINK_BATCH_MAX, to, message);
}

int lmp_batch_for_worker(PyObject *hooks, int64_t to, lmp_message *message) {
    return to <= 0 ? 0 : lmp_append_to(LMP_HOOK(hooks, LMP_WORKER_BATCHES), to >> 32, LMP_WORKER_BATCH_MAX, to, message);
}

const char lmp_batch_message_doc[] =
    "batch_message(hooks, to, sender, tag, data) -> bool\n\n"
    "Append a plain message to the batch of link records for to's node, as a guest's send to a pid\n"
    "on another node does (hooks: Engine.message_hooks; its link_batches); False where the send\n"
    "would go through Python (no batch for that node, a full one, large data). For tests.";

PyObject *lmp_batch_message(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 5 || !PyBytes_CheckExact(args[4])) {
        PyErr_SetString(PyExc_TypeError, "batch_message(hooks, to: int, sender: int, tag: int, data: bytes)");
        return NULL;
    }
    if (lmp_check_hooks(args[0], "batch_message") < 0)
        return NULL;
    int64_t fields[3];
    for (int i = 0; i < 3; i++) {
        fields[i] = PyLong_AsLongLong(args[i + 1]);
        if (fields[i] == -1 && PyErr_Occurred())
            return NULL;
    }
    lmp_message *message = lmp_message_inline(fields[2], fields[1], PyBytes_AS_STRING(args[4]),
                                              (size_t)PyBytes_GET_SIZE(args[4]));
    if (message == NULL)
        return NULL;
    int batched = lmp_batch_for_node(args[0], fields[0], message);
    Py_DECREF(message);
    if (batched < 0)
        return NULL;
    return PyBool_FromLong(batched);
}

/* --- a ring's batch record (lunatic_mp.cluster.transport.Inbox) -------------------------------- */

const char lmp_split_batch_doc[] =
    "split_batch(span, body, count, end) -> list[bytes]\n\n"
    "The count frames of a ring's batch record in span: their lengths (native u32) from offset\n"
    "body, the frames after them, back to back, up to end at most. ValueError if they do not fit.";

PyObject *lmp_split_batch(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 4 || !PyBytes_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "split_batch(span: bytes, body: int, count: int, end: int)");
        return NULL;
    }
    Py_ssize_t body = PyLong_AsSsize_t(args[1]), count = PyLong_AsSsize_t(args[2]);
    Py_ssize_t end = PyLong_AsSsize_t(args[3]);
    if ((body == -1 || count == -1 || end == -1) && PyErr_Occurred())
        return NULL;
    const char *span = PyBytes_AS_STRING(args[0]);
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]);
    if (body < 0 || count < 0 || end > size || count > (end - body) / 4) {
        PyErr_SetString(PyExc_ValueError, "split_batch: a batch record out of bounds");
        return NULL;
    }
    PyObject *frames = PyList_New(count);
    if (frames == NULL)
        return NULL;
    Py_ssize_t at = body + 4 * count;
    for (Py_ssize_t i = 0; i < count; i++) {
        uint32_t length;
        memcpy(&length, span + body + 4 * i, sizeof(length));
        if ((Py_ssize_t)length > end - at) {
            Py_DECREF(frames);
            PyErr_SetString(PyExc_ValueError, "split_batch: a frame past its batch record");
            return NULL;
        }
        PyObject *frame = PyBytes_FromStringAndSize(span + at, (Py_ssize_t)length);
        if (frame == NULL) {
            Py_DECREF(frames);
            return NULL;
        }
        PyList_SET_ITEM(frames, i, frame);
        at += (Py_ssize_t)length;
    }
    return frames;
}
