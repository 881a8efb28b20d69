/* L-BFGS (Nocedal and Wright, algorithms 7.4 and 7.5) with a backtracking
 * line search on Armijo's condition. */
#include "lbfgs.h"

#include "util/util.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

/* Curvature pairs kept. */
enum { HISTORY = 8 };

typedef struct history {
    double *s, *y;              /* HISTORY pairs of dim values */
    double rho[HISTORY];        /* 1 / (s . y) */
    int32_t stored, newest;
} history;

static double dot(const double *a, const double *b, size_t dim)
{
    double sum = 0.0;
    for (size_t d = 0; d < dim; d++)
        sum += a[d] * b[d];
    return sum;
}

/* The two-loop recursion: dir = -H g, H the inverse Hessian the pairs imply. */
static void direction(const history *h, const double *g, double *dir, size_t dim)
{
    double alpha[HISTORY];
    for (size_t d = 0; d < dim; d++)
        dir[d] = -g[d];
    for (int32_t i = 0; i < h->stored; i++) {
        int32_t idx = (h->newest - i + HISTORY) % HISTORY;
        alpha[idx] = h->rho[idx] * dot(h->s + idx * dim, dir, dim);
        for (size_t d = 0; d < dim; d++)
            dir[d] -= alpha[idx] * h->y[idx * dim + d];
    }
    if (h->stored > 0) {
        const double *y = h->y + h->newest * dim;
        double yy = dot(y, y, dim), sy = 1.0 / h->rho[h->newest];
        for (size_t d = 0; d < dim; d++)
            dir[d] *= sy / yy;
    }
    for (int32_t i = h->stored - 1; i >= 0; i--) {
        int32_t idx = (h->newest - i + HISTORY) % HISTORY;
        double beta = h->rho[idx] * dot(h->y + idx * dim, dir, dim);
        for (size_t d = 0; d < dim; d++)
            dir[d] += (alpha[idx] - beta) * h->s[idx * dim + d];
    }
}

/* Keeps the step from x to xt only with positive curvature, so that H stays
 * positive definite. */
static void remember(history *h, const double *x, const double *xt, const double *g, const double *gt, size_t dim)
{
    double sy = 0.0;
    for (size_t d = 0; d < dim; d++)
        sy += (xt[d] - x[d]) * (gt[d] - g[d]);
    if (!(sy > 0.0))
        return;
    h->newest = (h->newest + 1) % HISTORY;
    for (size_t d = 0; d < dim; d++) {
        h->s[h->newest * dim + d] = xt[d] - x[d];
        h->y[h->newest * dim + d] = gt[d] - g[d];
    }
    h->rho[h->newest] = 1.0 / sy;
    h->stored = h->stored < HISTORY ? h->stored + 1 : HISTORY;
}

int mislasi_lbfgs(const char *fn, mislasi_objective f, void *ctx, double *x, size_t dim, int32_t max_iterations,
        double tolerance)
{
    /* g, trial x and g, direction; the HISTORY pairs */
    double *mem = mislasi_calloc(4 * dim + 2 * HISTORY * dim, sizeof *mem);
    if (mem == NULL)
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu parameters", fn, dim);
    double *g = mem, *xt = g + dim, *gt = xt + dim, *dir = gt + dim;
    history h = {.s = dir + dim, .y = dir + dim + HISTORY * dim, .stored = 0, .newest = -1};
    double fx = f(ctx, x, g);
    int status = MISLAS_ERR_STATE;
    for (int32_t it = 0; it < max_iterations; it++) {
        double gmax = 0.0;
        for (size_t d = 0; d < dim; d++)
            gmax = fmax(gmax, fabs(g[d]));
        if (gmax < tolerance) {
            status = MISLAS_OK;
            break;
        }
        direction(&h, g, dir, dim);
        double slope = dot(g, dir, dim);
        if (!(slope < 0.0)) {   /* not a descent direction: restart from steepest descent */
            for (size_t d = 0; d < dim; d++)
                dir[d] = -g[d];
            slope = 0.0;
            for (size_t d = 0; d < dim; d++)
                slope -= g[d] * g[d];
            h.stored = 0;
        }
        double step = h.stored == 0 ? fmin(1.0, 1.0 / sqrt(-slope)) : 1.0, ft = fx;
        bool moved = false;
        for (int tries = 0; tries < 60; tries++, step *= 0.5) {
            for (size_t d = 0; d < dim; d++)
                xt[d] = x[d] + step * dir[d];
            ft = f(ctx, xt, gt);
            if (ft <= fx + 1e-4 * step * slope) {
                moved = true;
                break;
            }
        }
        if (!moved && h.stored > 0) {
            h.stored = 0;       /* the quasi-Newton direction failed: try steepest descent first */
            continue;
        }
        if (!moved || fx - ft <= 1e-16 * fabs(fx)) {
            /* no further decrease is representable: at the minimum to working precision */
            if (moved)
                memcpy(x, xt, dim * sizeof *x);
            status = MISLAS_OK;
            break;
        }
        remember(&h, x, xt, g, gt, dim);
        memcpy(x, xt, dim * sizeof *x);
        memcpy(g, gt, dim * sizeof *g);
        fx = ft;
    }
    mislasi_free(mem);
    return status;
}
