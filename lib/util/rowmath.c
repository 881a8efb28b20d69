/* The row kernels of the instruction set in use (isa.h). Each set's copy is
 * compiled separately with its own -m flags (lib/meson.build), which keeps
 * both GCC and Clang happy and needs no ifunc. */
#include "rowmath.h"
#include "isa.h"

#include <stddef.h>

extern const mislasi_rowmath mislasi_rowmath_generic;
#if defined(MISLAS_KERNELS_X86)
extern const mislasi_rowmath mislasi_rowmath_avx2;
extern const mislasi_rowmath mislasi_rowmath_avx512;
#endif

static const mislasi_rowmath *table(mislasi_isa isa)
{
    switch (isa) {
#if defined(MISLAS_KERNELS_X86)
    case MISLASI_ISA_AVX2:
        return &mislasi_rowmath_avx2;
    case MISLASI_ISA_AVX512:
        return &mislasi_rowmath_avx512;
#endif
    default:
        return &mislasi_rowmath_generic;
    }
}

const mislasi_rowmath *mislasi_rowmath_named(const char *name)
{
    mislasi_isa isa;
    return mislasi_isa_named(name, &isa) ? table(isa) : NULL;
}

const mislasi_rowmath *mislasi_rowmath_get(void)
{
    return table(mislasi_isa_get());
}
