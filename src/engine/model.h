/* model.h -- a Llama-family transformer bound to the tensors of a mapped GGUF file.
 * Reads hyperparameters from the <arch>.* keys for the "llama" and "qwen2" architectures, binds
 * every tensor by name and checks its shape and type before the forward pass may touch it.
 * Weights stay in the read-only mapping (borrowed by every struct here); the only owned memory
 * is the layer array and the RoPE frequency table. The GGUF file is untrusted input.
 * Does not compute anything (engine/forward.c) or read the tokenizer (engine/tokenizer.c). */
#ifndef AIRLOCK_ENGINE_MODEL_H
#define AIRLOCK_ENGINE_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format/gguf.h"
#include "util/err.h"

enum model_arch {
    MODEL_ARCH_LLAMA, /* Llama 2/3, TinyLlama, SmolLM, Mistral: no biases, "normal" RoPE */
    MODEL_ARCH_QWEN2, /* Qwen2/2.5: Q/K/V biases, NeoX RoPE */
};

enum rope_style {
    ROPE_NORMAL, /* rotate adjacent pairs (x[2i], x[2i+1]): how GGUF stores llama Q/K */
    ROPE_NEOX,   /* rotate (x[i], x[i + n_rot/2]): GPT-NeoX layout used by qwen2 */
};

struct model_hparams {
    enum model_arch arch;   /* from general.architecture */
    int n_layer;            /* transformer blocks */
    int dim;                /* embedding width (d_model) */
    int n_ff;               /* FFN hidden width */
    int n_head;             /* query heads */
    int n_head_kv;          /* key/value heads (GQA when < n_head) */
    int head_dim;           /* dim / n_head */
    int kv_dim;             /* n_head_kv * head_dim */
    int n_vocab;            /* rows of token_embd */
    int n_ctx_train;        /* <arch>.context_length: positions the model was trained for */
    int n_rot;              /* rotated dimensions per head (rope.dimension_count), even, <= head_dim */
    float norm_eps;         /* rmsnorm epsilon */
    float rope_base;        /* rope.freq_base (theta) */
    float rope_freq_scale;  /* 1/rope.scaling.factor for linear scaling, else 1 */
    enum rope_style rope;   /* pair layout, from the architecture */
};

/* One weight matrix or vector, viewed in the mapping. Rows are ne0 elements (the contiguous
 * dimension), there are ne1 rows; a matrix-vector product y = W x takes x of ne0 elements and
 * gives y of ne1 elements. */
struct model_tensor {
    const void *data;       /* borrowed from the mapping; NULL when the tensor is absent */
    enum ggml_type type;    /* GGUF tensor type */
    int64_t ne0;            /* elements per row */
    int64_t ne1;            /* rows (1 for vectors) */
    size_t row_bytes;       /* bytes of one row in its storage type */
};

struct model_layer {
    struct model_tensor attn_norm;   /* F32 (dim) */
    struct model_tensor wq;          /* (dim rows of dim) */
    struct model_tensor wk;          /* (kv_dim rows of dim) */
    struct model_tensor wv;          /* (kv_dim rows of dim) */
    struct model_tensor wo;          /* (dim rows of dim) */
    struct model_tensor bq;          /* F32 (dim), qwen2 only; data NULL for llama */
    struct model_tensor bk;          /* F32 (kv_dim), qwen2 only */
    struct model_tensor bv;          /* F32 (kv_dim), qwen2 only */
    struct model_tensor ffn_norm;    /* F32 (dim) */
    struct model_tensor w_gate;      /* (n_ff rows of dim) */
    struct model_tensor w_up;        /* (n_ff rows of dim) */
    struct model_tensor w_down;      /* (dim rows of n_ff) */
};

struct model {
    struct gguf gguf;               /* owned: the mapping every tensor view points into */
    struct model_hparams hp;        /* validated hyperparameters */
    struct model_tensor token_embd; /* (n_vocab rows of dim) */
    struct model_tensor output_norm;/* F32 (dim) */
    struct model_tensor output;     /* (n_vocab rows of dim); == token_embd when tied */
    int tied_output;                /* 1 when output.weight is absent and token_embd is reused */
    struct model_layer *layers;     /* owned, hp.n_layer entries */
    float *rope_inv_freq;           /* owned, n_rot/2 entries: theta_i per position, with
                                     * linear scaling and rope_freqs.weight factors applied */
    uint64_t n_params;              /* total elements over all tensors */
    uint64_t weight_bytes;          /* total bytes of tensor data */
    uint64_t step_bytes;            /* weight bytes one decode step reads: all tensor data but
                                     * token_embd, of which only one row when it is not also
                                     * the output matrix (the decode bandwidth bound's bytes) */
    char type_name[48];             /* label for bench, metrics and the status page: e.g.
                                     * "llama 135M Q8_0", or "qwen2 1.5B Q4_K - Medium
                                     * (guessed)" (37 chars) without general.file_type */
};

/* Open path, parse the GGUF header and bind the model. On failure m is left safe to free. */
int model_load(struct model *m, const char *path, struct al_err *e);
/* Bind a model from an already-open GGUF (takes ownership of *g on success and on failure). */
int model_bind(struct model *m, struct gguf *g, struct al_err *e);
void model_free(struct model *m); /* safe on a zeroed or partly loaded model */

/* Progress of bringing the weights into memory: done of total bytes so far. Called on the
 * loading thread; the engine never draws anything itself (the CLI passes a progress bar). */
typedef void (*model_progress_fn)(void *ud, uint64_t done, uint64_t total);
/* Bring every page of a mapped model's file into memory now, chunk by chunk, calling fn
 * (may be NULL) after each chunk. Best effort: it changes only when the page faults happen,
 * never a result. Does nothing for a model parsed from memory. */
void model_prefault(const struct model *m, model_progress_fn fn, void *ud);

/* Where the weights live once loaded. */
enum model_residency {
    MODEL_IN_MEMORY, /* parsed from a caller's buffer (the embedded model): nothing to do */
    MODEL_MAPPED,    /* the file's own pages, shared with the page cache (--mmap) */
    MODEL_RESIDENT,  /* a private copy on 2 MiB pages at the same addresses (the default) */
};
/* Bring the weights into memory, calling fn (may be NULL) as bytes arrive. With copy, the
 * file is read into anonymous memory on huge pages that then replaces the mapping in place,
 * so every view into it stays valid: decode streams every weight byte once per token, and
 * on 4 KiB file pages that stream runs 15-20 % below the machine's read bandwidth (a TLB miss
 * and a prefetcher restart every 4 KiB). The copy is skipped, and the mapping prefaulted
 * instead, when it would not fit in available memory or any step fails; the return value
 * says which happened. Results never depend on it. */
enum model_residency model_load_weights(struct model *m, bool copy, model_progress_fn fn,
                                        void *ud);
/* Rewrite the Q4_0, Q5_0 and Q8_0 weight matrices (rows of a multiple of 64 elements) in
 * place into the kernels' row-split layout (engine/kernels/quant.h: the same bytes per row
 * grouped by kind, which decode reads faster) and retype their views; outputs stay bit for
 * bit the same. Call after model_load_weights and after anything that must see the file's
 * own bytes (the server hashes them first): the private copy, or the file mapping's pages,
 * which become copy-on-write private ones. Does nothing for a model parsed from memory; skip it to keep a
 * shared --mmap mapping. Best effort: a matrix it cannot write keeps its GGUF layout. Returns
 * the number of matrices rewritten. */
int model_repack(struct model *m);

/* Whether transparent huge pages are available (not "[never]"); no copy is made without. */
bool model_huge_pages_enabled(void);

const char *model_arch_name(enum model_arch a);
/* The file type llama.cpp's loader guesses for a GGUF without general.file_type: its name for
 * the most common tensor type ("Q8_0", "Q4_K - Medium", "all F32"; the bare type name, e.g.
 * "IQ4_XS", for a type it has no file type for), or NULL when g has no tensor of a known type.
 * The string is static. */
const char *model_guess_ftype(const struct gguf *g);

#endif
