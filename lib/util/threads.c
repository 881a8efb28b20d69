/* A small fixed pool of worker threads (see threads.h). Work is split into
 * contiguous parts by index, so which thread computes what is a pure
 * function of the item count and the thread count; callers only hand out
 * independent items, so results never depend on either. */
#define _GNU_SOURCE
#include <mislas/common.h>

#include "util.h"
#include "threads.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* Waiting threads spin this long before sleeping: a training loop calls in
 * every few hundred microseconds, and a condition-variable wake-up costs
 * tens of them, while an idle process stops spinning almost at once. */
enum { MAX_THREADS = 256, SPIN_NS = 100000, IDLE_S = 2 };

typedef struct pool {
    pthread_mutex_t dispatch;       /* held by the one call using the pool */
    pthread_mutex_t lock;           /* guards everything below */
    pthread_cond_t work_ready, work_done;
    int started;                    /* workers running, ids 1..started */
    pthread_t workers[MAX_THREADS];
    _Atomic int stopping;           /* set once, when the library is unloaded */
    _Atomic uint64_t generation;    /* bumped for every job */
    int active;                     /* threads in the current job, caller included */
    _Atomic int remaining;          /* workers of the current job not yet done */
    mislasi_range_fn fn;
    void *ctx;
    size_t n;
} pool;

static pool the_pool = {
    .dispatch = PTHREAD_MUTEX_INITIALIZER,
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .work_ready = PTHREAD_COND_INITIALIZER,
    .work_done = PTHREAD_COND_INITIALIZER,
};
static _Atomic int32_t requested_threads;   /* 0 = default */
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void run_part(mislasi_range_fn fn, void *ctx, size_t n, int part, int parts)
{
    size_t begin = n * (size_t)part / (size_t)parts, end = n * (size_t)(part + 1) / (size_t)parts;
    if (begin < end)
        fn(ctx, begin, end);
}

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

double mislasi_seconds(void)
{
    return 1e-9 * (double)now_ns();
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Spins until *value != unwanted (or the pool stops) or SPIN_NS pass; true
 * if it changed. */
static bool spin_while_u64(_Atomic uint64_t *value, uint64_t unwanted)
{
    uint64_t start = now_ns();
    for (unsigned i = 1;; i++) {
        if (atomic_load_explicit(value, memory_order_acquire) != unwanted || atomic_load(&the_pool.stopping))
            return true;
        cpu_relax();
        if (i % 256 == 0 && now_ns() - start > SPIN_NS)
            return false;
    }
}

/* Spins until *value == 0 or SPIN_NS pass; true if it reached 0. */
static bool spin_until_zero(_Atomic int *value)
{
    uint64_t start = now_ns();
    for (unsigned i = 1;; i++) {
        if (atomic_load_explicit(value, memory_order_acquire) == 0)
            return true;
        cpu_relax();
        if (i % 256 == 0 && now_ns() - start > SPIN_NS)
            return false;
    }
}

/* Waits for a job other than `seen`; false when the worker should end:
 * the pool is stopping, or it is the highest-numbered worker and has been
 * idle for IDLE_S (so a process whose main thread calls pthread_exit can
 * still end, and an idle process holds no threads). Called with p->lock. */
static bool wait_for_job(pool *p, int id, uint64_t seen)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += IDLE_S;
    while (atomic_load(&p->generation) == seen) {
        if (atomic_load(&p->stopping))
            return false;
        if (pthread_cond_timedwait(&p->work_ready, &p->lock, &deadline) != ETIMEDOUT ||
            atomic_load(&p->generation) != seen)
            continue;
        if (id == p->started) {
            p->started--;           /* ids stay 1..started, as the job split needs */
            pthread_detach(pthread_self());
            return false;
        }
        deadline.tv_sec += IDLE_S;  /* a higher worker leaves first */
    }
    return true;
}

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    pool *p = &the_pool;
    /* A worker is started just before the job it is needed for is posted,
     * so it must not take that job's generation as already seen. */
    uint64_t seen = 0;
    bool was_needed = true;
    for (;;) {
        /* only a worker the last job used expects the next one soon */
        if (was_needed)
            spin_while_u64(&p->generation, seen);
        pthread_mutex_lock(&p->lock);
        if (!wait_for_job(p, id, seen)) {
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
        seen = atomic_load(&p->generation);
        int parts = p->active;
        mislasi_range_fn fn = p->fn;
        void *ctx = p->ctx;
        size_t n = p->n;
        pthread_mutex_unlock(&p->lock);
        was_needed = id < parts;
        if (!was_needed)
            continue;
        run_part(fn, ctx, n, id, parts);
        if (atomic_fetch_sub(&p->remaining, 1) == 1) {
            pthread_mutex_lock(&p->lock);
            pthread_cond_signal(&p->work_done);
            pthread_mutex_unlock(&p->lock);
        }
    }
}

/* fork: hold the pool across it, so no job is half-dispatched; the child
 * has none of the workers, so it starts from an empty pool. */
static void before_fork(void)
{
    pthread_mutex_lock(&the_pool.dispatch);
    pthread_mutex_lock(&the_pool.lock);
}

static void after_fork_parent(void)
{
    pthread_mutex_unlock(&the_pool.lock);
    pthread_mutex_unlock(&the_pool.dispatch);
}

static void after_fork_child(void)
{
    pool *p = &the_pool;
    pthread_mutex_init(&p->dispatch, NULL);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work_ready, NULL);
    pthread_cond_init(&p->work_done, NULL);
    p->started = 0;
    p->active = 0;
    atomic_store(&p->remaining, 0);
}

/* At exit or unload, let the workers finish and join them, so nothing of the
 * pool outlives the library (and leak checkers see no stray thread). */
__attribute__((destructor)) static void stop_pool(void)
{
    pool *p = &the_pool;
    pthread_mutex_lock(&p->lock);
    atomic_store(&p->stopping, 1);
    pthread_cond_broadcast(&p->work_ready);
    int started = p->started;
    p->started = 0;
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < started; i++)
        pthread_join(p->workers[i], NULL);
}

static void register_fork_handlers(void)
{
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

static int32_t default_threads(void)
{
    const char *env = getenv("MISLAS_NUM_THREADS");
    if (env != NULL) {
        long v = strtol(env, NULL, 10);
        if (v >= 1 && v <= MAX_THREADS)
            return (int32_t)v;
    }
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int count = CPU_COUNT(&set);
        if (count >= 1)
            return count < MAX_THREADS ? count : MAX_THREADS;
    }
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    return online < 1 ? 1 : online > MAX_THREADS ? MAX_THREADS : (int32_t)online;
}

int mislas_set_num_threads(int32_t n)
{
    if (n < 0 || n > MAX_THREADS)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT,
                "mislas_set_num_threads: n = %d is not in [0, %d] (0 = one per CPU)", (int)n, MAX_THREADS);
    requested_threads = n;
    return MISLAS_OK;
}

int32_t mislas_num_threads(void)
{
    int32_t n = requested_threads;
    return n > 0 ? n : default_threads();
}

/* Starts workers up to id `want - 1`; returns how many threads can take part. */
static int grow_pool(pool *p, int want)
{
    while (p->started + 1 < want && !atomic_load(&p->stopping)) {
        if (pthread_create(&p->workers[p->started], NULL, worker, (void *)(intptr_t)(p->started + 1)) != 0)
            break;
        p->started++;
    }
    return p->started + 1 < want ? p->started + 1 : want;
}

void mislasi_parallel_for(size_t n, size_t grain, mislasi_range_fn fn, void *ctx)
{
    if (n == 0)
        return;
    size_t by_size = grain == 0 ? n : (n + grain - 1) / grain;
    int32_t threads = mislas_num_threads();
    int parts = by_size < (size_t)threads ? (int)by_size : threads;
    pool *p = &the_pool;
    if (parts <= 1 || pthread_mutex_trylock(&p->dispatch) != 0) {
        fn(ctx, 0, n);
        return;
    }
    pthread_once(&fork_once, register_fork_handlers);
    pthread_mutex_lock(&p->lock);
    parts = grow_pool(p, parts);
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->active = parts;
    atomic_store(&p->remaining, parts - 1);
    atomic_fetch_add(&p->generation, 1);
    pthread_cond_broadcast(&p->work_ready);
    pthread_mutex_unlock(&p->lock);

    run_part(fn, ctx, n, 0, parts);

    if (!spin_until_zero(&p->remaining)) {
        pthread_mutex_lock(&p->lock);
        while (atomic_load(&p->remaining) > 0)
            pthread_cond_wait(&p->work_done, &p->lock);
        pthread_mutex_unlock(&p->lock);
    }
    pthread_mutex_unlock(&p->dispatch);
}
