/* Picks the row kernels for the CPU we run on. Each instruction set's copy is
 * compiled separately with its own -m flags (lib/meson.build), which keeps
 * both GCC and Clang happy and needs no ifunc. */
#include "rowmath.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

extern const mislasi_rowmath mislasi_rowmath_generic;
#if defined(MISLAS_ROWMATH_X86)
extern const mislasi_rowmath mislasi_rowmath_avx2;
extern const mislasi_rowmath mislasi_rowmath_avx512;
#endif

const mislasi_rowmath *mislasi_rowmath_named(const char *isa)
{
    if (isa == NULL)
        return NULL;
    if (strcmp(isa, "generic") == 0)
        return &mislasi_rowmath_generic;
#if defined(MISLAS_ROWMATH_X86)
    __builtin_cpu_init();
    if (strcmp(isa, "avx2") == 0 && __builtin_cpu_supports("avx2"))
        return &mislasi_rowmath_avx2;
    if (strcmp(isa, "avx512") == 0 && __builtin_cpu_supports("avx512f"))
        return &mislasi_rowmath_avx512;
#endif
    return NULL;
}

static const mislasi_rowmath *detect(void)
{
    const mislasi_rowmath *forced = mislasi_rowmath_named(getenv("MISLAS_CPU"));
    if (forced != NULL)
        return forced;
    const mislasi_rowmath *best = mislasi_rowmath_named("avx512");
    if (best == NULL)
        best = mislasi_rowmath_named("avx2");
    return best != NULL ? best : &mislasi_rowmath_generic;
}

const mislasi_rowmath *mislasi_rowmath_get(void)
{
    /* Threads racing here all store the same pointer. */
    static _Atomic(const mislasi_rowmath *) chosen;
    const mislasi_rowmath *rm = atomic_load_explicit(&chosen, memory_order_acquire);
    if (rm == NULL) {
        rm = detect();
        atomic_store_explicit(&chosen, rm, memory_order_release);
    }
    return rm;
}
