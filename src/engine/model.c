/* model.c -- hyperparameters and tensor binding for Llama-family GGUF files.
 * Every value the forward pass relies on is checked here, once: head counts divide the width,
 * every tensor exists with exactly the expected shape and a supported type, vectors are F32.
 * After model_bind succeeds, forward.c may index any tensor without further checks.
 * Keys follow llama.cpp's names (<arch>.block_count, <arch>.rope.freq_base, ...). Untrusted input. */
#include "engine/model.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/kernels/kernels.h"
#include "util/parse.h"
#include "util/xalloc.h"

/* Bounds that keep every later size product far from overflow and reject absurd headers. */
#define MAX_LAYERS 512
#define MAX_DIM 65536
#define MAX_FF (1 << 20)
#define MAX_HEADS 1024
#define MAX_VOCAB (1 << 22)

/* ===== Key helpers ============================================================================ */

/* Read "<arch>.<suffix>" as u32; absent keys are an error only when required. */
static int
get_arch_u32(const struct gguf *g, const char *arch, const char *suffix, int required,
             uint32_t def, uint32_t max, uint32_t *out, struct al_err *e)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int rc = gguf_get_u32(g, key, out, e);
    if (rc < 0)
        return -1;
    if (rc == 1) {
        if (required)
            return al_errf(e, AL_EFORMAT, "%s: missing metadata key %s", g->what, key);
        *out = def;
    }
    if (*out > max)
        return al_errf(e, AL_ELIMIT, "%s: %s = %" PRIu32 ", limit %" PRIu32, g->what, key, *out,
                       max);
    return 0;
}

static int
get_arch_f32(const struct gguf *g, const char *arch, const char *suffix, float def, float *out,
             struct al_err *e)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int rc = gguf_get_f32(g, key, out, e);
    if (rc < 0)
        return -1;
    if (rc == 1)
        *out = def;
    if (!isfinite(*out))
        return al_errf(e, AL_EFORMAT, "%s: %s is not a finite number", g->what, key);
    return 0;
}

/* ===== Tensor binding ========================================================================= */

static int
type_supported(enum ggml_type t)
{
    switch (t) {
    case GGML_TYPE_F32:
    case GGML_TYPE_F16:
    case GGML_TYPE_BF16:
    case GGML_TYPE_Q8_0:
    case GGML_TYPE_Q4_0:
    case GGML_TYPE_Q4_1:
    case GGML_TYPE_Q5_0:
    case GGML_TYPE_Q4_K:
    case GGML_TYPE_Q5_K:
    case GGML_TYPE_Q6_K:
        return 1;
    default:
        return 0;
    }
}

/* Bind name with shape (ne0, ne1); ne1 == 0 means a 1-D vector of ne0 elements, which must be
 * F32 (llama.cpp never quantizes norms or biases). Optional tensors that are absent leave
 * t->data NULL and return 0. */
static int
bind(const struct gguf *g, const char *name, int64_t ne0, int64_t ne1, int optional,
     struct model_tensor *t, struct al_err *e)
{
    memset(t, 0, sizeof *t);
    const struct gguf_tensor *gt = gguf_find_tensor(g, name);
    if (!gt) {
        if (optional)
            return 0;
        return al_errf(e, AL_EFORMAT, "%s: tensor %s is missing", g->what, name);
    }
    uint32_t want_dims = ne1 ? 2 : 1;
    if (gt->n_dims != want_dims || (int64_t)gt->ne[0] != ne0 || (ne1 && (int64_t)gt->ne[1] != ne1))
        return al_errf(e, AL_EFORMAT,
                       "%s: tensor %s has shape [%" PRIu64 ", %" PRIu64 "] (%" PRIu32
                       " dims), expected [%" PRId64 ", %" PRId64 "]",
                       g->what, name, gt->ne[0], gt->n_dims > 1 ? gt->ne[1] : 1, gt->n_dims, ne0,
                       ne1 ? ne1 : 1);
    if (!type_supported(gt->type))
        return al_errf(e, AL_EUNSUPPORTED, "%s: tensor %s has unsupported type %s", g->what, name,
                       ggml_type_name(gt->type));
    if (!ne1 && gt->type != GGML_TYPE_F32)
        return al_errf(e, AL_EUNSUPPORTED, "%s: vector %s has type %s, expected F32", g->what,
                       name, ggml_type_name(gt->type));
    uint32_t be = ggml_type_block_elems(gt->type);
    uint32_t bb = ggml_type_block_bytes(gt->type);
    if (be == 0 || ne0 % be != 0)
        return al_errf(e, AL_EFORMAT, "%s: tensor %s: row of %" PRId64 " not a multiple of %s block",
                       g->what, name, ne0, ggml_type_name(gt->type));
    if (!gt->data)
        return al_errf(e, AL_EFORMAT, "%s: tensor %s has no data", g->what, name);
    t->data = gt->data;
    t->type = gt->type;
    t->ne0 = ne0;
    t->ne1 = ne1 ? ne1 : 1;
    t->row_bytes = (size_t)(ne0 / be) * bb;
    if ((uint64_t)t->row_bytes * (uint64_t)t->ne1 > gt->nbytes)
        return al_errf(e, AL_EFORMAT, "%s: tensor %s: %" PRIu64 " bytes, shape needs more", g->what,
                       name, gt->nbytes);
    return 0;
}

static int
bind_layer(const struct gguf *g, const struct model_hparams *hp, int il, struct model_layer *L,
           struct al_err *e)
{
    char n[96];
    int qwen = hp->arch == MODEL_ARCH_QWEN2;
    const struct {
        const char *suffix;
        int64_t ne0, ne1;
        int optional;
        struct model_tensor *t;
    } spec[] = {
        {"attn_norm.weight", hp->dim, 0, 0, &L->attn_norm},
        {"attn_q.weight", hp->dim, hp->dim, 0, &L->wq},
        {"attn_k.weight", hp->dim, hp->kv_dim, 0, &L->wk},
        {"attn_v.weight", hp->dim, hp->kv_dim, 0, &L->wv},
        {"attn_output.weight", hp->dim, hp->dim, 0, &L->wo},
        {"attn_q.bias", hp->dim, 0, !qwen, &L->bq},
        {"attn_k.bias", hp->kv_dim, 0, !qwen, &L->bk},
        {"attn_v.bias", hp->kv_dim, 0, !qwen, &L->bv},
        {"ffn_norm.weight", hp->dim, 0, 0, &L->ffn_norm},
        {"ffn_gate.weight", hp->dim, hp->n_ff, 0, &L->w_gate},
        {"ffn_up.weight", hp->dim, hp->n_ff, 0, &L->w_up},
        {"ffn_down.weight", hp->n_ff, hp->dim, 0, &L->w_down},
    };
    for (size_t i = 0; i < sizeof spec / sizeof spec[0]; i++) {
        snprintf(n, sizeof n, "blk.%d.%s", il, spec[i].suffix);
        if (bind(g, n, spec[i].ne0, spec[i].ne1, spec[i].optional, spec[i].t, e) < 0)
            return -1;
    }
    return 0;
}

/* ===== Hyperparameters ======================================================================== */

static int
read_hparams(const struct gguf *g, struct model_hparams *hp, const char **arch_out,
             struct al_err *e)
{
    struct gguf_str as;
    int rc = gguf_get_str(g, "general.architecture", &as, e);
    if (rc < 0)
        return -1;
    if (rc == 1)
        return al_errf(e, AL_EFORMAT, "%s: missing general.architecture", g->what);
    const char *arch;
    if (gguf_str_eq(as, "llama")) {
        hp->arch = MODEL_ARCH_LLAMA;
        hp->rope = ROPE_NORMAL;
        arch = "llama";
    } else if (gguf_str_eq(as, "qwen2")) {
        hp->arch = MODEL_ARCH_QWEN2;
        hp->rope = ROPE_NEOX;
        arch = "qwen2";
    } else {
        int len = as.n > 64 ? 64 : (int)as.n;
        return al_errf(e, AL_EUNSUPPORTED,
                       "%s: architecture \"%.*s\" is not supported (supported: llama, qwen2)",
                       g->what, len, as.p);
    }
    *arch_out = arch;

    uint32_t n_layer, dim, n_ff, n_head, n_head_kv, n_ctx, n_rot;
    if (get_arch_u32(g, arch, "block_count", 1, 0, MAX_LAYERS, &n_layer, e) < 0 ||
        get_arch_u32(g, arch, "embedding_length", 1, 0, MAX_DIM, &dim, e) < 0 ||
        get_arch_u32(g, arch, "feed_forward_length", 1, 0, MAX_FF, &n_ff, e) < 0 ||
        get_arch_u32(g, arch, "attention.head_count", 1, 0, MAX_HEADS, &n_head, e) < 0 ||
        get_arch_u32(g, arch, "attention.head_count_kv", 0, n_head, MAX_HEADS, &n_head_kv, e) < 0 ||
        get_arch_u32(g, arch, "context_length", 0, 2048, 1u << 24, &n_ctx, e) < 0)
        return -1;
    if (n_layer == 0 || dim == 0 || n_ff == 0 || n_head == 0 || n_head_kv == 0 || n_ctx == 0)
        return al_errf(e, AL_EFORMAT, "%s: a %s.* size key is zero", g->what, arch);
    if (dim % n_head != 0)
        return al_errf(e, AL_EFORMAT, "%s: embedding_length %" PRIu32
                       " not divisible by head_count %" PRIu32, g->what, dim, n_head);
    if (n_head % n_head_kv != 0)
        return al_errf(e, AL_EFORMAT, "%s: head_count %" PRIu32
                       " not divisible by head_count_kv %" PRIu32, g->what, n_head, n_head_kv);
    uint32_t head_dim = dim / n_head;
    if (get_arch_u32(g, arch, "rope.dimension_count", 0, head_dim, MAX_DIM, &n_rot, e) < 0)
        return -1;
    if (n_rot > head_dim || n_rot % 2 != 0 || n_rot == 0)
        return al_errf(e, AL_EFORMAT, "%s: rope.dimension_count %" PRIu32
                       " must be even and at most the head size %" PRIu32, g->what, n_rot,
                       head_dim);
    /* key length is constrained by the attention layout: both K and Q use head_dim */
    uint32_t kl;
    if (get_arch_u32(g, arch, "attention.key_length", 0, head_dim, MAX_DIM, &kl, e) < 0)
        return -1;
    if (kl != head_dim)
        return al_errf(e, AL_EUNSUPPORTED, "%s: attention.key_length %" PRIu32
                       " differs from embedding/heads %" PRIu32, g->what, kl, head_dim);

    hp->n_layer = (int)n_layer;
    hp->dim = (int)dim;
    hp->n_ff = (int)n_ff;
    hp->n_head = (int)n_head;
    hp->n_head_kv = (int)n_head_kv;
    hp->head_dim = (int)head_dim;
    hp->kv_dim = (int)(n_head_kv * head_dim);
    hp->n_ctx_train = (int)n_ctx;
    hp->n_rot = (int)n_rot;

    float def_eps = 1e-5f;
    if (get_arch_f32(g, arch, "attention.layer_norm_rms_epsilon", def_eps, &hp->norm_eps, e) < 0 ||
        get_arch_f32(g, arch, "rope.freq_base", 10000.0f, &hp->rope_base, e) < 0)
        return -1;
    if (hp->norm_eps <= 0 || hp->norm_eps > 1)
        return al_errf(e, AL_EFORMAT, "%s: %s.attention.layer_norm_rms_epsilon out of range",
                       g->what, arch);
    if (hp->rope_base <= 1)
        return al_errf(e, AL_EFORMAT, "%s: %s.rope.freq_base must be > 1", g->what, arch);

    /* RoPE scaling: "linear" divides positions by the factor; llama-3's per-frequency scaling
     * comes as the rope_freqs.weight tensor (applied in model_bind); YaRN and others refused. */
    hp->rope_freq_scale = 1.0f;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    struct gguf_str st;
    rc = gguf_get_str(g, key, &st, e);
    if (rc < 0)
        return -1;
    float factor = 0;
    if (get_arch_f32(g, arch, "rope.scaling.factor", 0.0f, &factor, e) < 0)
        return -1;
    if (rc == 1) {
        float lin = 0;
        if (get_arch_f32(g, arch, "rope.scale_linear", 0.0f, &lin, e) < 0)
            return -1;
        if (lin > 0)
            hp->rope_freq_scale = 1.0f / lin;
    } else if (gguf_str_eq(st, "linear")) {
        if (factor > 0)
            hp->rope_freq_scale = 1.0f / factor;
    } else if (!gguf_str_eq(st, "none") && !gguf_str_eq(st, "llama3")) {
        int len = st.n > 32 ? 32 : (int)st.n;
        return al_errf(e, AL_EUNSUPPORTED, "%s: %s = \"%.*s\" is not supported (none, linear)",
                       g->what, key, len, st.p);
    }
    if (!(hp->rope_freq_scale > 0) || hp->rope_freq_scale > 1e6f)
        return al_errf(e, AL_EFORMAT, "%s: RoPE scaling factor out of range", g->what);
    return 0;
}

/* ===== Label for bench, metrics and the status page =========================================== */

static const char *
ftype_name(uint32_t ft)
{
    switch (ft) {
    case 0: return "all F32";
    case 1: return "F16";
    case 2: return "Q4_0";
    case 3: return "Q4_1";
    case 7: return "Q8_0";
    case 8: return "Q5_0";
    case 9: return "Q5_1";
    case 14: return "Q4_K - Small";
    case 15: return "Q4_K - Medium";
    case 16: return "Q5_K - Small";
    case 17: return "Q5_K - Medium";
    case 18: return "Q6_K";
    case 32: return "BF16";
    default: return "?";
    }
}

/* llama.cpp's name for a weight type when it is the most common one in a file that lacks
 * general.file_type (its loader guesses the file type that way); NULL if it has none. */
static const char *
guessed_ftype_name(enum ggml_type t)
{
    switch (t) {
    case GGML_TYPE_F32: return "all F32";
    case GGML_TYPE_F16: return "F16";
    case GGML_TYPE_BF16: return "BF16";
    case GGML_TYPE_Q4_0: return "Q4_0";
    case GGML_TYPE_Q4_1: return "Q4_1";
    case GGML_TYPE_Q5_0: return "Q5_0";
    case GGML_TYPE_Q5_1: return "Q5_1";
    case GGML_TYPE_Q8_0: return "Q8_0";
    case GGML_TYPE_Q4_K: return "Q4_K - Medium";
    case GGML_TYPE_Q5_K: return "Q5_K - Medium";
    case GGML_TYPE_Q6_K: return "Q6_K";
    default: return NULL;
    }
}

const char *
model_guess_ftype(const struct gguf *g)
{
    uint64_t count[GGML_TYPE_COUNT] = {0};
    enum ggml_type best = GGML_TYPE_F32;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        enum ggml_type t = g->tensors[i].type;
        if ((unsigned)t >= GGML_TYPE_COUNT)
            continue;
        if (++count[t] > count[best])
            best = t;
    }
    if (count[best] == 0)
        return NULL;
    const char *fn = guessed_ftype_name(best);
    return fn ? fn : ggml_type_name(best);
}

/* "arch size ftype", e.g. "llama 135M Q8_0". Without a general.file_type we know, the type is
 * guessed as llama.cpp's loader does and marked so, for every reader of the label (bench, the
 * server's metrics and status page) rather than each guessing on its own. */
static void
make_label(struct model *m, const char *arch)
{
    uint32_t ft = 0;
    struct al_err ignore = {0};
    const char *fn = "?";
    if (gguf_get_u32(&m->gguf, "general.file_type", &ft, &ignore) == 0)
        fn = ftype_name(ft);
    const char *guess = strcmp(fn, "?") == 0 ? model_guess_ftype(&m->gguf) : NULL;
    double p = (double)m->n_params;
    char sz[16];
    if (p >= 1e9)
        snprintf(sz, sizeof sz, "%.1fB", p / 1e9);
    else if (p >= 1e6)
        snprintf(sz, sizeof sz, "%.0fM", p / 1e6);
    else
        snprintf(sz, sizeof sz, "%.0fK", p / 1e3);
    if (guess)
        snprintf(m->type_name, sizeof m->type_name, "%s %s %s (guessed)", arch, sz, guess);
    else
        snprintf(m->type_name, sizeof m->type_name, "%s %s %s", arch, sz, fn);
}

/* ===== Lifecycle ============================================================================== */

const char *
model_arch_name(enum model_arch a)
{
    return a == MODEL_ARCH_QWEN2 ? "qwen2" : "llama";
}

void
model_free(struct model *m)
{
    if (!m)
        return;
    free(m->layers);
    free(m->rope_inv_freq);
    gguf_close(&m->gguf);
    memset(m, 0, sizeof *m);
}

int
model_bind(struct model *m, struct gguf *g, struct al_err *e)
{
    memset(m, 0, sizeof *m);
    m->gguf = *g;
    memset(g, 0, sizeof *g);
    struct gguf *gg = &m->gguf;
    struct model_hparams *hp = &m->hp;
    const char *arch = NULL;
    int rc = -1;

    if (read_hparams(gg, hp, &arch, e) < 0)
        goto out;

    const struct gguf_tensor *te = gguf_find_tensor(gg, "token_embd.weight");
    if (!te) {
        al_errf(e, AL_EFORMAT, "%s: tensor token_embd.weight is missing", gg->what);
        goto out;
    }
    if (te->n_dims != 2 || te->ne[1] == 0 || te->ne[1] > MAX_VOCAB) {
        al_errf(e, AL_EFORMAT, "%s: token_embd.weight: bad vocabulary dimension", gg->what);
        goto out;
    }
    hp->n_vocab = (int)te->ne[1];
    if (bind(gg, "token_embd.weight", hp->dim, hp->n_vocab, 0, &m->token_embd, e) < 0 ||
        bind(gg, "output_norm.weight", hp->dim, 0, 0, &m->output_norm, e) < 0 ||
        bind(gg, "output.weight", hp->dim, hp->n_vocab, 1, &m->output, e) < 0)
        goto out;
    if (!m->output.data) {
        m->output = m->token_embd;
        m->tied_output = 1;
    }
    m->layers = xcalloc((size_t)hp->n_layer, sizeof *m->layers);
    for (int il = 0; il < hp->n_layer; il++)
        if (bind_layer(gg, hp, il, &m->layers[il], e) < 0)
            goto out;

    /* theta_i = base^(-2i/n_rot), divided by the llama-3 frequency factor when present, times
     * the linear position scale. Computed in double once, so every position reuses it. */
    int half = hp->n_rot / 2;
    m->rope_inv_freq = xmalloc((size_t)half * sizeof(float));
    struct model_tensor rf;
    if (bind(gg, "rope_freqs.weight", half, 0, 1, &rf, e) < 0)
        goto out;
    for (int i = 0; i < half; i++) {
        double f = pow((double)hp->rope_base, -2.0 * i / hp->n_rot) * hp->rope_freq_scale;
        if (rf.data) {
            float ff = ((const float *)rf.data)[i];
            if (!(ff > 0) || !isfinite(ff)) {
                al_errf(e, AL_EFORMAT, "%s: rope_freqs.weight[%d] is not positive", gg->what, i);
                goto out;
            }
            f /= ff;
        }
        m->rope_inv_freq[i] = (float)f;
    }

    for (uint64_t i = 0; i < gg->n_tensors; i++) {
        m->n_params += gg->tensors[i].n_elems;
        m->weight_bytes += gg->tensors[i].nbytes;
    }
    m->step_bytes = m->weight_bytes;
    if (!m->tied_output) {
        const struct gguf_tensor *gte = gguf_find_tensor(gg, "token_embd.weight");
        m->step_bytes -= gte->nbytes - m->token_embd.row_bytes;
    }
    make_label(m, arch);

    /* Best effort: start reading the weights in and ask for huge pages; neither changes results. */
    if (gg->map.base && gg->map.size) {
        (void)madvise((void *)gg->map.base, gg->map.size, MADV_WILLNEED);
#ifdef MADV_HUGEPAGE
        (void)madvise((void *)gg->map.base, gg->map.size, MADV_HUGEPAGE);
#endif
    }
    rc = 0;
out:
    if (rc < 0)
        model_free(m);
    return rc;
}

void
model_prefault(const struct model *m, model_progress_fn fn, void *ud)
{
    const struct gguf *g = &m->gguf;
    if (!g->mapped || !g->map.base || g->map.size == 0)
        return;
    const size_t chunk = (size_t)64 << 20; /* bytes per step: ~10 progress updates per GiB */
    long pg = sysconf(_SC_PAGESIZE);
    size_t page = pg > 0 ? (size_t)pg : 4096;
    const uint8_t *base = g->map.base;
    size_t total = g->map.size;
    volatile uint8_t sink = 0;
    for (size_t off = 0; off < total; off += chunk) {
        size_t n = total - off < chunk ? total - off : chunk;
        void *p = (void *)(base + off); /* off is a multiple of chunk: page aligned */
#ifdef MADV_POPULATE_READ
        /* Linux >= 5.14: read the pages in and map them, in one call */
        bool done = madvise(p, n, MADV_POPULATE_READ) == 0;
#else
        bool done = false;
#endif
        if (!done) {
            (void)madvise(p, n, MADV_WILLNEED); /* best effort: start readahead */
            for (size_t i = 0; i < n; i += page)
                sink ^= base[off + i]; /* fault each page in */
        }
        if (fn)
            fn(ud, off + n, total);
    }
    (void)sink;
}

/* MemAvailable from /proc/meminfo in bytes (page cache counts as available: it is reclaimed
 * for the copy), or 0 when it cannot be read. */
static uint64_t
mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "re");
    if (!f)
        return 0;
    char line[128];
    uint64_t kb = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "MemAvailable:", 13) != 0)
            continue;
        char *p = line + 13;
        while (*p == ' ' || *p == '\t')
            p++;
        char *q = p;
        while (*q >= '0' && *q <= '9')
            q++;
        *q = '\0'; /* "NNN kB": the unit is always kB */
        struct al_err ignore = {0};
        if (parse_u64(p, 0, UINT64_MAX / 1024, "MemAvailable", &kb, &ignore) < 0)
            kb = 0;
        break;
    }
    fclose(f);
    return kb * 1024;
}

/* False when the kernel says transparent huge pages are off ("[never]"): a copy would then
 * only cost memory and load time. True when it cannot tell (the copy is harmless). */
bool
model_huge_pages_enabled(void)
{
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re");
    if (!f)
        return true;
    char line[128] = "";
    bool on = !fgets(line, sizeof line, f) || !strstr(line, "[never]");
    fclose(f);
    return on;
}

/* Copy the file behind g's mapping into anonymous memory on huge pages and move that memory
 * over the mapping (same addresses, same bytes). False, with the mapping untouched, when any
 * step fails. */
static bool
copy_to_huge_pages(const struct gguf *g, model_progress_fn fn, void *ud)
{
    const size_t huge = (size_t)2 << 20;
    long pg = sysconf(_SC_PAGESIZE);
    size_t page = pg > 0 ? (size_t)pg : 4096;
    uint8_t *base = (uint8_t *)g->map.base;
    size_t size = g->map.size;
    size_t len = (size + page - 1) / page * page;
    /* Files under 2 MiB are not worth a huge page and are not mapped at an aligned address --
     * but the kernel may still place one on a 2 MiB boundary by chance, so the size decides,
     * not the address (test_model expects the copy exactly for files of 2 MiB or more; it
     * failed in CI when a 277 KB file landed aligned). */
    if (size < huge || (uintptr_t)base % huge != 0 || g->map.fd < 0)
        return false; /* a huge page could not map it where it is */
    if (!model_huge_pages_enabled())
        return false;
    /* the copy plus a margin must fit without pushing anything else out */
    uint64_t avail = mem_available();
    if (avail == 0 || (uint64_t)len + (uint64_t)len / 8 + ((uint64_t)256 << 20) > avail)
        return false;
    uint8_t *r = mmap(NULL, len + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r == MAP_FAILED)
        return false;
    uint8_t *dst = (uint8_t *)(((uintptr_t)r + huge - 1) & ~(uintptr_t)(huge - 1));
    if (dst > r)
        munmap(r, (size_t)(dst - r));
    if (r + len + huge > dst + len)
        munmap(dst + len, (size_t)(r + len + huge - (dst + len)));
#ifdef MADV_HUGEPAGE
    (void)madvise(dst, len, MADV_HUGEPAGE); /* best effort: without it the copy still works */
#endif
    const size_t chunk = (size_t)64 << 20; /* bytes per step: ~10 progress updates per GiB */
    for (size_t off = 0; off < size;) {
        size_t want = size - off < chunk ? size - off : chunk;
        ssize_t got = pread(g->map.fd, dst + off, want, (off_t)off);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            munmap(dst, len);
            return false; /* the file shrank or cannot be read: keep what was mapped */
        }
        off += (size_t)got;
        if (fn && (off % chunk == 0 || off == size))
            fn(ud, off, size);
    }
    /* The file was read a second time: its header (every parsed name, count and offset, which
     * the tokenizer and tensor views point into) must still be the bytes that were checked. */
    size_t header = g->data_offset < size ? (size_t)g->data_offset : size;
    if (memcmp(dst, base, header) != 0 ||
        mprotect(dst, len, PROT_READ) != 0 ||
        mremap(dst, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, base) == MAP_FAILED) {
        munmap(dst, len);
        return false;
    }
    return true;
}

enum model_residency
model_load_weights(struct model *m, bool copy, model_progress_fn fn, void *ud)
{
    const struct gguf *g = &m->gguf;
    if (!g->mapped || !g->map.base || g->map.size == 0)
        return MODEL_IN_MEMORY;
    if (copy && copy_to_huge_pages(g, fn, ud))
        return MODEL_RESIDENT;
    model_prefault(m, fn, ud);
    return MODEL_MAPPED;
}

/* One matrix, rewritten row by row through a row-sized buffer. */
static void
repack_tensor(struct model_tensor *t, uint8_t *tmp)
{
    uint8_t *p = (uint8_t *)t->data;
    for (int64_t r = 0; r < t->ne1; r++) {
        memcpy(tmp, p + (size_t)r * t->row_bytes, t->row_bytes);
        kern_rs_pack_row(t->type, tmp, p + (size_t)r * t->row_bytes, (int)t->ne0);
    }
    t->type = kern_rs_type(t->type);
}

int
model_repack(struct model *m)
{
    const struct gguf *g = &m->gguf;
    if (!g->mapped || !g->map.base || g->map.size == 0)
        return 0;
    long pg = sysconf(_SC_PAGESIZE);
    size_t page = pg > 0 ? (size_t)pg : 4096;
    size_t len = (g->map.size + page - 1) / page * page;
    int n_mats = 7 * m->hp.n_layer + 2, done = 0;
    struct model_tensor **ts = xmalloc(sizeof *ts * (size_t)n_mats);
    size_t max_row = 0;
    int n = 0;
    for (int il = 0; il < m->hp.n_layer; il++) {
        struct model_layer *L = &m->layers[il];
        struct model_tensor *l7[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up,
                                      &L->w_down};
        for (int i = 0; i < 7; i++)
            ts[n++] = l7[i];
    }
    ts[n++] = &m->token_embd;
    ts[n++] = &m->output;
    int k = 0;  /* keep the eligible ones */
    for (int i = 0; i < n; i++) {
        struct model_tensor *t = ts[i];
        if (!t->data || kern_rs_type(t->type) == GGML_TYPE_COUNT || t->ne0 % 64 != 0 ||
            t->ne0 > INT32_MAX || t->ne1 < 1)
            continue;
        if (t == &m->output && m->output.data == m->token_embd.data)
            continue;  /* tied: the same bytes as token_embd, retyped with it below */
        ts[k++] = t;
        max_row = t->row_bytes > max_row ? t->row_bytes : max_row;
    }
    /* The whole mapping at once: changing part of it would split the huge-page copy's
     * mappings into 4 KiB ones, which decode would then stream more slowly. */
    if (k > 0 && mprotect((void *)g->map.base, len, PROT_READ | PROT_WRITE) == 0) {
        uint8_t *tmp = xmalloc(max_row);
        for (int i = 0; i < k; i++, done++)
            repack_tensor(ts[i], tmp);
        free(tmp);
        (void)mprotect((void *)g->map.base, len, PROT_READ);
        if (m->output.data == m->token_embd.data)
            m->output.type = m->token_embd.type;
    }
    free(ts);
    return done;
}

int
model_load(struct model *m, const char *path, struct al_err *e)
{
    struct gguf g;
    memset(m, 0, sizeof *m);
    memset(&g, 0, sizeof g);
    if (gguf_open(&g, path, NULL, e) < 0)
        return -1;
    return model_bind(m, &g, e);
}
