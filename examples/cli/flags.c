/* Strict flag parsing and --help (flags.h). */
#include "flags.h"

#include "datasets.h"
#include "messages.h"
#include "presets.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ============================================================ choice tables */

const cli_choice cli_arch_choices[] = {
    {"resnet20", MISLAS_RESNET20}, {"resnet32", MISLAS_RESNET32}, {"resnet44", MISLAS_RESNET44},
    {"resnet56", MISLAS_RESNET56}, {"resnet110", MISLAS_RESNET110}, {"resnet10", MISLAS_RESNET10},
    {"resnet50", MISLAS_RESNET50}, {"resnet101", MISLAS_RESNET101}, {"resnet152", MISLAS_RESNET152},
    {NULL, 0}};
const cli_choice cli_imbalance_choices[] = {
    {"exp", MISLAS_IMBALANCE_EXP}, {"step", MISLAS_IMBALANCE_STEP}, {NULL, 0}};
const cli_choice cli_schedule_choices[] = {
    {"multistep", MISLAS_SCHEDULE_MULTISTEP}, {"cosine", MISLAS_SCHEDULE_COSINE}, {NULL, 0}};
const cli_choice cli_stage2_method_choices[] = {
    {"crt", MISLAS_STAGE2_CRT}, {"lws", MISLAS_STAGE2_LWS}, {"mislas", MISLAS_STAGE2_MISLAS}, {NULL, 0}};
const cli_choice cli_las_shape_choices[] = {
    {"concave", MISLAS_LAS_CONCAVE}, {"linear", MISLAS_LAS_LINEAR}, {"convex", MISLAS_LAS_CONVEX},
    {"power", MISLAS_LAS_POWER}, {NULL, 0}};
const cli_choice cli_stage2_loss_choices[] = {{"las", 1}, {"ce", 0}, {NULL, 0}};
const cli_choice cli_on_off_choices[] = {{"off", 0}, {"on", 1}, {NULL, 0}};

const char *cli_choice_name(const cli_choice *choices, int value)
{
    for (const cli_choice *c = choices; c->name != NULL; c++)
        if (c->value == value)
            return c->name;
    return NULL;
}

/* ==================================================================== flags */

static void parse_int32(const cli_flag *f, const char *text)
{
    errno = 0;
    char *end;
    long long v = strtoll(text, &end, 10);
    /* strtoll skips leading blanks; a value with them is not what was meant */
    if (text[0] == '\0' || *end != '\0' || text[0] == ' ' || text[0] == '\t')
        cli_usage_error("--%s: \"%s\" is not an integer", f->name, text);
    if (errno == ERANGE || (double)v < f->min || (double)v > f->max)
        cli_usage_error("--%s: %s is out of range [%.0f, %.0f]", f->name, text, f->min, f->max);
    *(int32_t *)f->target = (int32_t)v;
}

static void parse_uint64(const cli_flag *f, const char *text)
{
    errno = 0;
    char *end;
    /* strtoull would accept "-1" and wrap it: only digits are a seed */
    unsigned long long v = strtoull(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || *end != '\0')
        cli_usage_error("--%s: \"%s\" is not a non-negative integer", f->name, text);
    if (errno == ERANGE)
        cli_usage_error("--%s: %s is out of range [0, %" PRIu64 "]", f->name, text, UINT64_MAX);
    *(uint64_t *)f->target = (uint64_t)v;
}

static double parse_real(const cli_flag *f, const char *text)
{
    errno = 0;
    char *end;
    double v = strtod(text, &end);
    if (text[0] == '\0' || *end != '\0' || text[0] == ' ' || text[0] == '\t' || !isfinite(v))
        cli_usage_error("--%s: \"%s\" is not a finite number", f->name, text);
    bool low = f->above_min ? !(v > f->min) : !(v >= f->min);
    if (errno == ERANGE || low || v > f->max) {
        if (isinf(f->max))
            cli_usage_error("--%s: %s is out of range: it must be %s %g", f->name, text,
                    f->above_min ? ">" : ">=", f->min);
        cli_usage_error("--%s: %s is out of range %c%g, %g]", f->name, text, f->above_min ? '(' : '[',
                f->min, f->max);
    }
    return v;
}

static void parse_choice(const cli_flag *f, const char *text)
{
    for (const cli_choice *c = f->choices; c->name != NULL; c++)
        if (strcmp(c->name, text) == 0) {
            *(int *)f->target = c->value;
            return;
        }
    char names[256] = "";
    for (const cli_choice *c = f->choices; c->name != NULL; c++) {
        strncat(names, c->name, sizeof names - strlen(names) - 1);
        strncat(names, c[1].name != NULL ? ", " : "", sizeof names - strlen(names) - 1);
    }
    cli_usage_error("--%s: \"%s\" is not one of %s", f->name, text, names);
}

static void parse_list(const cli_flag *f, const char *text)
{
    cli_int_list *list = f->target;
    list->count = 0;
    const char *p = text;
    for (;;) {
        if (*p < '0' || *p > '9')
            cli_usage_error("--%s: \"%s\" is not a comma-separated list of integers", f->name, text);
        errno = 0;
        char *end;
        long long v = strtoll(p, &end, 10);
        if (errno == ERANGE || v < 1 || v > INT32_MAX)
            cli_usage_error("--%s: %.*s is out of range [1, %d]", f->name, (int)(end - p), p, (int)INT32_MAX);
        if (list->count > 0 && v <= list->values[list->count - 1])
            cli_usage_error("--%s: \"%s\" is not increasing", f->name, text);
        if (list->count == CLI_LIST_MAX)
            cli_usage_error("--%s: more than %d values", f->name, CLI_LIST_MAX);
        list->values[list->count++] = (int32_t)v;
        if (*end == '\0')
            return;
        if (*end != ',')
            cli_usage_error("--%s: \"%s\" is not a comma-separated list of integers", f->name, text);
        p = end + 1;
    }
}

static void parse_dataset(const cli_flag *f, const char *text)
{
    const cli_dataset *d = cli_dataset_named(text);
    if (d != NULL) {
        *(const cli_dataset **)f->target = d;
        return;
    }
    char names[256] = "";
    for (size_t i = 0; i < CLI_NUM_DATASETS; i++) {
        strncat(names, cli_datasets[i].name, sizeof names - strlen(names) - 1);
        strncat(names, i + 1 < CLI_NUM_DATASETS ? ", " : "", sizeof names - strlen(names) - 1);
    }
    cli_usage_error("--%s: \"%s\" is not one of %s", f->name, text, names);
}

static void parse_preset(const cli_flag *f, const char *text)
{
    const cli_preset *p = cli_preset_named(text);
    if (p != NULL) {
        *(const cli_preset **)f->target = p;
        return;
    }
    char names[256] = "";
    for (size_t i = 0; (p = cli_preset_at(i)) != NULL; i++) {
        strncat(names, p->name, sizeof names - strlen(names) - 1);
        strncat(names, cli_preset_at(i + 1) != NULL ? ", " : "", sizeof names - strlen(names) - 1);
    }
    cli_usage_error("--%s: \"%s\" is not a preset; the presets are %s", f->name, text, names);
}

static void store(const cli_flag *f, const char *text)
{
    switch (f->kind) {
    case CLI_INT32: parse_int32(f, text); break;
    case CLI_UINT64: parse_uint64(f, text); break;
    case CLI_DOUBLE: *(double *)f->target = parse_real(f, text); break;
    case CLI_FLOAT: *(float *)f->target = (float)parse_real(f, text); break;
    case CLI_TEXT:
        if (text[0] == '\0')
            cli_usage_error("--%s: the value is empty", f->name);
        *(const char **)f->target = text;
        break;
    case CLI_SWITCH: *(int *)f->target = f->switch_value; break;
    case CLI_CHOICE: parse_choice(f, text); break;
    case CLI_LIST: parse_list(f, text); break;
    case CLI_DATASET: parse_dataset(f, text); break;
    case CLI_PRESET: parse_preset(f, text); break;
    }
}

/* The flag argv[*i] names, with its value in *value (NULL for a switch),
 * *i advanced past a value given as the next argument; or NULL for a
 * positional argument, then in *value. *flags_ended is set at "--", after
 * which every argument is positional. */
static const cli_flag *next_argument(const cli_flag *flags, size_t num_flags, int argc, char **argv, int *i,
        bool *flags_ended, const char **value)
{
    const char *arg = argv[*i];
    *value = NULL;
    if (!*flags_ended && strcmp(arg, "--") == 0) {
        *flags_ended = true;
        return NULL;
    }
    if (*flags_ended || arg[0] != '-' || arg[1] == '\0') {
        *value = arg;
        return NULL;
    }
    const cli_flag *f = NULL;
    if (arg[1] != '-') {
        for (size_t j = 0; j < num_flags && f == NULL && arg[2] == '\0'; j++)
            if (flags[j].short_name != 0 && flags[j].short_name == arg[1])
                f = &flags[j];
        if (f == NULL)
            cli_usage_error("unknown flag %s (flags are spelt --name)", arg);
        if (f->kind != CLI_SWITCH) {
            if (*i + 1 >= argc)
                cli_usage_error("%s needs a value", arg);
            *value = argv[++*i];
        }
        return f;
    }
    const char *name = arg + 2, *equals = strchr(name, '=');
    size_t name_length = equals != NULL ? (size_t)(equals - name) : strlen(name);
    for (size_t j = 0; j < num_flags && f == NULL; j++)
        if (strlen(flags[j].name) == name_length && strncmp(flags[j].name, name, name_length) == 0)
            f = &flags[j];
    if (f == NULL)
        cli_usage_error("unknown flag --%.*s", (int)name_length, name);
    if (f->kind == CLI_SWITCH) {
        if (equals != NULL)
            cli_usage_error("--%s takes no value", f->name);
    } else if (equals != NULL) {
        *value = equals + 1;
    } else if (*i + 1 < argc) {
        *value = argv[++*i];
    } else {
        cli_usage_error("--%s needs a value", f->name);
    }
    return f;
}

void cli_parse(const cli_flag *flags, size_t num_flags, int argc, char **argv, cli_pass pass,
        const char **positionals, size_t max_positionals, size_t *num_positionals)
{
    *num_positionals = 0;
    bool flags_ended = false;
    for (int i = 1; i < argc; i++) {
        const char *value;
        const cli_flag *f = next_argument(flags, num_flags, argc, argv, &i, &flags_ended, &value);
        if (f == NULL) {
            if (pass == CLI_PASS_EARLY || value == NULL)    /* NULL: the "--" itself */
                continue;
            if (*num_positionals == max_positionals)
                cli_usage_error("unexpected argument \"%s\"", value);
            positionals[(*num_positionals)++] = value;
            continue;
        }
        if (f->early == (pass == CLI_PASS_EARLY))
            store(f, value);
    }
}

bool cli_given(const cli_flag *flags, size_t num_flags, int argc, char **argv, const char *name)
{
    bool flags_ended = false;
    for (int i = 1; i < argc; i++) {
        const char *value;
        const cli_flag *f = next_argument(flags, num_flags, argc, argv, &i, &flags_ended, &value);
        if (f != NULL && strcmp(f->name, name) == 0)
            return true;
    }
    return false;
}

const char *cli_default_note(bool given)
{
    return given ? "" : " (the default)";
}

void cli_print_version(void)
{
    printf("%s (libmislas) %s\nBLIS kernels: %s\n", cli_program_name, mislas_version(), mislas_blas_kernels());
    exit(cli_exit_status(0));
}

/* ===================================================================== help */

/* The default --help shows: the target's value as the flag would write it. */
static void describe_default(const cli_flag *f, char *buf, size_t size)
{
    buf[0] = '\0';
    if (f->default_text != NULL) {
        snprintf(buf, size, "%s", f->default_text);
        return;
    }
    switch (f->kind) {
    case CLI_INT32: snprintf(buf, size, "%d", (int)*(const int32_t *)f->target); break;
    case CLI_UINT64: snprintf(buf, size, "%" PRIu64, *(const uint64_t *)f->target); break;
    case CLI_DOUBLE: snprintf(buf, size, "%g", *(const double *)f->target); break;
    case CLI_FLOAT: snprintf(buf, size, "%g", (double)*(const float *)f->target); break;
    case CLI_TEXT: {
        const char *text = *(const char *const *)f->target;
        if (text != NULL)
            snprintf(buf, size, "%s", text);
        break;
    }
    case CLI_CHOICE: {
        const char *name = cli_choice_name(f->choices, *(const int *)f->target);
        if (name != NULL)
            snprintf(buf, size, "%s", name);
        break;
    }
    case CLI_LIST: {
        const cli_int_list *list = f->target;
        for (int32_t i = 0; i < list->count; i++) {
            size_t used = strlen(buf);
            snprintf(buf + used, size - used, i > 0 ? ",%d" : "%d", (int)list->values[i]);
        }
        break;
    }
    case CLI_DATASET: {
        const cli_dataset *d = *(const cli_dataset *const *)f->target;
        if (d != NULL)
            snprintf(buf, size, "%s", d->name);
        break;
    }
    case CLI_SWITCH:
    case CLI_PRESET:
        break;
    }
}

/* What --help shows after the flag's name: its value's form. */
static void describe_value(const cli_flag *f, char *buf, size_t size)
{
    buf[0] = '\0';
    if (f->kind == CLI_SWITCH)
        return;
    if (f->kind == CLI_CHOICE) {
        for (const cli_choice *c = f->choices; c->name != NULL; c++) {
            size_t used = strlen(buf);
            snprintf(buf + used, size - used, c == f->choices ? " %s" : "|%s", c->name);
        }
        return;
    }
    if (f->kind == CLI_DATASET) {
        for (size_t i = 0; i < CLI_NUM_DATASETS; i++) {
            size_t used = strlen(buf);
            snprintf(buf + used, size - used, i == 0 ? " %s" : "|%s", cli_datasets[i].name);
        }
        return;
    }
    snprintf(buf, size, " %s", f->value_name != NULL ? f->value_name : "VALUE");
}

void cli_print_help(FILE *out, const char *usage, const char *description, const cli_flag *flags,
        size_t num_flags, bool with_presets)
{
    enum { COLUMN = 30 };
    fprintf(out, "Usage: %s %s\n\n%s\n\nFlags:\n", cli_program_name, usage, description);
    for (size_t i = 0; i < num_flags; i++) {
        const cli_flag *f = &flags[i];
        char value[160], fallback[160];
        describe_value(f, value, sizeof value);
        describe_default(f, fallback, sizeof fallback);
        int width = f->short_name != 0 ? fprintf(out, "  -%c, --%s%s", f->short_name, f->name, value)
                : fprintf(out, "  --%s%s", f->name, value);
        if (width >= COLUMN)
            fprintf(out, "\n%*s", COLUMN, "");
        else
            fprintf(out, "%*s", COLUMN - width, "");
        fprintf(out, "%s", f->help);
        if (fallback[0] != '\0')
            fprintf(out, " (default: %s)", fallback);
        fputc('\n', out);
    }
    fprintf(out, "  --%*sends the flags: every argument after it is positional, even one starting with -\n",
            COLUMN - 4, "");
    if (with_presets)
        cli_print_presets(out);
}
