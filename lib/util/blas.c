/* BLIS behind one call (blas.h), started with the fastest kernel set the CPU
 * supports. BLIS 0.9 as Debian builds it can fall back to its generic
 * kernels on CPUs its detection does not know (seen here: an AMD EPYC with
 * AVX-512 got "generic", 4x slower than "skx"), and it reads its choice
 * from BLIS_ARCH_TYPE only once, when it starts; so the library sets that
 * variable before BLIS's first use unless the user has. */
#define _GNU_SOURCE
#include <mislas/model.h>

#include "blas.h"
#include "util.h"

#include <blis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t blis_once = PTHREAD_ONCE_INIT;

static bool cpu_has_skx(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")
        && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#else
    return false;
#endif
}

static bool cpu_has_haswell(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return false;
#endif
}

/* The BLIS architecture id for a MISLAS_BLIS_ARCH value, -1 for "let BLIS
 * decide", -2 for an unknown name. */
static int arch_named(const char *name)
{
    static const struct { const char *name; arch_t id; } known[] = {
        {"skx", BLIS_ARCH_SKX}, {"haswell", BLIS_ARCH_HASWELL}, {"zen", BLIS_ARCH_ZEN},
        {"zen2", BLIS_ARCH_ZEN2}, {"zen3", BLIS_ARCH_ZEN3}, {"generic", BLIS_ARCH_GENERIC},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(name, known[i].name) == 0)
            return (int)known[i].id;
    return strcmp(name, "blis") == 0 ? -1 : -2;
}

static void start_blis(void)
{
    if (getenv("BLIS_ARCH_TYPE") == NULL) {
        const char *wanted = getenv("MISLAS_BLIS_ARCH");
        int id = wanted != NULL && strcmp(wanted, "auto") != 0 ? arch_named(wanted) : -2;
        if (id == -2)   /* auto, or a name we do not know: the fastest the CPU runs */
            id = cpu_has_skx() ? (int)BLIS_ARCH_SKX
               : cpu_has_haswell() ? (int)BLIS_ARCH_HASWELL : -1;
        /* The kernels named must be ones the CPU can run. */
        if ((id == (int)BLIS_ARCH_SKX && !cpu_has_skx())
                || ((id == (int)BLIS_ARCH_HASWELL || id == (int)BLIS_ARCH_ZEN
                     || id == (int)BLIS_ARCH_ZEN2 || id == (int)BLIS_ARCH_ZEN3) && !cpu_has_haswell()))
            id = -1;
        if (id >= 0) {
            char text[16];
            snprintf(text, sizeof text, "%d", id);
            setenv("BLIS_ARCH_TYPE", text, 0);
        }
    }
    bli_init();
}

void mislasi_sgemm(bool trans_a, bool trans_b, size_t m, size_t n, size_t k,
        float alpha, const float *a, size_t lda, const float *b, size_t ldb,
        float beta, float *c, size_t ldc)
{
    pthread_once(&blis_once, start_blis);
    rntm_t rntm = BLIS_RNTM_INITIALIZER;
    bli_rntm_set_num_threads(1, &rntm);
    /* BLIS's small-matrix ("sup") kernels, which it picks by size on some
     * kernel sets (haswell, zen), sum in another order than its packed
     * kernels: an image's logits would then depend on how many images share
     * its batch. */
    bli_rntm_disable_l3_sup(&rntm);
    bli_sgemm_ex(trans_a ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE,
            trans_b ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE,
            (dim_t)m, (dim_t)n, (dim_t)k, &alpha,
            (float *)a, (inc_t)lda, 1, (float *)b, (inc_t)ldb, 1,
            &beta, c, (inc_t)ldc, 1, NULL, &rntm);
}

const char *mislas_blas_kernels(void)
{
    pthread_once(&blis_once, start_blis);
    return bli_arch_string(bli_arch_query_id());
}
