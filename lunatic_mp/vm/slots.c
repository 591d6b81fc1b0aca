/* A process's fields, read and written from C at their slots' offsets.
 *
 * The process's flags and fields stay Python attributes (the __slots__ of
 * lunatic_mp.vm.process.Process), which the resume loop and the message
 * functions read and write by name, as the Python code they replaced did. A lookup by name (a type
 * lookup, then the member descriptor) costs about as much as a dozen of them make a message, so a
 * layout resolves the offsets of its fields once, for the first type whose fields are all plain
 * writable object slots, and reads and writes the slots directly while an object is of that exact
 * type. Any other object (a native process, a test's stand-in) goes by name.
 */
#include "core.h"

#include <string.h>
#include <structmember.h>

static PyObject *lmp_process_names[LMP_FIELDS];
lmp_layout lmp_process_layout = {.count = LMP_FIELDS, .names = lmp_process_names};

int lmp_slots_init(void) {
    const char *process[LMP_FIELDS] = {"queued", "finished", "call",      "kill_requested", "waiting", "parked",
                                       "mailbox", "scratch",  "receiving", "timer",          "phase",
                                       "pid"};
    for (int i = 0; i < LMP_FIELDS; i++)
        if ((lmp_process_names[i] = PyUnicode_InternFromString(process[i])) == NULL)
            return -1;
    return 0;
}

/* Whether every field of layout is a plain writable object slot of type; its offsets if so. */
static int lmp_layout_fits(lmp_layout *layout, PyTypeObject *type, Py_ssize_t *offsets) {
    for (Py_ssize_t i = 0; i < layout->count; i++) {
        PyObject *descr = PyObject_GetAttr((PyObject *)type, layout->names[i]);
        if (descr == NULL) {
            PyErr_Clear();
            return 0;
        }
        PyMemberDef *member = Py_IS_TYPE(descr, &PyMemberDescr_Type) ? ((PyMemberDescrObject *)descr)->d_member : NULL;
        int plain = member != NULL && member->type == T_OBJECT_EX && !(member->flags & READONLY);
        if (plain)
            offsets[i] = member->offset;
        Py_DECREF(descr);
        if (!plain)
            return 0;
    }
    return 1;
}

PyObject **lmp_field_slot(lmp_layout *layout, PyObject *object, int field) {
    PyTypeObject *type = Py_TYPE(object);
    if (type == layout->type)
        return (PyObject **)((char *)object + layout->offsets[field]);
    if (layout->type != NULL)
        return NULL;
    for (int i = 0; i < layout->rejected_count; i++)
        if (layout->rejected[i] == type)
            return NULL;
    if (layout->rejected_count == LMP_MAX_REJECTED)
        return NULL; /* many types that do not fit: stop looking */
    Py_ssize_t offsets[LMP_MAX_LAYOUT_FIELDS];
    if (!lmp_layout_fits(layout, type, offsets)) {
        layout->rejected[layout->rejected_count++] = (PyTypeObject *)Py_NewRef(type);
        return NULL;
    }
    memcpy(layout->offsets, offsets, sizeof(offsets));
    layout->type = (PyTypeObject *)Py_NewRef(type);
    return (PyObject **)((char *)object + layout->offsets[field]);
}

PyObject *lmp_get_slow(lmp_layout *layout, PyObject *object, int field) {
    PyObject **slot = lmp_field_slot(layout, object, field);
    if (slot == NULL || *slot == NULL) /* by name (an unset slot: for its AttributeError) */
        return PyObject_GetAttr(object, layout->names[field]);
    return Py_NewRef(*slot);
}

int lmp_set_slow(lmp_layout *layout, PyObject *object, int field, PyObject *value) {
    PyObject **slot = lmp_field_slot(layout, object, field);
    if (slot == NULL)
        return PyObject_SetAttr(object, layout->names[field], value);
    Py_XSETREF(*slot, Py_NewRef(value));
    return 0;
}

int lmp_flag_slow(lmp_layout *layout, PyObject *object, int field) {
    PyObject *value = lmp_get_slow(layout, object, field);
    int truth = value != NULL ? PyObject_IsTrue(value) : -1;
    Py_XDECREF(value);
    return truth;
}
