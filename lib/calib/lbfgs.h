/* Unconstrained minimisation by L-BFGS, for the calibration fits
 * (recalibrate.c). Private to lib/calib. */
#ifndef MISLAS_CALIB_LBFGS_H
#define MISLAS_CALIB_LBFGS_H

#include <stddef.h>
#include <stdint.h>

/* The function to minimise at x (dim values); writes its gradient to grad. */
typedef double (*mislasi_objective)(void *ctx, const double *x, double *grad);

/* Minimises f from x (dim values), leaving the minimum in x. Stops when no
 * gradient entry exceeds tolerance, or when no further decrease is
 * representable (the minimum to working precision): MISLAS_OK. After
 * max_iterations without either: MISLAS_ERR_STATE, x the last point, no
 * message recorded (the caller words it). Out of memory:
 * MISLAS_ERR_OUT_OF_MEMORY with a message naming fn. The same inputs give
 * the same bits: everything runs in order on the calling thread. */
int mislasi_lbfgs(const char *fn, mislasi_objective f, void *ctx, double *x, size_t dim, int32_t max_iterations,
        double tolerance);

#endif
