/* The instruction-set choice (isa.h). */
#include "isa.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static const char *const NAMES[] = {
    [MISLASI_ISA_GENERIC] = "generic", [MISLASI_ISA_AVX2] = "avx2", [MISLASI_ISA_AVX512] = "avx512",
};

const char *mislasi_isa_name(mislasi_isa isa)
{
    return NAMES[isa];
}

/* Whether this CPU runs the set. */
static bool runs(mislasi_isa isa)
{
#if defined(MISLAS_KERNELS_X86)
    __builtin_cpu_init();
    if (isa == MISLASI_ISA_AVX2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (isa == MISLASI_ISA_AVX512)
        return __builtin_cpu_supports("avx512f");
#endif
    return isa == MISLASI_ISA_GENERIC;
}

bool mislasi_isa_named(const char *name, mislasi_isa *isa)
{
    if (name == NULL)
        return false;
    for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++)
        if (strcmp(name, NAMES[i]) == 0 && runs((mislasi_isa)i)) {
            *isa = (mislasi_isa)i;
            return true;
        }
    return false;
}

static mislasi_isa detect(void)
{
    mislasi_isa isa;
    if (mislasi_isa_named(getenv("MISLAS_CPU"), &isa))
        return isa;
    return runs(MISLASI_ISA_AVX512) ? MISLASI_ISA_AVX512 : runs(MISLASI_ISA_AVX2) ? MISLASI_ISA_AVX2
                                                                              : MISLASI_ISA_GENERIC;
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
