/* Post-hoc scaling of logits fitted on a validation split: temperature and
 * vector scaling (Guo et al. 2017). Both minimise the mean NLL, which is
 * convex in their parameters (log-sum-exp of functions linear in them), so
 * the minimum found is the minimum. Everything is computed in double, in
 * sample order, on one thread: the same logits give the same fit. */
#include <mislas/calib.h>

#include "lbfgs.h"

#include "util/util.h"

#include <math.h>
#include <string.h>

void mislas_calib_fit_options_init(mislas_calib_fit_options *opts)
{
    if (opts == NULL)
        return;
    memset(opts, 0, sizeof *opts);
    opts->struct_size = sizeof *opts;
    opts->max_iterations = 500;
    opts->tolerance = 1e-7;
}

/* What both fits check first: the options (into *o, defaults filled in) and the set. */
static int begin_fit(const char *fn, const mislas_calib_fit_options *opts, mislas_calib_fit_options *o, const float *logits,
        const int32_t *targets, size_t n, int32_t num_classes)
{
    mislas_calib_fit_options_init(o);
    int rc;
    if (opts != NULL && (rc = mislasi_read_options(fn, o, sizeof *o, opts)) != MISLAS_OK)
        return rc;
    if (o->max_iterations < 1)
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: opts->max_iterations = %d, need at least 1", fn,
                (int)o->max_iterations);
    if (!(o->tolerance > 0.0 && o->tolerance < 1.0))
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: opts->tolerance = %g is not in (0, 1)", fn, o->tolerance);
    if (!(o->l2 >= 0.0 && o->l2 <= 1e6))
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: opts->l2 = %g is not in [0, 1e6]", fn, o->l2);
    return mislasi_check_logit_set(fn, logits, targets, n, num_classes);
}

/* ---------------------------------------------------------- temperature */

/* First and second derivatives of the mean NLL of softmax(beta z) in beta:
 * mean over samples of E_p[z] - z_y and of Var_p[z]. */
static void temperature_slope(const float *logits, const int32_t *targets, size_t n, size_t k, double beta,
        double *slope, double *curvature)
{
    double d1 = 0.0, d2 = 0.0;
    for (size_t i = 0; i < n; i++) {
        const float *z = logits + i * k;
        double m = z[0];
        for (size_t j = 1; j < k; j++)
            m = z[j] > m ? z[j] : m;
        double sum = 0.0, mean = 0.0, square = 0.0;
        for (size_t j = 0; j < k; j++) {
            double e = exp(beta * ((double)z[j] - m)), c = (double)z[j] - m;
            sum += e;
            mean += e * c;
            square += e * c * c;
        }
        mean /= sum;
        d1 += mean - ((double)z[targets[i]] - m);
        d2 += square / sum - mean * mean;
    }
    *slope = d1 / (double)n;
    *curvature = d2 / (double)n;
}

int mislas_calib_fit_temperature(double *temperature, const float *logits, const int32_t *targets,
        size_t n, int32_t num_classes, const mislas_calib_fit_options *opts)
{
    static const char fn[] = "mislas_calib_fit_temperature";
    MISLASI_CHECK_NOT_NULL(fn, temperature);
    mislas_calib_fit_options o;
    int rc = begin_fit(fn, opts, &o, logits, targets, n, num_classes);
    if (rc != MISLAS_OK)
        return rc;
    const size_t k = (size_t)num_classes;
    double slope, curvature;
    /* at beta = 0 the slope is mean_i (mean_j z_ij - z_iy) */
    temperature_slope(logits, targets, n, k, 0.0, &slope, &curvature);
    if (!(slope < 0.0))
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: the targets' logits are on average no higher than the "
                "others', so no positive temperature fits", fn);
    /* bracket the root of the slope: [lo, hi] with slope(lo) < 0 < slope(hi) */
    double lo = 0.0, hi = 1.0;
    /* a slope of exactly 0 at a large beta is an underflow of the others'
     * probabilities, not a minimum: keep going, to the separable case */
    for (temperature_slope(logits, targets, n, k, hi, &slope, &curvature); slope <= 0.0;
            temperature_slope(logits, targets, n, k, hi, &slope, &curvature)) {
        lo = hi;
        hi *= 2.0;
        if (hi > 1e12)
            return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "%s: the NLL keeps falling as the temperature goes "
                    "to 0 (the logits separate the classes), so no temperature minimises it", fn);
    }
    double beta = hi;
    bool converged = false;
    for (int32_t it = 0; it < o.max_iterations; it++) {
        if (fabs(slope) < o.tolerance || hi - lo <= 1e-15 * hi) {
            converged = true;
            break;
        }
        if (slope < 0.0)
            lo = beta;
        else
            hi = beta;
        double next = curvature > 0.0 ? beta - slope / curvature : NAN;
        beta = next > lo && next < hi ? next : 0.5 * (lo + hi);
        temperature_slope(logits, targets, n, k, beta, &slope, &curvature);
    }
    if (!converged && !(fabs(slope) < o.tolerance))
        return mislasi_fail(MISLAS_ERR_STATE, "%s: no convergence in %d iterations (raise opts->max_iterations "
                "or the tolerance)", fn, (int)o.max_iterations);
    *temperature = 1.0 / beta;
    return MISLAS_OK;
}

/* ------------------------------------------------------- vector scaling */

/* The objective of vector scaling: mean NLL of softmax(a z + c) plus
 * l2 / 2 (|a - a0|^2 + |c|^2), and its gradient. The scales are optimised
 * as u_j = a_j rms_j, rms_j the RMS size of logit j: a model with logits in
 * the hundreds makes the NLL thousands of times stiffer along a_j than along
 * c_j, which L-BFGS crosses only slowly, and the stopping test on u is
 * independent of the logits' units. u, c: the point; gu, gc: the gradient;
 * a, p: K doubles of scratch each. */
typedef struct vector_problem {
    const float *logits;
    const int32_t *targets;
    size_t n, k;
    double l2, a0;
    const double *rms;
} vector_problem;

static double vector_nll(const vector_problem *v, const double *u, const double *c, double *gu, double *gc,
        double *a, double *p)
{
    const double *rms = v->rms;
    const float *logits = v->logits;
    const int32_t *targets = v->targets;
    const size_t n = v->n, k = v->k;
    double total = 0.0;
    memset(gu, 0, k * sizeof *gu);
    memset(gc, 0, k * sizeof *gc);
    for (size_t j = 0; j < k; j++)
        a[j] = u[j] / rms[j];
    for (size_t i = 0; i < n; i++) {
        const float *z = logits + i * k;
        double m = -INFINITY, sum = 0.0;
        for (size_t j = 0; j < k; j++) {
            p[j] = a[j] * z[j] + c[j];
            m = p[j] > m ? p[j] : m;
        }
        const size_t y = (size_t)targets[i];
        double target_logit = p[y];
        for (size_t j = 0; j < k; j++)
            sum += p[j] = exp(p[j] - m);
        total += m + log(sum) - target_logit;
        for (size_t j = 0; j < k; j++) {
            double d = p[j] / sum - (j == y ? 1.0 : 0.0);
            gu[j] += d * z[j];
            gc[j] += d;
        }
    }
    double penalty = 0.0;
    for (size_t j = 0; j < k; j++) {
        gu[j] = (gu[j] / (double)n + v->l2 * (a[j] - v->a0)) / rms[j];
        gc[j] = gc[j] / (double)n + v->l2 * c[j];
        penalty += (a[j] - v->a0) * (a[j] - v->a0) + c[j] * c[j];
    }
    return total / (double)n + 0.5 * v->l2 * penalty;
}

/* vector_nll over one vector of parameters (u, then c), for mislasi_lbfgs. */
typedef struct vector_objective {
    const vector_problem *problem;
    double *a, *p;              /* vector_nll's scratch */
} vector_objective;

static double vector_objective_at(void *ctx, const double *x, double *grad)
{
    const vector_objective *v = ctx;
    size_t k = v->problem->k;
    return vector_nll(v->problem, x, x + k, grad, grad + k, v->a, v->p);
}

int mislas_calib_fit_vector_scaling(float *scale, float *bias, const float *logits,
        const int32_t *targets, size_t n, int32_t num_classes, const mislas_calib_fit_options *opts)
{
    static const char fn[] = "mislas_calib_fit_vector_scaling";
    MISLASI_CHECK_NOT_NULL(fn, scale);
    MISLASI_CHECK_NOT_NULL(fn, bias);
    mislas_calib_fit_options o;
    int rc = begin_fit(fn, opts, &o, logits, targets, n, num_classes);
    if (rc != MISLAS_OK)
        return rc;
    const size_t k = (size_t)num_classes, dim = 2 * k;
    /* x; scratch a and row; rms */
    double *mem = mislasi_calloc(dim + 3 * k, sizeof *mem);
    if (mem == NULL)
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu classes", fn, k);
    double *x = mem, *a = x + dim, *row = a + k, *rms = row + k;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < k; j++)
            rms[j] += (double)logits[i * k + j] * logits[i * k + j];
    for (size_t j = 0; j < k; j++)
        rms[j] = rms[j] > 0.0 ? sqrt(rms[j] / (double)n) : 1.0;
    /* start from temperature scaling when it fits, else from the identity */
    double t = 1.0;
    mislas_calib_fit_options quick = o;
    if (mislas_calib_fit_temperature(&t, logits, targets, n, num_classes, &quick) != MISLAS_OK)
        t = 1.0;
    for (size_t j = 0; j < k; j++)
        x[j] = rms[j] / t;
    const vector_problem problem = { logits, targets, n, k, o.l2, 1.0 / t, rms };
    vector_objective objective = { &problem, a, row };
    rc = mislasi_lbfgs(fn, vector_objective_at, &objective, x, dim, o.max_iterations, o.tolerance);
    for (size_t j = 0; j < k; j++)
        x[j] /= rms[j];
    for (size_t j = 0; rc == MISLAS_OK && j < dim; j++)
        if (!isfinite((float)x[j]))
            rc = mislasi_fail(MISLAS_ERR_NUMERIC, "%s: the fit diverged (raise opts->l2)", fn);
    if (rc == MISLAS_OK) {
        for (size_t j = 0; j < k; j++) {
            scale[j] = (float)x[j];
            bias[j] = (float)x[k + j];
        }
    } else if (rc == MISLAS_ERR_STATE) {
        mislasi_fail(rc, "%s: no convergence in %d iterations (raise opts->max_iterations or the tolerance)", fn,
                (int)o.max_iterations);
    }
    mislasi_free(mem);
    return rc;
}
