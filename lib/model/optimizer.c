/* SGD with momentum and weight decay over a model's parameter groups
 * (optimizer.h), computed in float exactly as PyTorch's torch.optim.SGD does,
 * so that a run can be compared with the reference step by step. */
#include "optim_internal.h"

#include "util/util.h"

#include <math.h>
#include <string.h>

void mislas_optimizer_sgd_options_init(mislas_optimizer_sgd_options *o)
{
    if (o == NULL)
        return;
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->lr = 0.1;
    o->momentum = 0.9;
    o->weight_decay = 2e-4;
    o->lr_factor = 1.0;
}

static int group_of(const mislas_model *m, const mislasi_tensor *t)
{
    if (!mislasi_tensor_learns(m, t))
        return -1;
    switch (t->role) {
    case MISLASI_ROLE_CONV:
    case MISLASI_ROLE_BN_AFFINE:
        return MISLAS_GROUP_BACKBONE;
    case MISLASI_ROLE_FC:
        return MISLAS_GROUP_CLASSIFIER;
    case MISLASI_ROLE_SCALES:
        return MISLAS_GROUP_SCALES;
    default:
        return -1;
    }
}

double mislasi_group_factor(const mislas_optimizer *o, int g)
{
    return g == MISLAS_GROUP_CLASSIFIER && o->model->head == MISLAS_HEAD_MISLAS ? o->opts.lr_factor : 1.0;
}

void mislas_optimizer_free(mislas_optimizer *o)
{
    if (o == NULL)
        return;
    for (int g = 0; g < MISLASI_GROUPS; g++) {
        mislasi_free(o->groups[g].tensors);
        mislasi_free(o->groups[g].velocity);
    }
    mislasi_free(o);
}

static bool finite_nonnegative(double v)
{
    return isfinite(v) && v >= 0.0;
}

int mislas_optimizer_new_sgd(mislas_optimizer **out, mislas_model *model, const mislas_optimizer_sgd_options *opts)
{
    const char *fn = "mislas_optimizer_new_sgd";
    MISLASI_CHECK_NOT_NULL(fn, out);
    *out = NULL;
    MISLASI_CHECK_NOT_NULL(fn, model);
    mislas_optimizer_sgd_options o;
    mislas_optimizer_sgd_options_init(&o);
    int status = opts == NULL ? MISLAS_OK : mislasi_read_options(fn, &o, sizeof o, opts);
    if (status != MISLAS_OK)
        return status;
    if (!finite_nonnegative(o.lr) || !finite_nonnegative(o.momentum) || o.momentum >= 1.0
            || !finite_nonnegative(o.weight_decay) || !finite_nonnegative(o.lr_factor))
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT,
                "%s: lr = %g, momentum = %g, weight_decay = %g, lr_factor = %g: each must be finite and >= 0, momentum < 1",
                fn, o.lr, o.momentum, o.weight_decay, o.lr_factor);
    mislas_optimizer *opt = mislasi_calloc(1, sizeof *opt);
    if (opt == NULL)
        return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    opt->model = model;
    opt->opts = o;
    opt->lr = o.lr;
    for (int32_t t = 0; t < model->num_tensors; t++) {
        int g = group_of(model, &model->tensors[t]);
        if (g >= 0) {
            opt->groups[g].num_tensors++;
            opt->groups[g].size += model->tensors[t].count;
        }
    }
    for (int g = 0; g < MISLASI_GROUPS; g++) {
        mislasi_group *grp = &opt->groups[g];
        if (grp->num_tensors == 0)
            continue;
        grp->tensors = mislasi_alloc((size_t)grp->num_tensors * sizeof *grp->tensors);
        grp->velocity = mislasi_calloc(grp->size, sizeof *grp->velocity);
        if (grp->tensors == NULL || grp->velocity == NULL) {
            size_t size = grp->size;
            mislas_optimizer_free(opt);
            return mislasi_fail(MISLAS_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu momentum values", fn, size);
        }
        grp->num_tensors = 0;
    }
    for (int32_t t = 0; t < model->num_tensors; t++) {
        int g = group_of(model, &model->tensors[t]);
        if (g >= 0)
            opt->groups[g].tensors[opt->groups[g].num_tensors++] = t;
    }
    *out = opt;
    return MISLAS_OK;
}

void mislasi_optimizer_take_state(mislas_optimizer *to, const mislas_optimizer *from)
{
    for (int g = 0; g < MISLASI_GROUPS; g++)
        if (to->groups[g].size > 0 && to->groups[g].size == from->groups[g].size)
            memcpy(to->groups[g].velocity, from->groups[g].velocity, to->groups[g].size * sizeof(float));
    to->steps = from->steps;
    to->lr = from->lr;
}

bool mislasi_optimizer_groups_current(const mislas_optimizer *o)
{
    const mislas_model *m = o->model;
    int32_t at[MISLASI_GROUPS] = {0};
    for (int32_t t = 0; t < m->num_tensors; t++) {
        int g = group_of(m, &m->tensors[t]);
        if (g < 0)
            continue;
        if (at[g] >= o->groups[g].num_tensors || o->groups[g].tensors[at[g]] != t)
            return false;
        at[g]++;
    }
    for (int g = 0; g < MISLASI_GROUPS; g++)
        if (at[g] != o->groups[g].num_tensors)
            return false;
    return true;
}

int mislas_optimizer_step(mislas_optimizer *o)
{
    MISLASI_CHECK_NOT_NULL("mislas_optimizer_step", o);
    mislas_model *m = o->model;
    /* A frozen backbone's gradients are not recomputed: stepping with groups
     * made before the freeze would apply an old backward's gradients. */
    if (!mislasi_optimizer_groups_current(o))
        return mislasi_fail(MISLAS_ERR_STATE,
                "mislas_optimizer_step: the model's head, shifted-BN mode or freezing changed since the optimizer was "
                "created, so its parameter groups are out of date (create a new optimizer)");
    if (!m->have_grads)
        return mislasi_fail(MISLAS_ERR_STATE,
                "mislas_optimizer_step: no gradients (call mislas_model_backward after a forward first)");
    for (int g = 0; g < MISLASI_GROUPS; g++)
        for (int32_t i = 0; i < o->groups[g].num_tensors; i++) {
            const mislasi_tensor *t = &m->tensors[o->groups[g].tensors[i]];
            const float *grad = m->grads + t->offset;
            for (size_t j = 0; j < t->count; j++)
                if (!isfinite(grad[j]))
                    return mislasi_fail(MISLAS_ERR_NUMERIC,
                            "mislas_optimizer_step: the gradient of \"%s\"[%zu] is not finite (nothing updated)",
                            t->name, j);
        }
    float mu = (float)o->opts.momentum, wd = (float)o->opts.weight_decay;
    for (int g = 0; g < MISLASI_GROUPS; g++) {
        mislasi_group *grp = &o->groups[g];
        float lr = (float)(o->lr * mislasi_group_factor(o, g));
        float *v = grp->velocity;
        for (int32_t i = 0; i < grp->num_tensors; i++) {
            const mislasi_tensor *t = &m->tensors[grp->tensors[i]];
            float *w = m->values + t->offset;
            const float *grad = m->grads + t->offset;
            for (size_t j = 0; j < t->count; j++) {
                float d = grad[j] + wd * w[j];
                v[j] = mu * v[j] + d;
                w[j] = w[j] - lr * v[j];
            }
            v += t->count;
        }
    }
    o->steps++;
    m->have_grads = false;
    m->batch = 0;
    m->prepared_current = false;
    return MISLAS_OK;
}

int mislas_optimizer_set_lr(mislas_optimizer *o, double lr)
{
    MISLASI_CHECK_NOT_NULL("mislas_optimizer_set_lr", o);
    if (!finite_nonnegative(lr))
        return mislasi_fail(MISLAS_ERR_INVALID_ARGUMENT, "mislas_optimizer_set_lr: lr = %g is not finite and >= 0", lr);
    o->lr = lr;
    return MISLAS_OK;
}

double mislas_optimizer_lr(const mislas_optimizer *o)
{
    return o == NULL ? NAN : o->lr;
}

uint64_t mislas_optimizer_steps(const mislas_optimizer *o)
{
    return o == NULL ? 0 : o->steps;
}

size_t mislas_optimizer_group_size(const mislas_optimizer *o, mislas_param_group group)
{
    if (o == NULL || (unsigned)group >= MISLASI_GROUPS)
        return 0;
    return o->groups[group].size;
}

double mislas_optimizer_group_lr(const mislas_optimizer *o, mislas_param_group group)
{
    if (o == NULL || (unsigned)group >= MISLASI_GROUPS)
        return NAN;
    if (o->groups[group].num_tensors == 0)
        return 0.0;
    return o->lr * mislasi_group_factor(o, (int)group);
}
