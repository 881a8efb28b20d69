/* libmislas: the MiSLAS method for long-tailed recognition, in C.
 * One include for the whole public API. */
#ifndef MISLAS_H
#define MISLAS_H

#include <mislas/common.h>
#include <mislas/loss.h>
#include <mislas/calib.h>
#include <mislas/longtail.h>
#include <mislas/sampler.h>
#include <mislas/dataset.h>
#include <mislas/model.h>
#include <mislas/optim.h>
#include <mislas/checkpoint.h>
#include <mislas/comm.h>
#include <mislas/train.h>

#endif
