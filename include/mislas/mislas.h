/* libmislas: the MiSLAS method for long-tailed recognition, in C.
 * One include for the whole public API (the MPI component's mislas/mpi.h,
 * which needs <mpi.h>, is included on its own). */
#ifndef MISLAS_H
#define MISLAS_H

#include <mislas/common.h>
#include <mislas/loss.h>
#include <mislas/calib.h>
#include <mislas/long_tail.h>
#include <mislas/sampler.h>
#include <mislas/dataset.h>
#include <mislas/mixup.h>
#include <mislas/model.h>
#include <mislas/optimizer.h>
#include <mislas/schedule.h>
#include <mislas/checkpoint.h>
#include <mislas/comm.h>
#include <mislas/progress.h>
#include <mislas/train.h>
#include <mislas/eval.h>

#endif
