/* Arenas: linear memories and fiber stacks served to wasmtime from large reservations of our own,
 * through its host memory creator and host stack creator.
 *
 * wasmtime's pooling allocator (and its default allocator) costs every live process memory
 * mappings of its own (a memory slot split from its guard, a fiber stack beside its guard page),
 * and Linux's vm.max_map_count (65,530) then stops a worker near 15,000 processes. Here slots are
 * carved from MAP_NORESERVE chunks of many slots each, so a live process costs no mapping:
 *
 * - a memory slot is the most a guest memory may grow to (the engine's max_memory), read-write
 *   from the start: the engine compiles explicit bounds checks (no memory reservation, no guard),
 *   so no access reaches past the memory's current size, and a memory.grow past the slot fails
 *   (grow_memory returns an error: the guest's memory.grow returns -1);
 * - a stack slot is a fiber stack under a guard page, installed with MADV_GUARD_INSTALL (Linux
 *   6.13+: a page-table marker, no mapping split) or, on older kernels, mprotect (which splits the
 *   chunk's mapping: 2 mappings per stack, which the capacity policy then counts);
 * - a freed memory slot must read as zeros again, as a fresh memory must: one that holds a few
 *   pages (at most LMP_ZERO_MAX_RESIDENT, read from /proc/self/pagemap) is zeroed by hand and
 *   keeps them while it is one of the last LMP_MEMORIES_KEPT freed; any other is given back to
 *   the kernel at once (MADV_DONTNEED). An madvise costs about 5 µs here (the process has other
 *   threads, so the kernel flushes their TLBs too), and the next process to take the slot then
 *   faults its pages in again; the pagemap read and a memset of the page or two a small guest
 *   wrote cost a fraction of that;
 * - a freed stack keeps its few touched pages while it is one of the last LMP_STACKS_KEPT freed
 *   (wasmtime does not ask for zeroed stacks unless configured to), and is given back when it
 *   falls past them;
 * - freed slots are reused first (LIFO: their page tables are still there);
 * - an arena retired (its engine closes) gives nothing back slot by slot: it is unmapped whole
 *   when its last slot is freed.
 *
 * An arena is shared by Python (a capsule), the creator installed in a wasmtime config, and each
 * slot it lent: it is freed when the last of them lets go. Slots are taken and freed under a
 * mutex, since stores of one engine may live on several threads.
 */
#include "core.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

enum { LMP_ARENA_MEMORY = 0, LMP_ARENA_STACK = 1 };
enum { LMP_GUARD_NONE = 0, LMP_GUARD_MADVISE = 1, LMP_GUARD_MPROTECT = 2 };
#define LMP_STACKS_KEPT 1024  /* freed stacks whose pages stay resident (a few KiB each) */
#define LMP_MEMORIES_KEPT 256 /* freed memories whose zeroed pages stay resident (a few each) */
#define LMP_ZERO_MAX_PAGES 256 /* a memory that reached past this many pages goes back by madvise */
#define LMP_ZERO_MAX_RESIDENT 8 /* ... and so does one holding more pages than this */
#define LMP_PAGEMAP_PRESENT (1ULL << 63)
#define LMP_PAGEMAP_SWAPPED (1ULL << 62)

typedef struct lmp_arena_s {
    pthread_mutex_t lock;
    int kind;
    size_t slot_size;   /* bytes per slot, guard included, a multiple of the page size */
    size_t guard;       /* guard bytes at the low end of each slot (stacks) */
    size_t chunk_slots; /* slots per reservation */
    size_t max_slots;
    uint8_t **chunks;   /* max_slots / chunk_slots reservations, mapped as slots are first needed */
    size_t nchunks_max, nchunks;
    size_t fresh;       /* slots ever handed out: the next fresh slot's index */
    size_t *free_slots; /* LIFO of freed slot indices */
    size_t nfree;
    size_t clean_below; /* free_slots[clean_below..nfree) may still hold pages */
    atomic_int retired; /* the engine is closing: no slot is taken, none given back one by one */
    size_t live;
    size_t peak;
    int guard_mode;
    size_t refs;        /* the capsule, installed creators, live slots */
    struct lmp_arena_s *next_stacks; /* the next stack arena (stack_arenas) */
} lmp_arena;

typedef struct {
    lmp_arena *arena;
    uint8_t *base;
    size_t size, max, touched, slot;
} lmp_arena_memory;

typedef struct {
    lmp_arena *arena;
    uint8_t *base; /* the slot's low end (its guard) */
    size_t slot;
} lmp_arena_stack;

static size_t page_size(void) {
    long size = sysconf(_SC_PAGESIZE);
    return size > 0 ? (size_t)size : 4096;
}

/* Every stack arena, for lmp_stack_slot: taken before an arena's own lock, never inside it. */
static pthread_mutex_t stack_arenas_lock = PTHREAD_MUTEX_INITIALIZER;
static lmp_arena *stack_arenas;

static void stack_arenas_remove(lmp_arena *arena) {
    pthread_mutex_lock(&stack_arenas_lock);
    for (lmp_arena **at = &stack_arenas; *at != NULL; at = &(*at)->next_stacks)
        if (*at == arena) {
            *at = arena->next_stacks;
            break;
        }
    pthread_mutex_unlock(&stack_arenas_lock);
}

int lmp_stack_slot(const void *address, uint8_t **low, uint8_t **top) {
    uintptr_t at = (uintptr_t)address;
    int found = 0;
    pthread_mutex_lock(&stack_arenas_lock);
    for (lmp_arena *arena = stack_arenas; arena != NULL && !found; arena = arena->next_stacks) {
        pthread_mutex_lock(&arena->lock);
        size_t bytes = arena->chunk_slots * arena->slot_size;
        for (size_t i = 0; i < arena->nchunks && !found; i++) {
            uintptr_t chunk = (uintptr_t)arena->chunks[i];
            if (at >= chunk && at - chunk < bytes) {
                uint8_t *base = arena->chunks[i] + (at - chunk) / arena->slot_size * arena->slot_size;
                *low = base + arena->guard;
                *top = base + arena->slot_size;
                found = 1;
            }
        }
        pthread_mutex_unlock(&arena->lock);
    }
    pthread_mutex_unlock(&stack_arenas_lock);
    return found;
}

static void arena_free(lmp_arena *arena) {
    if (arena->kind == LMP_ARENA_STACK)
        stack_arenas_remove(arena);
    size_t bytes = arena->chunk_slots * arena->slot_size;
    for (size_t i = 0; i < arena->nchunks; i++)
        munmap(arena->chunks[i], bytes);
    pthread_mutex_destroy(&arena->lock);
    free(arena->chunks);
    free(arena->free_slots);
    free(arena);
}

/* Drop one reference (the lock is not held); the last frees the arena. */
static void arena_release(lmp_arena *arena) {
    pthread_mutex_lock(&arena->lock);
    size_t left = --arena->refs;
    pthread_mutex_unlock(&arena->lock);
    if (left == 0)
        arena_free(arena);
}

static uint8_t *slot_address(lmp_arena *arena, size_t slot) {
    return arena->chunks[slot / arena->chunk_slots] + (slot % arena->chunk_slots) * arena->slot_size;
}

/* Put a fresh slot's guard in place (the lock is held). */
static int install_guard(lmp_arena *arena, uint8_t *base) {
    if (arena->guard == 0)
        return 0;
    if (arena->guard_mode != LMP_GUARD_MPROTECT) {
        if (madvise(base, arena->guard, MADV_GUARD_INSTALL) == 0) {
            arena->guard_mode = LMP_GUARD_MADVISE;
            return 0;
        }
        if (errno != EINVAL || arena->guard_mode == LMP_GUARD_MADVISE)
            return -1;
        arena->guard_mode = LMP_GUARD_MPROTECT; /* a kernel before 6.13 */
    }
    return mprotect(base, arena->guard, PROT_NONE);
}

/* A slot is taken: it holds a reference to the arena, and counts as live (arena_give undoes both). */
static uint8_t *arena_taken(lmp_arena *arena, size_t slot, size_t *slot_out) {
    arena->refs++;
    if (++arena->live > arena->peak)
        arena->peak = arena->live;
    *slot_out = slot;
    return slot_address(arena, slot);
}

/* Take a slot (the lock is held): the last freed, or a fresh one; writes an error message and
 * returns NULL when the arena is full or the kernel refuses. */
static uint8_t *arena_take(lmp_arena *arena, size_t *slot_out, char *error, size_t error_size) {
    if (atomic_load(&arena->retired)) {
        snprintf(error, error_size, "the engine is closed");
        return NULL;
    }
    if (arena->nfree > 0) {
        size_t slot = arena->free_slots[--arena->nfree];
        if (arena->clean_below > arena->nfree)
            arena->clean_below = arena->nfree;
        return arena_taken(arena, slot, slot_out);
    }
    if (arena->fresh >= arena->max_slots) {
        snprintf(error, error_size, "the %s arena is full (%zu slots): the engine's capacity is reached",
                 arena->kind == LMP_ARENA_MEMORY ? "memory" : "stack", arena->max_slots);
        return NULL;
    }
    size_t slot = arena->fresh, chunk = slot / arena->chunk_slots;
    if (chunk >= arena->nchunks) {
        size_t bytes = arena->chunk_slots * arena->slot_size;
        void *map = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (map == MAP_FAILED) {
            snprintf(error, error_size, "cannot reserve %zu bytes of address space for the %s arena: %s", bytes,
                     arena->kind == LMP_ARENA_MEMORY ? "memory" : "stack", strerror(errno));
            return NULL;
        }
        arena->chunks[arena->nchunks++] = map;
    }
    uint8_t *base = slot_address(arena, slot);
    if (install_guard(arena, base) < 0) {
        snprintf(error, error_size, "cannot install a stack guard page: %s", strerror(errno));
        return NULL;
    }
    arena->fresh++;
    return arena_taken(arena, slot, slot_out);
}

/* /proc/self/pagemap, opened once per process (a child forked with it open reopens its own). */
static pthread_mutex_t pagemap_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t pagemap_once = PTHREAD_ONCE_INIT;
static int pagemap_fd = -1;

static void pagemap_forked(void) {
    if (pagemap_fd >= 0)
        close(pagemap_fd); /* the parent's page tables, not this child's */
    pagemap_fd = -1;
    pthread_mutex_init(&pagemap_lock, NULL);
}

static void pagemap_register(void) { pthread_atfork(NULL, NULL, pagemap_forked); }

static int pagemap(void) {
    pthread_once(&pagemap_once, pagemap_register);
    pthread_mutex_lock(&pagemap_lock);
    if (pagemap_fd < 0)
        pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    int fd = pagemap_fd;
    pthread_mutex_unlock(&pagemap_lock);
    return fd;
}

static int all_zero(const uint8_t *start, size_t length) {
    const uint64_t *words = (const uint64_t *)start;
    for (size_t i = 0; i < length / sizeof(uint64_t); i++)
        if (words[i] != 0)
            return 0;
    return 1;
}

/* Zero a freed memory's pages by hand when it holds few (the rest of its range reads as zeros:
 * never touched, or the shared zero page): 1 if done, 0 if it must go back by madvise. */
static int zero_by_hand(uint8_t *start, size_t length) {
    size_t page = page_size(), pages = length / page;
    uint64_t entries[LMP_ZERO_MAX_PAGES];
    if (pages == 0 || pages > LMP_ZERO_MAX_PAGES || (uintptr_t)start % page != 0)
        return 0;
    int fd = pagemap();
    size_t bytes = pages * sizeof(uint64_t);
    if (fd < 0 || pread(fd, entries, bytes, (off_t)((uintptr_t)start / page * sizeof(uint64_t))) != (ssize_t)bytes)
        return 0;
    size_t resident = 0;
    for (size_t i = 0; i < pages; i++)
        resident += (entries[i] & (LMP_PAGEMAP_PRESENT | LMP_PAGEMAP_SWAPPED)) != 0;
    if (resident > LMP_ZERO_MAX_RESIDENT)
        return 0;
    for (size_t i = 0; i < pages; i++) {
        uint8_t *at = start + i * page;
        if ((entries[i] & (LMP_PAGEMAP_PRESENT | LMP_PAGEMAP_SWAPPED)) && !all_zero(at, page))
            memset(at, 0, page);
    }
    return 1;
}

/* Give a slot back (the lock is not held): its pages to the kernel, or zeroed by hand (a memory
 * that holds few) and kept while the slot is one of the last freed (a stack's are kept as they
 * are), its index to the free list. */
static void arena_give(lmp_arena *arena, uint8_t *start, size_t length, size_t slot) {
    int stack = arena->kind == LMP_ARENA_STACK, retired = atomic_load(&arena->retired);
    if (length > 0 && !stack && !retired && !zero_by_hand(start, length))
        madvise(start, length, MADV_DONTNEED);
    size_t kept = stack ? LMP_STACKS_KEPT : LMP_MEMORIES_KEPT;
    pthread_mutex_lock(&arena->lock);
    arena->free_slots[arena->nfree++] = slot;
    if (retired)
        arena->clean_below = arena->nfree;
    else if (arena->nfree - arena->clean_below > kept) {
        /* under the lock: no one may take the slot while its pages go */
        uint8_t *oldest = slot_address(arena, arena->free_slots[arena->clean_below++]);
        size_t held = stack ? arena->slot_size - arena->guard : LMP_ZERO_MAX_PAGES * page_size(); /* or none */
        madvise(oldest + arena->guard, held < arena->slot_size ? held : arena->slot_size, MADV_DONTNEED);
    }
    arena->live--;
    size_t left = --arena->refs;
    pthread_mutex_unlock(&arena->lock);
    if (left == 0)
        arena_free(arena);
}

/* --- linear memories --- */

static uint8_t *memory_get(void *env, size_t *byte_size, size_t *maximum_byte_size) {
    lmp_arena_memory *memory = env;
    *byte_size = memory->size;
    *maximum_byte_size = memory->max;
    return memory->base;
}

static wasmtime_error_t *memory_grow(void *env, size_t new_size) {
    lmp_arena_memory *memory = env;
    if (new_size > memory->max) /* wasmtime checks the maximum first; never trust it blindly */
        return lmp_wasmtime_error_new("memory.grow past the process's memory slot (the engine's max_memory)");
    memory->size = new_size;
    if (new_size > memory->touched)
        memory->touched = new_size;
    return NULL;
}

static void memory_free(void *env) {
    lmp_arena_memory *memory = env;
    size_t page = page_size(), length = (memory->touched + page - 1) / page * page;
    arena_give(memory->arena, memory->base, length, memory->slot);
    free(memory);
}

static wasmtime_error_t *memory_new(void *env, const wasm_memorytype_t *type, size_t minimum, size_t maximum,
                                    size_t reserved, size_t guard, wasmtime_linear_memory_t *out) {
    (void)type;
    lmp_arena *arena = env;
    char error[200];
    if (guard != 0 || reserved > arena->slot_size) {
        snprintf(error, sizeof error,
                 "the memory arena serves %zu-byte slots without guard regions; the engine asked for %zu "
                 "reserved and %zu guard bytes",
                 arena->slot_size, reserved, guard);
        return lmp_wasmtime_error_new(error);
    }
    if (minimum > arena->slot_size) {
        snprintf(error, sizeof error, "the module's memory needs %zu bytes, more than a memory slot (%zu bytes)",
                 minimum, arena->slot_size);
        return lmp_wasmtime_error_new(error);
    }
    lmp_arena_memory *memory = malloc(sizeof *memory);
    if (memory == NULL)
        return lmp_wasmtime_error_new("out of memory for a linear memory's record");
    pthread_mutex_lock(&arena->lock);
    uint8_t *base = arena_take(arena, &memory->slot, error, sizeof error);
    pthread_mutex_unlock(&arena->lock);
    if (base == NULL) {
        free(memory);
        return lmp_wasmtime_error_new(error);
    }
    memory->arena = arena;
    memory->base = base;
    memory->size = memory->touched = minimum;
    memory->max = maximum < arena->slot_size ? maximum : arena->slot_size;
    out->env = memory;
    out->get_memory = memory_get;
    out->grow_memory = memory_grow;
    out->finalizer = memory_free;
    return NULL;
}

/* --- fiber stacks --- */

static uint8_t *stack_get(void *env, size_t *length) {
    lmp_arena_stack *stack = env;
    *length = stack->arena->slot_size - stack->arena->guard;
    return stack->base + stack->arena->slot_size; /* the top: stacks grow down */
}

static void stack_free(void *env) {
    lmp_arena_stack *stack = env;
    lmp_arena *arena = stack->arena;
    arena_give(arena, stack->base + arena->guard, arena->slot_size - arena->guard, stack->slot);
    free(stack);
}

static wasmtime_error_t *stack_new(void *env, size_t size, bool zeroed, wasmtime_stack_memory_t *out) {
    lmp_arena *arena = env;
    char error[200];
    if (size > arena->slot_size - arena->guard) {
        snprintf(error, sizeof error, "a fiber stack of %zu bytes does not fit a stack slot (%zu bytes)", size,
                 arena->slot_size - arena->guard);
        return lmp_wasmtime_error_new(error);
    }
    lmp_arena_stack *stack = malloc(sizeof *stack);
    if (stack == NULL)
        return lmp_wasmtime_error_new("out of memory for a fiber stack's record");
    pthread_mutex_lock(&arena->lock);
    size_t clean_below = arena->clean_below, nfree = arena->nfree;
    uint8_t *base = arena_take(arena, &stack->slot, error, sizeof error);
    /* taken from the free list, above its clean part: one of the kept stacks */
    int dirty = base != NULL && arena->nfree < nfree && arena->nfree >= clean_below;
    pthread_mutex_unlock(&arena->lock);
    if (base == NULL) {
        free(stack);
        return lmp_wasmtime_error_new(error);
    }
    if (zeroed && dirty) /* fresh slots are zeros; a kept one holds its last fiber's frames */
        madvise(base + arena->guard, arena->slot_size - arena->guard, MADV_DONTNEED);
    stack->arena = arena;
    stack->base = base;
    out->env = stack;
    out->get_stack_memory = stack_get;
    out->finalizer = stack_free;
    return NULL;
}

static void creator_release(void *env) { arena_release(env); }

/* --- Python entry points --- */

#define LMP_ARENA_CAPSULE "lunatic_mp.vm._core.arena"

static void capsule_release(PyObject *capsule) {
    lmp_arena *arena = PyCapsule_GetPointer(capsule, LMP_ARENA_CAPSULE);
    if (arena != NULL)
        arena_release(arena);
}

static lmp_arena *arena_arg(PyObject *value) {
    lmp_arena *arena = PyCapsule_GetPointer(value, LMP_ARENA_CAPSULE);
    if (arena == NULL) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "lunatic_mp.vm._core: expected an arena (from arena_new), got %s",
                     Py_TYPE(value)->tp_name);
    }
    return arena;
}

const char lmp_arena_new_doc[] =
    "arena_new(kind, slot_size, guard, max_slots, chunk_slots, use_mprotect) -> arena\n\n"
    "An arena of max_slots slots of slot_size bytes (guard bytes of each at its low end made\n"
    "inaccessible), reserved chunk_slots at a time. kind: 0 linear memories, 1 fiber stacks.\n"
    "use_mprotect: make guards with mprotect even where MADV_GUARD_INSTALL works (the fallback of\n"
    "kernels before 6.13, for tests and measurements).";

PyObject *lmp_arena_new(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 6) {
        PyErr_Format(PyExc_TypeError,
                     "arena_new takes 6 arguments (kind, slot_size, guard, max_slots, chunk_slots, use_mprotect), "
                     "got %zd",
                     nargs);
        return NULL;
    }
    long kind = PyLong_AsLong(args[0]);
    int use_mprotect = PyObject_IsTrue(args[5]);
    if (use_mprotect < 0)
        return NULL;
    size_t values[4];
    for (int i = 0; i < 4; i++) {
        values[i] = PyLong_AsSize_t(args[i + 1]);
        if (values[i] == (size_t)-1 && PyErr_Occurred())
            return NULL;
    }
    if (kind == -1 && PyErr_Occurred())
        return NULL;
    size_t slot_size = values[0], guard = values[1], max_slots = values[2], chunk_slots = values[3];
    size_t page = page_size();
    if (kind != LMP_ARENA_MEMORY && kind != LMP_ARENA_STACK) {
        PyErr_Format(PyExc_ValueError, "arena_new: kind must be 0 (memories) or 1 (stacks), not %ld", kind);
        return NULL;
    }
    if (slot_size == 0 || slot_size % page || guard % page || guard >= slot_size) {
        PyErr_Format(PyExc_ValueError,
                     "arena_new: slot_size (%zu) and guard (%zu) must be multiples of the page size (%zu), "
                     "the guard smaller than the slot",
                     slot_size, guard, page);
        return NULL;
    }
    if (max_slots == 0 || chunk_slots == 0 || chunk_slots > SIZE_MAX / slot_size ||
        max_slots > SIZE_MAX / sizeof(size_t) - chunk_slots) {
        PyErr_Format(PyExc_ValueError, "arena_new: bad max_slots (%zu) or chunk_slots (%zu)", max_slots,
                     chunk_slots);
        return NULL;
    }
    lmp_arena *arena = calloc(1, sizeof *arena);
    if (arena == NULL)
        return PyErr_NoMemory();
    arena->kind = (int)kind;
    arena->slot_size = slot_size;
    arena->guard = guard;
    arena->chunk_slots = chunk_slots;
    arena->max_slots = max_slots;
    arena->nchunks_max = (max_slots + chunk_slots - 1) / chunk_slots;
    arena->chunks = calloc(arena->nchunks_max, sizeof *arena->chunks);
    arena->free_slots = malloc(max_slots * sizeof *arena->free_slots);
    arena->refs = 1;
    arena->guard_mode = use_mprotect ? LMP_GUARD_MPROTECT : LMP_GUARD_NONE;
    if (arena->chunks == NULL || arena->free_slots == NULL || pthread_mutex_init(&arena->lock, NULL) != 0) {
        free(arena->chunks);
        free(arena->free_slots);
        free(arena);
        return PyErr_NoMemory();
    }
    if (arena->kind == LMP_ARENA_STACK) {
        pthread_mutex_lock(&stack_arenas_lock);
        arena->next_stacks = stack_arenas;
        stack_arenas = arena;
        pthread_mutex_unlock(&stack_arenas_lock);
    }
    PyObject *capsule = PyCapsule_New(arena, LMP_ARENA_CAPSULE, capsule_release);
    if (capsule == NULL)
        arena_free(arena);
    return capsule;
}

const char lmp_arena_install_doc[] =
    "arena_install(arena, config) -> None\n\n"
    "Make the wasm_config_t at address config take its linear memories (a memory arena) or fiber\n"
    "stacks (a stack arena) from the arena. The config is then used to make one engine.";

PyObject *lmp_arena_install(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "arena_install takes 2 arguments (arena, config), got %zd", nargs);
        return NULL;
    }
    if (!lmp_require_ready())
        return NULL;
    lmp_arena *arena = arena_arg(args[0]);
    if (arena == NULL)
        return NULL;
    wasm_config_t *config = lmp_address(args[1], "the config");
    if (config == NULL)
        return NULL;
    pthread_mutex_lock(&arena->lock);
    arena->refs++; /* the creator's: wasmtime calls creator_release when the engine goes */
    pthread_mutex_unlock(&arena->lock);
    if (arena->kind == LMP_ARENA_MEMORY) {
        wasmtime_memory_creator_t creator = {arena, memory_new, creator_release};
        lmp_wasmtime_config_host_memory_creator_set(config, &creator);
    } else {
        wasmtime_stack_creator_t creator = {arena, stack_new, creator_release};
        lmp_wasmtime_config_host_stack_creator_set(config, &creator);
    }
    Py_RETURN_NONE;
}

const char lmp_arena_retire_doc[] =
    "arena_retire(arena) -> None\n\n"
    "The engine is closing: take no more slots, and give none back one by one (the arena is\n"
    "unmapped whole when its last slot is freed; a madvise per exiting process is half of what\n"
    "closing a full engine costs).";

PyObject *lmp_arena_retire(PyObject *module, PyObject *arg) {
    (void)module;
    lmp_arena *arena = arena_arg(arg);
    if (arena == NULL)
        return NULL;
    atomic_store(&arena->retired, 1);
    Py_RETURN_NONE;
}

const char lmp_arena_stats_doc[] =
    "arena_stats(arena) -> tuple[int, int, int, int, int, int, int]\n\n"
    "(live slots, peak live slots, slots ever used, max slots, bytes of address space reserved,\n"
    "guard mode: 0 none yet, 1 MADV_GUARD_INSTALL, 2 mprotect, freed slots still holding pages).";

PyObject *lmp_arena_stats(PyObject *module, PyObject *arg) {
    (void)module;
    lmp_arena *arena = arena_arg(arg);
    if (arena == NULL)
        return NULL;
    pthread_mutex_lock(&arena->lock);
    size_t live = arena->live, peak = arena->peak, fresh = arena->fresh, max = arena->max_slots;
    size_t reserved = arena->nchunks * arena->chunk_slots * arena->slot_size;
    int mode = arena->guard_mode;
    size_t kept = arena->nfree - arena->clean_below;
    pthread_mutex_unlock(&arena->lock);
    return Py_BuildValue("(nnnnnin)", (Py_ssize_t)live, (Py_ssize_t)peak, (Py_ssize_t)fresh, (Py_ssize_t)max,
                         (Py_ssize_t)reserved, mode, (Py_ssize_t)kept);
}
