/* Models: the ResNets of the MiSLAS method, trained on the CPU.
 *
 * A model is a backbone (a ResNet up to its global average pool) and a
 * classifier head on the pooled features:
 *
 *     z = s * (W f + b)          (s: K learned scales, W: K x D, b: K)
 *
 * with s fixed at 1 unless the head learns it (LWS, MiSLAS). Every buffer the
 * model uses belongs to it; the caller hands in images (NCHW, float, already
 * normalised) and receives logits, then hands back d(loss)/d(logits) from any
 * mislas_loss, so every loss of the library (or the caller's own) plugs in:
 *
 *     mislas_model_forward(m, images, n, logits);
 *     mislas_loss_compute(loss, logits, targets, n, &value, grad);
 *     mislas_model_backward(m, grad);
 *     mislas_optimizer_step(opt);
 *
 * Tensor names follow the MiSLAS reference's PyTorch modules ("conv1.weight",
 * "layer2.0.bn1.running_mean", "fc.weight", "learned_norm"), so a checkpoint
 * maps one to one onto a reference state_dict (docs/models.md).
 *
 * A model is used by one thread at a time; its calls spread their own work
 * over mislas_num_threads() threads, and give the same numbers for the same
 * thread count (and in fact for any thread count). */
#ifndef MISLAS_MODEL_H
#define MISLAS_MODEL_H

#include <mislas/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mislas_model mislas_model;

typedef enum mislas_arch {
    /* CIFAR ResNets (He et al., option-A shortcuts): 3x3 stem with 16
     * channels, three stages of n basic blocks (16, 32, 64 channels),
     * n = 3 / 5 / 7 / 9 / 18. Feature size 64. */
    MISLAS_RESNET20 = 0,
    MISLAS_RESNET32 = 1,
    MISLAS_RESNET44 = 2,
    MISLAS_RESNET56 = 3,
    MISLAS_RESNET110 = 4,
    /* ImageNet ResNets: 7x7 stride-2 stem, 3x3 max pool, four stages with
     * projection shortcuts. ResNet-10: basic blocks 1-1-1-1, features 512;
     * 50 / 101 / 152: bottlenecks 3-4-6-3 / 3-4-23-3 / 3-8-36-3, features 2048. */
    MISLAS_RESNET10 = 5,
    MISLAS_RESNET50 = 6,
    MISLAS_RESNET101 = 7,
    MISLAS_RESNET152 = 8
} mislas_arch;

typedef struct mislas_model_options {
    size_t struct_size;
    mislas_arch arch;           /* default MISLAS_RESNET32 */
    int32_t in_channels;        /* default 3 */
    int32_t height, width;      /* default 32 x 32; any size in [1, 4096] */
    int32_t num_classes;        /* default 10 */
    uint64_t seed;              /* initialisation; default 0 */
} mislas_model_options;
MISLAS_API void mislas_model_options_init(mislas_model_options *opts);

/* A freshly initialised model: Kaiming normal (fan-in, gain sqrt 2) conv and
 * linear weights, linear bias uniform in +-1/sqrt(D), BN gamma 1, beta 0,
 * running mean 0, running variance 1; head MISLAS_HEAD_LINEAR, mode TRAIN.
 * opts NULL = defaults. */
MISLAS_API int mislas_model_new(mislas_model **out, const mislas_model_options *opts);
MISLAS_API void mislas_model_free(mislas_model *model);

/* What the model was made with (opts->struct_size must be set; the seed
 * reported is the one it was created with). */
MISLAS_API int mislas_model_get_options(const mislas_model *model, mislas_model_options *opts);
MISLAS_API int32_t mislas_model_num_classes(const mislas_model *model);
/* D, the length of the pooled feature vector. */
MISLAS_API int32_t mislas_model_feature_dim(const mislas_model *model);
/* Learnable parameters of the backbone and W, b (the K scales s excluded,
 * as the reference counts its model: ResNet-32, 3x32x32, 100 classes:
 * 470,004). */
MISLAS_API size_t mislas_model_num_parameters(const mislas_model *model);

/* How the backbone's batch norm runs.
 *   TRAIN       batch statistics; running mean and unbiased running variance
 *               move with momentum 0.1; gamma and beta learn.
 *   EVAL        running statistics; nothing moves.
 *   SHIFTED_BN  MiSLAS's shifted batch norm: batch statistics and running
 *               statistics move as in TRAIN, but gamma and beta stay frozen. */
typedef enum mislas_mode {
    MISLAS_MODE_INVALID = -1,   /* what mislas_model_mode(NULL) returns */
    MISLAS_MODE_TRAIN = 0,
    MISLAS_MODE_EVAL = 1,
    MISLAS_MODE_SHIFTED_BN = 2
} mislas_mode;
MISLAS_API int mislas_model_set_mode(mislas_model *model, mislas_mode mode);
MISLAS_API mislas_mode mislas_model_mode(const mislas_model *model);

/* A frozen backbone gets no gradient (backward stops at the features, which
 * is also much faster) and is not among the optimiser's parameters. */
MISLAS_API int mislas_model_freeze_backbone(mislas_model *model, int32_t frozen);
MISLAS_API int32_t mislas_model_backbone_frozen(const mislas_model *model);

/* The classifier head (docs/method.md, "Classifier heads").
 *   LINEAR  z = W f + b, W and b learn (stage 1).
 *   CRT     W and b re-initialised from `seed` as at creation, then learn; s = 1.
 *   LWS     W and b frozen; s reset to 1 and learns.
 *   MISLAS  W and b learn at lr * lr_factor (the optimiser's option); s reset
 *           to 1 and learns at lr.
 * Choosing a head does not touch the backbone (freeze it separately). */
typedef enum mislas_head {
    MISLAS_HEAD_INVALID = -1,   /* what mislas_model_head(NULL) returns */
    MISLAS_HEAD_LINEAR = 0,
    MISLAS_HEAD_CRT = 1,
    MISLAS_HEAD_LWS = 2,
    MISLAS_HEAD_MISLAS = 3
} mislas_head;
MISLAS_API int mislas_model_set_head(mislas_model *model, mislas_head head, uint64_t seed);
MISLAS_API mislas_head mislas_model_head(const mislas_model *model);

/* logits (n x K) for n images (n x C x H x W). In TRAIN and SHIFTED_BN modes
 * the batch's statistics are used and the running statistics move (so n >= 2
 * there). Keeps what backward needs. A non-finite logit is MISLAS_ERR_NUMERIC
 * (the model is left as the call found it but for the running statistics). */
MISLAS_API int mislas_model_forward(mislas_model *model, const float *images, size_t n,
        float *logits);
/* Inference: logits (n x K) with BN's running statistics, as in
 * MISLAS_MODE_EVAL whatever the mode, keeping nothing for a backward pass
 * (which makes it faster than an EVAL forward). The running statistics do
 * not move; mislas_model_features still reads the batch's features. n = 0
 * writes nothing and succeeds (forward refuses it: no batch statistics). */
MISLAS_API int mislas_model_predict(mislas_model *model, const float *images, size_t n,
        float *logits);
/* Gradients of every learnable parameter for the last forward's batch, from
 * grad_logits (n x K, the same n): they replace the previous gradients
 * (there is no accumulation; an optimiser step reads them). MISLAS_ERR_STATE
 * without a forward since the last change of mode, head or weights. */
MISLAS_API int mislas_model_backward(mislas_model *model, const float *grad_logits);
/* The pooled features (n x D) of the last forward's batch. */
MISLAS_API int mislas_model_features(const mislas_model *model, float *features, size_t n);

/* Per-class L2 norms of W's rows (K values; the paper's Figure 2) and the
 * scales s (K values). */
MISLAS_API int mislas_model_classifier_norms(const mislas_model *model, float *norms);
MISLAS_API int mislas_model_classifier_scales(const mislas_model *model, float *scales);

/* Post-hoc fixes of a trained classifier, kept by the model (and by any
 * checkpoint saved afterwards); nothing changes on failure.
 *
 * Every logit z_j becomes scale_j z_j + bias_j (scale NULL: 1, bias NULL:
 * 0; scales finite and nonzero, since vector scaling may fit a negative
 * one). Temperature scaling is scale_j = 1 / T; vector scaling is the pair
 * mislas_calib_fit_vector_scaling returns. Done through s and b, so the head keeps
 * its kind; choosing a head again (mislas_model_set_head) resets s. */
MISLAS_API int mislas_model_scale_logits(mislas_model *model, const float *scale, const float *bias);
/* tau-normalisation (Kang et al.): each row W_j becomes W_j / ||W_j||^tau,
 * tau in [0, 10] (0: unchanged, 1: unit rows); b and s are left as they are. */
MISLAS_API int mislas_model_tau_normalize(mislas_model *model, float tau);
/* Post-hoc logit adjustment (Menon et al.): z_j - tau log(pi_j), pi_j =
 * N_j / sum N, from the K positive training counts; tau >= 0. */
MISLAS_API int mislas_model_adjust_logits_by_prior(mislas_model *model, const int64_t *class_counts,
        int32_t num_classes, float tau);

/* Batch-norm layers, in the network's order (the paper's Figure 6). */
MISLAS_API int32_t mislas_model_num_bn(const mislas_model *model);
/* Channels of BN layer `index`, or a negative status. */
MISLAS_API int32_t mislas_model_bn_channels(const mislas_model *model, int32_t index);
/* Copies its running mean and variance (channels values each; either may be NULL). */
MISLAS_API int mislas_model_bn_running_stats(const mislas_model *model, int32_t index,
        float *mean, float *var, int32_t channels);

/* Named tensors: every parameter and running statistic, in a fixed order
 * (the checkpoint's). The name is valid while the model lives. */
MISLAS_API int32_t mislas_model_num_tensors(const mislas_model *model);
MISLAS_API int mislas_model_tensor_info(const mislas_model *model, int32_t index,
        const char **name, size_t *count);
MISLAS_API int mislas_model_get_tensor(const mislas_model *model, const char *name,
        float *values, size_t count);
/* The gradient of a tensor from the last backward (MISLAS_ERR_STATE
 * without one; zeros for tensors that do not learn). */
MISLAS_API int mislas_model_get_gradient(const mislas_model *model, const char *name,
        float *values, size_t count);
/* Overwrites a tensor (all count values must be finite). */
MISLAS_API int mislas_model_set_tensor(mislas_model *model, const char *name,
        const float *values, size_t count);

/* The long-tailed training set's class counts, kept with the model (and in
 * its checkpoints) so that evaluation can split Many / Medium / Few.
 * `counts` NULL clears them. get returns MISLAS_ERR_STATE when none are set. */
MISLAS_API int mislas_model_set_class_counts(mislas_model *model, const int64_t *counts,
        int32_t num_classes);
MISLAS_API int mislas_model_class_counts(const mislas_model *model, int64_t *counts,
        int32_t num_classes);

#ifdef __cplusplus
}
#endif

#endif
