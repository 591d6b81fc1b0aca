/* Hibernation: the pages of a process that has waited long in receive, given back to the kernel
 * and kept compactly on the heap until it runs again.
 *
 * An idle process holds the pages its guest touched (its data segments, its shadow stack, what it
 * allocated) and the page or two of fiber stack its suspended frames are in. Most of each is
 * zeros: an idle `workers.wat` child holds 8 bytes of data in a 4 KiB page, and its frames fill
 * part of another. A server holds many processes that wait for a long time. A sweep
 * (Scheduler.hibernate, every Engine.hibernate_after seconds) marks each process it finds
 * suspended in a C receive; one still in the same wait at the next sweep (idle for at least one
 * interval) has the non-zero span of each resident page of its linear memory, and its fiber's
 * live frames (from its saved stack pointer to the top of its stack), copied to one heap block,
 * and those pages given back (MADV_DONTNEED: they read as zeros again). Before its call is next
 * polled (lmp_poll) or dropped (which unwinds the fiber), everything is copied back to where it
 * was. Memory or frames that would not free an eighth of a page are left alone, and so is a memory
of more than 64 MiB or 128 resident pages (a sweep's slice must stay short).
 *
 * What makes this safe: the memory and the fiber stack of a process suspended in a C receive are
 * touched by no one until its call is polled or dropped (host functions, Python's included, run
 * inside a poll; a send only queues a message and wakes it; a socket wait, which writes the
 * guest's buffer from outside, is not a receive and is never hibernated). The frames are found
 * from where wasmtime's fiber switch keeps the suspended stack pointer (x86-64 only; elsewhere
 * only the memory hibernates), checked to lie within the stack slot the wait ran on.
 */
#include "core.h"

#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define LMP_MINCORE_BATCH 256 /* pages asked about per mincore call */
/* A memory larger than this, or holding more resident pages, stays as it is: walking it would take
 * longer than a sweep's slice (a resident page is read whole), for a process that is not small. */
#define LMP_MAX_MEMORY_WALKED (64u << 20)
#define LMP_MAX_PAGES_WALKED 128

typedef struct {
    size_t at;     /* offset in the linear memory */
    size_t length; /* bytes kept, from data[offset] */
    size_t offset;
} lmp_span_kept;

struct lmp_hibernation {
    size_t count;        /* spans of linear memory */
    size_t pages;        /* pages given back */
    size_t bytes;        /* this block's size */
    size_t span_bytes;   /* the spans' bytes */
    uint8_t *frames;     /* the fiber's live frames start here (its saved stack pointer), or NULL */
    size_t frames_bytes; /* ... up to the top of its stack */
    lmp_span_kept spans[];
    /* then the spans' bytes, then the frames */
};

static size_t lmp_hibernated_processes, lmp_hibernated_bytes, lmp_hibernated_pages;

static size_t lmp_page(void) {
    long size = sysconf(_SC_PAGESIZE);
    return size > 0 ? (size_t)size : 4096;
}

/* The non-zero part of a page, [*first, *end) in bytes; 0 if it is all zeros. */
static int lmp_nonzero_span(const uint8_t *page, size_t size, size_t *first, size_t *end) {
    const uint64_t *words = (const uint64_t *)(const void *)page;
    size_t count = size / sizeof(uint64_t), low = 0, high = count;
    while (low < count && words[low] == 0)
        low++;
    if (low == count)
        return 0;
    while (words[high - 1] == 0)
        high--;
    *first = low * sizeof(uint64_t);
    *end = high * sizeof(uint64_t);
    return 1;
}

/* Call visit(context, first, count) for each run of resident pages in [base, base + size), count
 * pages from first; stop at the first visit that returns non-zero. 0, -1 if mincore fails, or
 * what visit returned. */
typedef int (*lmp_run_visit)(void *context, uint8_t *first, size_t count);

static int lmp_resident_runs(uint8_t *base, size_t size, lmp_run_visit visit, void *context) {
    size_t page = lmp_page(), total = size / page;
    unsigned char resident[LMP_MINCORE_BATCH];
    for (size_t start = 0; start < total; start += LMP_MINCORE_BATCH) {
        size_t batch = total - start < LMP_MINCORE_BATCH ? total - start : LMP_MINCORE_BATCH;
        if (mincore(base + start * page, batch * page, resident) < 0)
            return -1;
        for (size_t i = 0; i < batch;) {
            size_t run = 0;
            while (i + run < batch && (resident[i + run] & 1))
                run++;
            int status = run > 0 ? visit(context, base + (start + i) * page, run) : 0;
            if (status != 0)
                return status;
            i += run > 0 ? run : 1;
        }
    }
    return 0;
}

static int lmp_count_run(void *context, uint8_t *first, size_t count) {
    (void)first;
    *(size_t *)context += count;
    return 0;
}

static int lmp_give_run(void *context, uint8_t *first, size_t count) {
    (void)context;
    madvise(first, count * lmp_page(), MADV_DONTNEED);
    return 0;
}

/* What a walk of a linear memory's resident pages finds (keep NULL), or copies into keep (no more
 * than room bytes and keep->count spans). */
typedef struct {
    uint8_t *base;
    size_t pages, spans, bytes, room;
    struct lmp_hibernation *keep;
} lmp_walk;

static int lmp_walk_run(void *context, uint8_t *first, size_t count) {
    lmp_walk *walk = context;
    size_t page = lmp_page();
    for (uint8_t *at = first; at < first + count * page; at += page) {
        size_t low, end;
        walk->pages++;
        if (!lmp_nonzero_span(at, page, &low, &end))
            continue;
        struct lmp_hibernation *keep = walk->keep;
        if (keep != NULL) {
            if (walk->spans >= keep->count || walk->bytes + (end - low) > walk->room)
                return -1; /* the pages changed since they were counted */
            lmp_span_kept *span = &keep->spans[walk->spans];
            span->at = (size_t)(at - walk->base) + low;
            span->length = end - low;
            span->offset = walk->bytes;
            memcpy((uint8_t *)&keep->spans[keep->count] + walk->bytes, at + low, end - low);
        }
        walk->spans++;
        walk->bytes += end - low;
    }
    return 0;
}

/* Give the resident pages of [base, base + size) back to the kernel, a run of them per call (all
 * of it if mincore fails: whatever it held is copied out). */
static void lmp_give_back(uint8_t *base, size_t size) {
    if (lmp_resident_runs(base, size, lmp_give_run, NULL) < 0)
        madvise(base, size, MADV_DONTNEED);
}

#if defined(__x86_64__)
/* wasmtime's fiber switch (wasmtime-fiber, x86-64) keeps a suspended fiber's stack pointer 16 bytes
 * below the top of its stack; the 6 registers and the return address it pushed are above it. */
#define LMP_FIBER_SP_SLOT 16
#define LMP_FIBER_PUSHED 0x38

/* The live frames of the fiber suspended in state's wait: [*frames, *top), in the stack slot whose
 * usable part starts at *low. 0 if they cannot be found (or on another architecture). */
static int lmp_fiber_frames(lmp_proc *state, uint8_t **frames, uint8_t **low, uint8_t **top) {
    if (state->stack_hint == NULL || !lmp_stack_slot(state->stack_hint, low, top))
        return 0;
    uintptr_t sp;
    memcpy(&sp, *top - LMP_FIBER_SP_SLOT, sizeof sp);
    if (sp % 8 != 0 || sp < (uintptr_t)*low || sp + LMP_FIBER_PUSHED > (uintptr_t)(*top - LMP_FIBER_SP_SLOT))
        return 0;
    *frames = (uint8_t *)sp;
    return 1;
}
#else
static int lmp_fiber_frames(lmp_proc *state, uint8_t **frames, uint8_t **low, uint8_t **top) {
    (void)state, (void)frames, (void)low, (void)top;
    return 0;
}
#endif

/* Resident pages of [base, base + size), or 0 if mincore fails. */
static size_t lmp_resident(uint8_t *base, size_t size) {
    size_t count = 0;
    return lmp_resident_runs(base, size, lmp_count_run, &count) < 0 ? 0 : count;
}

/* Whether keeping `kept` bytes on the heap for `pages` resident pages frees an eighth of a page or
 * more (512 bytes: a sweep and a wake cost a few microseconds each, once per long wait). */
static int lmp_worth_it(size_t pages, size_t kept) { return pages * lmp_page() >= kept + lmp_page() / 8; }

int lmp_hibernate(lmp_proc *state) {
    if (state->hibernation != NULL || !state->have_memory)
        return 0;
    size_t size = lmp_wasmtime_memory_data_size(state->context, &state->memory), page = lmp_page();
    lmp_walk memory = {.base = state->base};
    if (size == 0 || size > LMP_MAX_MEMORY_WALKED || (uintptr_t)state->base % page != 0 ||
        lmp_resident(state->base, size) > LMP_MAX_PAGES_WALKED ||
        lmp_resident_runs(state->base, size, lmp_walk_run, &memory) != 0 ||
        !lmp_worth_it(memory.pages, memory.spans * sizeof(lmp_span_kept) + memory.bytes))
        memory.pages = memory.spans = memory.bytes = 0; /* the memory stays as it is */
    uint8_t *frames = NULL, *low = NULL, *top = NULL;
    size_t stack_pages = 0, frames_bytes = 0;
    if (lmp_fiber_frames(state, &frames, &low, &top)) {
        stack_pages = lmp_resident(low, (size_t)(top - low));
        frames_bytes = (size_t)(top - frames);
        if (!lmp_worth_it(stack_pages, frames_bytes))
            frames = NULL, stack_pages = frames_bytes = 0; /* its frames fill their pages */
    }
    if (memory.pages == 0 && frames == NULL)
        return 0;
    size_t block = sizeof(struct lmp_hibernation) + memory.spans * sizeof(lmp_span_kept) + memory.bytes + frames_bytes;
    struct lmp_hibernation *keep = PyMem_RawMalloc(block);
    if (keep == NULL)
        return 0;
    keep->count = memory.spans;
    keep->bytes = block;
    keep->span_bytes = memory.bytes;
    keep->pages = 0;
    if (memory.pages > 0) {
        lmp_walk copy = {.base = state->base, .room = memory.bytes, .keep = keep};
        if (lmp_resident_runs(state->base, size, lmp_walk_run, &copy) != 0 || copy.spans != keep->count) {
            PyMem_RawFree(keep); /* nothing was given back yet */
            return 0;
        }
        lmp_give_back(state->base, size);
        keep->pages = copy.pages;
    }
    keep->frames = frames;
    keep->frames_bytes = frames_bytes;
    if (frames != NULL) {
        memcpy((uint8_t *)&keep->spans[keep->count] + keep->span_bytes, frames, frames_bytes);
        lmp_give_back(low, (size_t)(top - low));
        keep->pages += stack_pages;
    }
    state->hibernation = keep;
    lmp_hibernated_processes++;
    lmp_hibernated_bytes += block;
    lmp_hibernated_pages += keep->pages;
    return 1;
}

static void lmp_forget(lmp_proc *state) {
    struct lmp_hibernation *keep = state->hibernation;
    lmp_hibernated_processes--;
    lmp_hibernated_bytes -= keep->bytes;
    lmp_hibernated_pages -= keep->pages;
    state->hibernation = NULL;
    PyMem_RawFree(keep);
}

void lmp_wake_pages(lmp_proc *state) {
    struct lmp_hibernation *keep = state->hibernation;
    const uint8_t *data = (const uint8_t *)&keep->spans[keep->count];
    for (size_t i = 0; i < keep->count; i++)
        memcpy(state->base + keep->spans[i].at, data + keep->spans[i].offset, keep->spans[i].length);
    if (keep->frames != NULL)
        memcpy(keep->frames, data + keep->span_bytes, keep->frames_bytes);
    lmp_forget(state);
}

void lmp_drop_hibernation(lmp_proc *state) {
    if (state->hibernation != NULL)
        lmp_forget(state);
}

const char lmp_hibernate_idle_doc[] =
    "hibernate_idle(processes, position, budget_ns) -> tuple[int, int, int]\n\n"
    "Part of a sweep over processes (a dict of an engine's processes: its values are read), from\n"
    "position (0 to start) for about budget_ns. A Wasm process suspended in a C receive that an\n"
    "earlier sweep saw in the same wait has its pages given back (hibernate.c); one seen for the\n"
    "first time is marked. Returns where to go on from (-1: the sweep is over), how many were\n"
    "hibernated and how many were marked (they may be at the next sweep).";

PyObject *lmp_hibernate_idle(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 3 || !PyDict_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "hibernate_idle takes a dict of processes, a position and a budget in ns");
        return NULL;
    }
    Py_ssize_t position = PyLong_AsSsize_t(args[1]);
    long long budget = position >= 0 ? PyLong_AsLongLong(args[2]) : -1;
    if (position < 0 || budget < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "hibernate_idle: position and budget_ns must be >= 0");
        return NULL;
    }
    if (!lmp_require_ready())
        return NULL;
    long long deadline = lmp_now_ns() + budget;
    Py_ssize_t hibernated = 0, marked = 0, visited = 0;
    PyObject *key, *process;
    int more;
    while ((more = PyDict_Next(args[0], &position, &key, &process))) {
        PyObject **slot = Py_TYPE(process) == lmp_process_layout.type
                              ? (PyObject **)((char *)process + lmp_process_layout.offsets[LMP_CALL])
                              : NULL; /* a native process, or one never polled from C */
        lmp_proc *state = slot != NULL && *slot != NULL ? lmp_call_pending_state(*slot) : NULL;
        if (state != NULL && state->wait_results != NULL && !state->woken && !state->net_waiting &&
            state->idle != LMP_IDLE_DONE) {
            if (state->idle == LMP_IDLE_ACTIVE) {
                state->idle = LMP_IDLE_SEEN;
                marked++;
            } else {
                state->idle = LMP_IDLE_DONE; /* hibernated, or not worth it: not tried again in this wait */
                if (lmp_call_find_memory(*slot, state) && lmp_hibernate(state)) {
                    hibernated++;
                    visited += 64; /* a hibernation costs about as much as 64 visits */
                }
            }
        }
        if (++visited >= 1024) {
            visited = 0;
            if (lmp_now_ns() >= deadline)
                break;
        }
    }
    return Py_BuildValue("nnn", more ? position : (Py_ssize_t)-1, hibernated, marked);
}

const char lmp_hibernation_stats_doc[] =
    "hibernation_stats() -> tuple[int, int, int]\n\n"
    "In this OS process: the processes hibernated now, the heap bytes that keep their memory, and\n"
    "the pages given back for them.";

PyObject *lmp_hibernation_stats(PyObject *module, PyObject *unused) {
    (void)module;
    (void)unused;
    return Py_BuildValue("nnn", (Py_ssize_t)lmp_hibernated_processes, (Py_ssize_t)lmp_hibernated_bytes,
                         (Py_ssize_t)lmp_hibernated_pages);
}

const char lmp_waits_begun_doc[] =
    "waits_begun() -> int\n\n"
    "How many times a process of this OS process suspended until woken (a receive's wait, a\n"
    "socket's): a sweep that saw none begin since the last, and marked no process then, has\n"
    "nothing to do.";

PyObject *lmp_waits_begun(PyObject *module, PyObject *unused) {
    (void)module;
    (void)unused;
    return PyLong_FromUnsignedLongLong(lmp_waits);
}
