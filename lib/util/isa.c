/* The instruction-set choice (isa.h). */
#include "isa.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

bool mislasi_isa_named(const char *name, mislasi_isa *isa)
{
    if (name == NULL)
        return false;
    if (strcmp(name, "generic") == 0) {
        *isa = MISLASI_ISA_GENERIC;
        return true;
    }
#if defined(MISLAS_KERNELS_X86)
    __builtin_cpu_init();
    if (strcmp(name, "avx2") == 0 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        *isa = MISLASI_ISA_AVX2;
        return true;
    }
    if (strcmp(name, "avx512") == 0 && __builtin_cpu_supports("avx512f")) {
        *isa = MISLASI_ISA_AVX512;
        return true;
    }
#endif
    return false;
}

static mislasi_isa detect(void)
{
    mislasi_isa isa;
    if (mislasi_isa_named(getenv("MISLAS_CPU"), &isa))
        return isa;
    if (mislasi_isa_named("avx512", &isa) || mislasi_isa_named("avx2", &isa))
        return isa;
    return MISLASI_ISA_GENERIC;
}

mislasi_isa mislasi_isa_get(void)
{
    /* 0 = not chosen yet; threads racing here all store the same value. */
    static atomic_int chosen;
    int c = atomic_load_explicit(&chosen, memory_order_acquire);
    if (c == 0) {
        c = (int)detect() + 1;
        atomic_store_explicit(&chosen, c, memory_order_release);
    }
    return (mislasi_isa)(c - 1);
}
