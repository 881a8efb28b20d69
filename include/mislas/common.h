/* libmislas: status codes, error messages, version and the allocator hook.
 *
 * Every fallible function of the library returns MISLAS_OK (0) or one of the
 * negative codes below; mislas_last_error() then says what went wrong, naming
 * the argument or file position at fault. */
#ifndef MISLAS_COMMON_H
#define MISLAS_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include <mislas/version.h>

#if defined(_WIN32) && defined(MISLAS_BUILDING_DLL)
#define MISLAS_API __declspec(dllexport)
#elif defined(__GNUC__) || defined(__clang__)
#define MISLAS_API __attribute__((visibility("default")))
#else
#define MISLAS_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mislas_status {
    MISLAS_OK = 0,
    MISLAS_ERR_INVALID_ARGUMENT = -1,
    MISLAS_ERR_OUT_OF_MEMORY = -2,
    MISLAS_ERR_IO = -3,
    MISLAS_ERR_FORMAT = -4,      /* malformed or corrupt file or buffer */
    MISLAS_ERR_UNSUPPORTED = -5,
    MISLAS_ERR_NUMERIC = -6,     /* NaN or infinity in the input */
    MISLAS_ERR_STATE = -7,       /* call not valid in the object's current state */
    MISLAS_ERR_CANCELLED = -8    /* a progress callback asked to stop */
} mislas_status;

/* A static English name of a status code ("invalid argument", ...). Never NULL. */
MISLAS_API const char *mislas_status_string(int status);

/* The message of the last failure on the calling thread, e.g.
 * "mislas_loss_compute: targets[3] = 12 is outside [0, 10)". The string stays
 * valid until the next failing call on the same thread. Successful calls do
 * not clear it. Never NULL ("" before any failure). */
MISLAS_API const char *mislas_last_error(void);

/* "MAJOR.MINOR.PATCH" of the library actually loaded (compare with the
 * MISLAS_VERSION_* macros of the headers you compiled against). */
MISLAS_API const char *mislas_version(void);

/* The allocator hook. Every byte the library allocates goes through `alloc`
 * and is returned through `release` (thread stacks and BLIS's internal packing
 * buffers are the system's and BLIS's, not the library's); `user` is passed to both untouched.
 * `alloc` returns NULL on failure (the library then returns
 * MISLAS_ERR_OUT_OF_MEMORY and leaks nothing). Both NULL restores malloc/free.
 * Install it before other calls; it is a process-wide setting and not
 * synchronised with calls running on other threads. Objects created under one
 * allocator are safely released through that same allocator later, even after
 * the hook has been changed. */
typedef void *(*mislas_alloc_fn)(size_t size, void *user);
typedef void (*mislas_release_fn)(void *ptr, void *user);
MISLAS_API int mislas_set_allocator(mislas_alloc_fn alloc, mislas_release_fn release, void *user);

/* Threads the library's own loops use: 0 (the default) means one per CPU
 * this process may run on, or MISLAS_NUM_THREADS from the environment.
 * Results never depend on the thread count. Process-wide; n in [0, 256]. */
MISLAS_API int mislas_set_num_threads(int32_t n);
/* The thread count in effect (>= 1). */
MISLAS_API int32_t mislas_num_threads(void);

/* BLIS's kernel set in use for the matrix products ("skx", "haswell", ...).
 * The library picks the fastest set the CPU supports before BLIS starts
 * (BLIS's own detection may fall back to slower ones); MISLAS_BLIS_ARCH
 * (skx, haswell, zen, zen2, zen3, generic, blis for BLIS's own choice, or
 * auto, the default, which an unknown name also means) overrides the choice,
 * a set the CPU cannot run falls back to BLIS's choice, and a BLIS_ARCH_TYPE
 * already in the environment wins over both. */
MISLAS_API const char *mislas_blas_kernels(void);

#ifdef __cplusplus
}
#endif

#endif
