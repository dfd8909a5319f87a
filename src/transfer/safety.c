/* safety.c -- decide whether a file is inert data, weights, a pickle, or executable code, from
 * its name and its own bytes (rules: docs/formats/bom.md, "Safety classes"). Input is untrusted
 * and may be hostile: every read is bounded by the bytes given, the zip scans stop after a fixed
 * number of entries, and nothing is decompressed or executed. Does not decide policy (verify
 * refuses pickle/code unless allowed) and does not parse model metadata (format/gguf.c,
 * format/safetensors.c).
 *
 * Order of the checks, first match wins:
 *   1. magic bytes of weights: "GGUF"; safetensors (8-byte LE length N, 2 <= N <= file-8, '{')
 *   2. magic bytes of native code: ELF, PE ("MZ" + "PE\0\0"), Mach-O, Java class / fat Mach-O
 *   3. zip ("PK\3\4") with a member named *.pkl / *.pickle (torch.save writes archive/data.pkl)
 *   4. pickle with a PROTO opcode (0x80, protocol 2..5) whose opcode stream walks cleanly
 *   5. "#!" shebang with an absolute interpreter path on a printable line: a script
 *   6. code extensions (.py .pyc .sh .so .dll .exe ..., see code_exts)
 *   7. pickle extensions (.bin .pt .pth .pkl .ckpt .pickle .joblib) whose bytes walk as a
 *      protocol 0/1 pickle, or any name whose whole content is a clean pickle ending in STOP
 *      that imports a global (the only way a pickle can run code)
 *   8. numpy .npy whose header declares an object dtype (loaded through pickle)
 *   9. data: json, text, zip, empty, binary. */
#include "transfer/safety.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fsx.h"
#include "util/xalloc.h"

#define ZIP_MAX_ENTRIES 65536        /* members looked at per scan */
#define ZIP_MAX_CD (64u << 20)       /* central directory bytes read by safety_classify_file */
#define PICKLE_MIN_OPS 4             /* opcodes a walk after PROTO must pass to count */
#define PICKLE_MIN_OPS_NOPROTO 8     /* ... without PROTO: random bytes rarely manage 8 */
#define SAFETENSORS_HDR_MAX (100u << 20)

/* ===== small helpers ====================================================================== */

static uint16_t
le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t
le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static uint64_t
le64(const uint8_t *p)
{
    return (uint64_t)le32(p) | ((uint64_t)le32(p + 4) << 32);
}

static const char *
base_name(const char *name)
{
    const char *s = strrchr(name, '/');
    return s ? s + 1 : name;
}

/* Extension match, case-insensitive; ext includes the dot. */
static bool
has_ext(const char *name, const char *ext)
{
    size_t n = strlen(name), m = strlen(ext);
    return n > m && strcasecmp(name + n - m, ext) == 0;
}

static bool
has_any_ext(const char *name, const char *const *exts)
{
    for (size_t i = 0; exts[i]; i++)
        if (has_ext(name, exts[i]))
            return true;
    return false;
}

static void
verdict_set(struct safety_verdict *v, enum safety_class cls, const char *format,
            const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
verdict_set(struct safety_verdict *v, enum safety_class cls, const char *format,
            const char *fmt, ...)
{
    v->cls = cls;
    snprintf(v->format, sizeof v->format, "%s", format);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->reason, sizeof v->reason, fmt, ap);
    va_end(ap);
}

/* Files a loader runs, or that are native programs. Source that must be compiled first (.c,
 * .cu) is data: nothing executes it on load. */
static const char *const code_exts[] = {
    ".py", ".pyc", ".pyo", ".pyw", ".pyx", ".pyd", ".ipynb",
    ".sh", ".bash", ".zsh", ".ksh", ".csh", ".fish", ".command",
    ".so", ".dll", ".dylib", ".exe", ".elf", ".com", ".msi", ".scr",
    ".bat", ".cmd", ".ps1", ".vbs",
    ".js", ".mjs", ".cjs", ".rb", ".pl", ".pm", ".php", ".lua", ".r", ".jl",
    ".jar", ".class", ".whl", ".egg",
    NULL,
};

/* Extensions pickle-based checkpoints use. */
static const char *const pickle_exts[] = {
    ".bin", ".pt", ".pth", ".pkl", ".ckpt", ".pickle", ".joblib", NULL,
};

/* Names that joblib and pickle users give compressed pickles; a .bin or .pt is not
 * presumed to be one just because it starts like a zlib stream. */
static const char *const compressed_pickle_exts[] = {".pkl", ".pickle", ".joblib", NULL};

/* "#!", optional blanks, then an absolute interpreter path on a printable line: random bytes
 * starting "#!" are not a script. */
static bool
is_shebang(const uint8_t *h, size_t len)
{
    if (len < 3 || h[0] != '#' || h[1] != '!')
        return false;
    size_t i = 2;
    while (i < len && (h[i] == ' ' || h[i] == '\t'))
        i++;
    if (i >= len || h[i] != '/')
        return false;
    for (; i < len && i < 256 && h[i] != '\n'; i++)
        if ((h[i] < 0x20 && h[i] != '\t' && h[i] != '\r') || h[i] >= 0x7f)
            return false;
    return true;
}

/* "libfoo.so.1.2" is a shared object too. */
static bool
is_versioned_so(const char *name)
{
    const char *b = base_name(name);
    const char *s = strstr(b, ".so.");
    if (!s)
        return false;
    for (s += 4; *s; s++)
        if (!(*s >= '0' && *s <= '9') && *s != '.')
            return false;
    return true;
}

/* ===== pickle opcode walk =================================================================
 * A pickle is a stream of one-byte opcodes with arguments of known shape. Walking it without
 * executing anything tells a pickle from text or random bytes: text fails at the first space
 * or newline (neither is an opcode), random binary fails within a few opcodes. */

enum pk_arg {
    PK_BAD = 0,  /* not an opcode */
    PK_NONE,     /* no argument */
    PK_F1, PK_F2, PK_F4, PK_F8,  /* fixed-size argument */
    PK_L1, PK_L4, PK_L8,         /* length-prefixed data */
    PK_LINE,     /* newline-terminated argument */
    PK_LINE2,    /* two newline-terminated arguments (GLOBAL, INST) */
    PK_QLINE,    /* quoted string line (protocol 0 STRING) */
};

static enum pk_arg
pickle_op_arg(uint8_t op)
{
    switch (op) {
    case '(': case '.': case '0': case '1': case '2': case 'N': case 'R': case 'a': case 'b':
    case 'd': case 'l': case 's': case 't': case 'Q': case '}': case 'e': case ']': case 'o':
    case 'u': case ')': case 0x81: case 0x85: case 0x86: case 0x87: case 0x88: case 0x89:
    case 0x8f: case 0x90: case 0x91: case 0x92: case 0x93: case 0x94: case 0x97: case 0x98:
        return PK_NONE;
    case 'F': case 'I': case 'L': case 'P': case 'V': case 'g': case 'p':
        return PK_LINE;
    case 'S':
        return PK_QLINE;
    case 'c': case 'i':
        return PK_LINE2;
    case 'K': case 'h': case 'q': case 0x80: case 0x82:
        return PK_F1;
    case 'M': case 0x83:
        return PK_F2;
    case 'J': case 'j': case 'r': case 0x84:
        return PK_F4;
    case 'G': case 0x95:
        return PK_F8;
    case 'U': case 'C': case 0x8a: case 0x8c:
        return PK_L1;
    case 'T': case 'X': case 'B': case 0x8b:
        return PK_L4;
    case 0x8d: case 0x8e: case 0x96:
        return PK_L8;
    default:
        return PK_BAD;
    }
}

struct pk_walk {
    size_t ops;          /* opcodes walked */
    bool stopped;        /* reached STOP ('.') */
    size_t stop_at;      /* byte offset just past STOP */
    bool truncated;      /* ran into the end of the bytes we have (file continues) */
    bool imports;        /* saw GLOBAL/STACK_GLOBAL/INST: the pickle names code to call */
    size_t bad_at;       /* offset of the first invalid byte when neither of the above */
};

/* Globals a pickle imports, collected while walking: GLOBAL/INST name them inline
 * ("module\nname\n"); STACK_GLOBAL (protocol 4+) takes the two strings last pushed, which
 * may come from the memo, so a small memo of string views is kept. This is a best-effort
 * report for humans (the verdict does not depend on it): anything untracked reads as "?". */
#define PK_MEMO 512

struct pk_sv {
    const uint8_t *p;    /* view into the walked bytes; NULL = not a string */
    size_t n;
};

struct pk_globals {
    struct pk_sv top, below;      /* the two most recently pushed values */
    struct pk_sv memo[PK_MEMO];   /* memo slots 0..PK_MEMO-1 */
    size_t memo_next;             /* index MEMOIZE assigns next */
    char *out;                    /* "mod.name, mod.name" (borrowed buffer) */
    size_t cap;                   /* bytes in out */
    bool full;                    /* out overflowed; "..." appended */
};

static void
pk_push(struct pk_globals *g, const uint8_t *p, size_t n)
{
    g->below = g->top;
    g->top.p = p;
    g->top.n = n;
}

static void
pk_add_global(struct pk_globals *g, struct pk_sv mod, struct pk_sv name)
{
    char item[160];
    size_t k = 0;
    for (int part = 0; part < 2; part++) {
        struct pk_sv sv = part ? name : mod;
        if (part)
            item[k++] = '.';
        if (!sv.p) {
            item[k++] = '?';
            continue;
        }
        for (size_t i = 0; i < sv.n && k < 76 * (size_t)(part + 1); i++)
            item[k++] = (sv.p[i] > 0x20 && sv.p[i] < 0x7f && sv.p[i] != ',') ? (char)sv.p[i] : '?';
    }
    item[k] = '\0';
    /* already listed? */
    size_t il = strlen(item), ol = strlen(g->out);
    for (const char *f = g->out; (f = strstr(f, item)) != NULL; f += il)
        if ((f == g->out || f[-1] == ' ') && (f[il] == ',' || f[il] == '\0'))
            return;
    if (g->full)
        return;
    if (ol + il + 2 + 6 >= g->cap) {
        snprintf(g->out + ol, g->cap - ol, "%s...", ol ? ", " : "");
        g->full = true;
        return;
    }
    snprintf(g->out + ol, g->cap - ol, "%s%s", ol ? ", " : "", item);
}

/* Update the collector after opcode op whose argument (need bytes at q) is fully present. */
static void
pk_track(struct pk_globals *g, uint8_t op, const uint8_t *q, uint64_t need)
{
    uint32_t idx;
    switch (op) {
    case 'c': case 'i': {
        const uint8_t *nl = memchr(q, '\n', (size_t)need);
        if (!nl)
            return;
        struct pk_sv mod = {q, (size_t)(nl - q)};
        struct pk_sv name = {nl + 1, (size_t)(need - (uint64_t)(nl - q) - 2)};
        pk_add_global(g, mod, name);
        pk_push(g, NULL, 0);
        return;
    }
    case 0x93:
        pk_add_global(g, g->below, g->top);
        pk_push(g, NULL, 0);
        return;
    case 0x8c: pk_push(g, q + 1, (size_t)need - 1); return;               /* SHORT_BINUNICODE */
    case 'X': pk_push(g, q + 4, (size_t)need - 4); return;                /* BINUNICODE */
    case 0x8d: pk_push(g, q + 8, (size_t)need - 8); return;               /* BINUNICODE8 */
    case 'V': pk_push(g, q, (size_t)need - 1); return;                    /* UNICODE line */
    case 0x94:                                                            /* MEMOIZE */
        if (g->memo_next < PK_MEMO)
            g->memo[g->memo_next] = g->top;
        g->memo_next++;
        return;
    case 'q': case 'r':                                                   /* BINPUT */
        idx = op == 'q' ? q[0] : le32(q);
        if (idx < PK_MEMO)
            g->memo[idx] = g->top;
        return;
    case 'h': case 'j':                                                   /* BINGET */
        idx = op == 'h' ? q[0] : le32(q);
        if (idx < PK_MEMO)
            pk_push(g, g->memo[idx].p, g->memo[idx].n);
        else
            pk_push(g, NULL, 0);
        return;
    case 0x80: case 0x95: case 'p': case '0': case '1':                   /* no push */
        return;
    default:
        pk_push(g, NULL, 0);
        return;
    }
}

/* Find '\n' within [p, end); the line must be printable ASCII. Returns its index or -1. */
static long
pk_line(const uint8_t *p, const uint8_t *end, size_t max)
{
    for (size_t i = 0; p + i < end && i <= max; i++) {
        if (p[i] == '\n')
            return (long)i;
        if (p[i] < 0x20 || p[i] > 0x7e)
            return -1;
    }
    return -2; /* ran out */
}

static void
pickle_walk(const uint8_t *buf, size_t len, uint64_t file_size, size_t max_ops,
            struct pk_walk *w, struct pk_globals *gl)
{
    memset(w, 0, sizeof *w);
    const uint8_t *p = buf, *end = buf + len;
    bool more = file_size > len; /* bytes exist beyond what we were given */
    while (p < end && w->ops < max_ops) {
        uint8_t op = *p;
        enum pk_arg a = pickle_op_arg(op);
        const uint8_t *q = p + 1;
        size_t avail = (size_t)(end - q);
        uint64_t need = 0;
        switch (a) {
        case PK_BAD:
            w->bad_at = (size_t)(p - buf);
            return;
        case PK_NONE: need = 0; break;
        case PK_F1: need = 1; break;
        case PK_F2: need = 2; break;
        case PK_F4: need = 4; break;
        case PK_F8: need = 8; break;
        case PK_L1:
            if (avail < 1)
                goto ran_out;
            need = 1 + (uint64_t)q[0];
            break;
        case PK_L4:
            if (avail < 4)
                goto ran_out;
            need = 4 + (uint64_t)le32(q);
            break;
        case PK_L8:
            if (avail < 8)
                goto ran_out;
            need = le64(q);
            if (need > UINT64_MAX - 8) {
                w->bad_at = (size_t)(p - buf);
                return;
            }
            need += 8;
            break;
        case PK_LINE:
        case PK_QLINE:
        case PK_LINE2: {
            int lines = a == PK_LINE2 ? 2 : 1;
            const uint8_t *s = q;
            for (int i = 0; i < lines; i++) {
                long n = pk_line(s, end, 4096);
                if (n == -2)
                    goto ran_out;
                /* a protocol 0 line argument is never empty except INT/LONG "" is invalid too */
                if (n <= 0) {
                    w->bad_at = (size_t)(p - buf);
                    return;
                }
                if (a == PK_QLINE && !((s[0] == '\'' && s[n - 1] == '\'' && n >= 2) ||
                                       (s[0] == '"' && s[n - 1] == '"' && n >= 2))) {
                    w->bad_at = (size_t)(p - buf);
                    return;
                }
                s += n + 1;
            }
            need = (uint64_t)(s - q);
            break;
        }
        }
        if (op == 0x80 && avail >= 1 && q[0] > 5) {
            w->bad_at = (size_t)(p - buf);
            return;
        }
        if (op == 'c' || op == 'i' || op == 0x93)
            w->imports = true;
        w->ops++;
        if (need > avail) {
            /* a counted argument reaching past our window is fine if the file has the bytes */
            if (more && need - avail <= file_size - len) {
                w->truncated = true;
                return;
            }
            w->bad_at = (size_t)(p - buf);
            return;
        }
        if (gl)
            pk_track(gl, op, q, need);
        p = q + need;
        if (op == '.') {
            w->stopped = true;
            w->stop_at = (size_t)(p - buf);
            return;
        }
    }
    if (p >= end && more)
        w->truncated = true;
    else if (w->ops >= max_ops)
        w->truncated = true; /* long enough to be convincing */
    else
        w->bad_at = (size_t)(p - buf);
    return;
ran_out:
    if (more)
        w->truncated = true;
    else
        w->bad_at = (size_t)(p - buf);
}

/* Fill out (cap bytes) with the globals the pickle stream(s) in buf import: a torch legacy
 * file is several pickles back to back, so walking resumes after each STOP. */
static void
pickle_imports(const uint8_t *buf, size_t len, uint64_t size, char *out, size_t cap)
{
    struct pk_globals g;
    memset(&g, 0, sizeof g);
    out[0] = '\0';
    g.out = out;
    g.cap = cap;
    size_t off = 0;
    for (int n = 0; n < 16 && off < len; n++) {
        struct pk_walk w;
        pickle_walk(buf + off, len - off, size - off, SIZE_MAX, &w, &g);
        if (!w.stopped || w.stop_at == 0)
            break;
        off += w.stop_at;
        memset(&g.top, 0, sizeof g.top);
        memset(&g.below, 0, sizeof g.below);
        g.memo_next = 0;
        memset(g.memo, 0, sizeof g.memo);
    }
}

/* A pickle whose walk reached STOP or our window's end after enough clean opcodes. */
static bool
pickle_walk_ok(const struct pk_walk *w)
{
    return w->stopped || (w->truncated && w->ops >= PICKLE_MIN_OPS);
}

/* ===== zip scan ============================================================================
 * Local file header: "PK\3\4", version 2, flags 2, method 2, time 2, date 2, crc 4, csize 4,
 * usize 4, name_len 2, extra_len 2, name, extra, data. With flag bit 3 the sizes follow the data
 * instead, so the scan resyncs on the next "PK\3\4". */

static bool
zip_member_is_pickle(const uint8_t *name, size_t n)
{
    static const char *const exts[] = {".pkl", ".pickle", NULL};
    for (size_t i = 0; exts[i]; i++) {
        size_t m = strlen(exts[i]);
        if (n >= m && strncasecmp((const char *)name + n - m, exts[i], m) == 0)
            return true;
    }
    return false;
}

static void
copy_member(char *dst, size_t cap, const uint8_t *name, size_t n)
{
    size_t k = n < cap - 1 ? n : cap - 1;
    for (size_t i = 0; i < k; i++)
        dst[i] = (name[i] >= 0x20 && name[i] < 0x7f) ? (char)name[i] : '?';
    dst[k] = '\0';
}

/* Scan local headers in the bytes given. Returns 1 with the member name when a pickle member
 * is found, else 0. */
static int
zip_scan_local(const uint8_t *p, size_t len, char *member, size_t cap, size_t *at)
{
    size_t off = 0;
    for (int i = 0; i < ZIP_MAX_ENTRIES && off + 30 <= len; i++) {
        if (memcmp(p + off, "PK\3\4", 4) != 0) {
            /* after a data descriptor entry, or at the central directory: look for the next
             * local header */
            const uint8_t *nx = memmem(p + off + 1, len - off - 1, "PK\3\4", 4);
            if (!nx)
                return 0;
            off = (size_t)(nx - p);
            continue;
        }
        uint16_t flags = le16(p + off + 6);
        uint32_t csize = le32(p + off + 18);
        size_t nlen = le16(p + off + 26), xlen = le16(p + off + 28);
        if (off + 30 + nlen > len)
            return 0;
        if (zip_member_is_pickle(p + off + 30, nlen)) {
            copy_member(member, cap, p + off + 30, nlen);
            *at = off;
            return 1;
        }
        size_t next = off + 30 + nlen + xlen;
        if (!(flags & 8) && csize != 0xffffffffu)
            next += csize;
        if (next <= off)
            return 0;
        off = next;
    }
    return 0;
}

/* Walk central directory entries ("PK\1\2", 46 fixed bytes, name at 46). */
static int
zip_scan_central(const uint8_t *p, size_t len, char *member, size_t cap)
{
    size_t off = 0;
    for (int i = 0; i < ZIP_MAX_ENTRIES && off + 46 <= len; i++) {
        if (memcmp(p + off, "PK\1\2", 4) != 0)
            return 0;
        size_t nlen = le16(p + off + 28), xlen = le16(p + off + 30), clen = le16(p + off + 32);
        if (off + 46 + nlen > len)
            return 0;
        if (zip_member_is_pickle(p + off + 46, nlen)) {
            copy_member(member, cap, p + off + 46, nlen);
            return 1;
        }
        off += 46 + nlen + xlen + clen;
    }
    return 0;
}

/* ===== classification ===================================================================== */

static bool
looks_safetensors(const uint8_t *h, size_t len, uint64_t size)
{
    if (len < 9 || size < 10)
        return false;
    uint64_t n = le64(h);
    return n >= 2 && n <= SAFETENSORS_HDR_MAX && n <= size - 8 && h[8] == '{';
}

/* UTF-8 text without control bytes other than tab, CR, LF, FF. */
static bool
looks_text(const uint8_t *p, size_t n, bool truncated)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        if (c < 0x80) {
            if (c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f')
                return false;
            if (c == 0x7f)
                return false;
            i++;
            continue;
        }
        size_t k = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
        if (k == 0 || c == 0xc0 || c == 0xc1 || c > 0xf4)
            return false;
        if (i + k > n)
            return truncated; /* a character cut by the window end */
        for (size_t j = 1; j < k; j++)
            if ((p[i + j] & 0xc0) != 0x80)
                return false;
        i += k;
    }
    return true;
}

static bool
is_pe(const uint8_t *h, size_t len)
{
    if (len < 0x40 || h[0] != 'M' || h[1] != 'Z')
        return false;
    uint32_t pe = le32(h + 0x3c);
    return pe <= len - 4 && memcmp(h + pe, "PE\0\0", 4) == 0;
}

static bool
is_macho(const uint8_t *h, size_t len)
{
    if (len < 4)
        return false;
    uint32_t m = le32(h);
    return m == 0xfeedfaceu || m == 0xfeedfacfu || m == 0xcefaedfeu || m == 0xcffaedfeu;
}

/* "\x93NUMPY" major minor, header length (2 bytes v1, 4 bytes v2/3), then a Python dict
 * literal; a descr of 'O' (object) makes numpy.load unpickle the array data. */
static bool
npy_object_dtype(const uint8_t *h, size_t len)
{
    if (len < 10 || memcmp(h, "\x93NUMPY", 6) != 0)
        return false;
    size_t hl, at;
    if (h[6] == 1) {
        hl = le16(h + 8);
        at = 10;
    } else {
        if (len < 12)
            return false;
        hl = le32(h + 8);
        at = 12;
    }
    if (hl > len - at)
        hl = len - at;
    const uint8_t *d = memmem(h + at, hl, "'descr'", 7);
    if (!d)
        return false;
    const uint8_t *hend = h + at + hl;
    for (d += 7; d < hend && (*d == ' ' || *d == ':'); d++)
        ;
    /* '|O', '<O', 'O' or a structured dtype list holding one */
    if (d < hend && *d == '[')
        return memmem(d, (size_t)(hend - d), "'|O'", 4) || memmem(d, (size_t)(hend - d), "'O'", 3);
    size_t rem = (size_t)(hend - d);
    if (rem >= 2 && d[0] == '\'' && d[1] == 'O')
        return true;
    return rem >= 4 && d[0] == '\'' && d[2] == 'O' && d[3] == '\'';
}

void
safety_classify(const char *name, const uint8_t *head, size_t head_len, uint64_t size,
                struct safety_verdict *v)
{
    memset(v, 0, sizeof *v);
    if (!name)
        name = "";
    if (head_len > size)
        head_len = (size_t)size;
    bool whole = head_len == size; /* we see every byte of the file */
    char member[128];

    /* 1. weights */
    if (head_len >= 4 && memcmp(head, "GGUF", 4) == 0) {
        verdict_set(v, SAFETY_WEIGHTS, "gguf", "GGUF magic at byte 0");
        return;
    }
    if (looks_safetensors(head, head_len, size)) {
        verdict_set(v, SAFETY_WEIGHTS, "safetensors",
                    "safetensors header length %" PRIu64 " then '{' at byte 8", le64(head));
        return;
    }
    /* 2. native code */
    if (head_len >= 4 && memcmp(head, "\x7f" "ELF", 4) == 0) {
        verdict_set(v, SAFETY_CODE, "elf", "ELF magic at byte 0");
        return;
    }
    if (is_pe(head, head_len)) {
        verdict_set(v, SAFETY_CODE, "pe", "MZ/PE executable header");
        return;
    }
    if (is_macho(head, head_len)) {
        verdict_set(v, SAFETY_CODE, "mach-o", "Mach-O magic at byte 0");
        return;
    }
    if (head_len >= 4 && memcmp(head, "\xca\xfe\xba\xbe", 4) == 0) {
        verdict_set(v, SAFETY_CODE, "mach-o", "fat Mach-O / Java class magic at byte 0");
        return;
    }
    /* 3. zip holding a pickle */
    if (head_len >= 4 && memcmp(head, "PK\3\4", 4) == 0) {
        size_t at = 0;
        if (zip_scan_local(head, head_len, member, sizeof member, &at)) {
            verdict_set(v, SAFETY_PICKLE, "zip-pickle",
                        "zip member \"%s\" (local header at byte %zu) is a pickle", member, at);
            /* torch.save stores members uncompressed, so the pickle can be read in place */
            size_t data = at + 30 + le16(head + at + 26) + le16(head + at + 28);
            if (le16(head + at + 8) == 0 && data < head_len)
                pickle_imports(head + data, head_len - data, size - data, v->imports,
                               sizeof v->imports);
            return;
        }
    }
    /* 4. pickle with a protocol header */
    struct pk_walk w;
    if (head_len >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5) {
        pickle_walk(head, head_len, size, 64, &w, NULL);
        if (pickle_walk_ok(&w)) {
            verdict_set(v, SAFETY_PICKLE, "pickle", "pickle protocol %u opcode at byte 0%s",
                        head[1], w.imports ? ", imports globals" : "");
            pickle_imports(head, head_len, size, v->imports, sizeof v->imports);
            return;
        }
    }
    /* 5. scripts */
    if (is_shebang(head, head_len)) {
        const uint8_t *nl = memchr(head, '\n', head_len < 256 ? head_len : 256);
        size_t l = nl ? (size_t)(nl - head) : (head_len < 256 ? head_len : 256);
        bool py = memmem(head, l, "python", 6) != NULL;
        verdict_set(v, SAFETY_CODE, py ? "python" : "script", "\"#!\" interpreter line: %.*s",
                    (int)(l > 80 ? 80 : l), (const char *)head);
        for (char *c = v->reason; *c; c++)
            if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
                *c = '?';
        return;
    }
    /* 6. code by name */
    if (has_any_ext(name, code_exts) || is_versioned_so(name)) {
        const char *fmt = "code";
        if (has_ext(name, ".py") || has_ext(name, ".pyw") || has_ext(name, ".pyx") ||
            has_ext(name, ".ipynb"))
            fmt = "python";
        else if (has_ext(name, ".pyc") || has_ext(name, ".pyo"))
            fmt = "python-bytecode";
        else if (has_ext(name, ".sh") || has_ext(name, ".bash") || has_ext(name, ".zsh") ||
                 has_ext(name, ".ksh") || has_ext(name, ".csh") || has_ext(name, ".fish"))
            fmt = "shell";
        else if (has_ext(name, ".so") || has_ext(name, ".dll") || has_ext(name, ".dylib") ||
                 has_ext(name, ".pyd") || is_versioned_so(name))
            fmt = "shared-object";
        const char *dot = strrchr(base_name(name), '.');
        verdict_set(v, SAFETY_CODE, fmt, "file name ends in \"%.32s\"", dot ? dot : name);
        return;
    }
    /* 7. protocol 0/1 pickles: by extension, or a complete stream that is nothing else */
    if (head_len > 0) {
        pickle_walk(head, head_len, size, 256, &w, NULL);
        /* without a PROTO header demand more: a stream that ends exactly at the end of the
         * file (as pickle.dump writes it), or a long clean run of opcodes */
        bool at_end = whole && w.stopped &&
                      (w.stop_at == size || (w.stop_at + 1 == size && head[w.stop_at] == '\n'));
        bool by_ext = has_any_ext(name, pickle_exts) && w.ops >= 2 &&
                      (at_end || ((w.stopped || w.truncated) && w.ops >= PICKLE_MIN_OPS_NOPROTO));
        bool complete = at_end && w.ops >= 3 && w.imports;
        if (by_ext || complete) {
            verdict_set(v, SAFETY_PICKLE, "pickle", "pickle opcode stream from byte 0 (%zu "
                        "opcodes%s%s)", w.ops, w.stopped ? ", ends in STOP" : "",
                        w.imports ? ", imports globals" : "");
            pickle_imports(head, head_len, size, v->imports, sizeof v->imports);
            return;
        }
    }
    if (head_len >= 6 && has_any_ext(name, compressed_pickle_exts) &&
        ((head[0] == 0x1f && head[1] == 0x8b && head[2] == 8) ||
         (head[0] == 0x78 && (head[1] == 0x01 || head[1] == 0x5e || head[1] == 0x9c ||
                              head[1] == 0xda)) ||
         memcmp(head, "\xfd" "7zXZ\0", 6) == 0)) {
        /* joblib and friends compress the pickle; we cannot look inside without inflating */
        verdict_set(v, SAFETY_PICKLE, "compressed-pickle",
                    "compressed stream with a pickle file extension");
        return;
    }
    /* 8. numpy object arrays */
    if (npy_object_dtype(head, head_len)) {
        verdict_set(v, SAFETY_PICKLE, "npy-object", "numpy array with object dtype (pickled)");
        return;
    }
    /* 9. data */
    if (size == 0) {
        verdict_set(v, SAFETY_DATA, "empty", "empty file");
        return;
    }
    if (head_len >= 4 && memcmp(head, "PK\3\4", 4) == 0) {
        verdict_set(v, SAFETY_DATA, "zip", "zip archive, no pickle member in the first %zu bytes",
                    head_len);
        return;
    }
    if (head_len >= 6 && memcmp(head, "\x93NUMPY", 6) == 0) {
        verdict_set(v, SAFETY_DATA, "npy", "numpy array, plain dtype");
        return;
    }
    if (looks_text(head, head_len, !whole)) {
        size_t i = 0;
        while (i < head_len && (head[i] == ' ' || head[i] == '\n' || head[i] == '\t' ||
                                head[i] == '\r'))
            i++;
        if (i < head_len && (head[i] == '{' || head[i] == '[') &&
            (has_ext(name, ".json") || has_ext(name, ".jsonl")))
            verdict_set(v, SAFETY_DATA, "json", "JSON text");
        else
            verdict_set(v, SAFETY_DATA, "text", "UTF-8 text");
        return;
    }
    verdict_set(v, SAFETY_DATA, "binary", "no executable, pickle or weights signature");
}

const char *
safety_class_name(enum safety_class c)
{
    switch (c) {
    case SAFETY_DATA: return "data";
    case SAFETY_WEIGHTS: return "weights";
    case SAFETY_PICKLE: return "pickle";
    case SAFETY_CODE: return "code";
    }
    return "unknown";
}

/* ===== files ============================================================================== */

static int
pread_full(int fd, uint8_t *p, size_t n, uint64_t off, size_t *got, const char *path,
           struct al_err *e)
{
    *got = 0;
    while (*got < n) {
        ssize_t r = pread(fd, p + *got, n - *got, (off_t)(off + *got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return al_errno(e, errno, "%s: read", path);
        if (r == 0)
            break;
        *got += (size_t)r;
    }
    return 0;
}

/* Locate the central directory through the end records and scan it. Returns 1 with the member
 * name when a pickle member is listed, 0 when none (or the end records are absent/garbled:
 * the local scan already ran), -1 on an I/O error. */
static int
zip_scan_file(int fd, uint64_t size, const char *path, char *member, size_t cap,
              struct al_err *e)
{
    int rc = -1;
    uint8_t *tail = NULL, *cd = NULL;
    size_t got;
    /* EOCD: 22 bytes + comment up to 65535; zip64 locator 20 bytes before it */
    size_t tl = size < 22 + 65535 + 20 ? (size_t)size : 22 + 65535 + 20;
    tail = xmalloc(tl ? tl : 1);
    if (pread_full(fd, tail, tl, size - tl, &got, path, e) != 0)
        goto out;
    rc = 0;
    if (got != tl || tl < 22)
        goto out;
    long eocd = -1;
    for (long i = (long)tl - 22; i >= 0; i--)
        if (memcmp(tail + i, "PK\5\6", 4) == 0) {
            eocd = i;
            break;
        }
    if (eocd < 0)
        goto out;
    uint64_t cd_size = le32(tail + eocd + 12), cd_off = le32(tail + eocd + 16);
    if ((cd_size == 0xffffffffu || cd_off == 0xffffffffu) && eocd >= 20 &&
        memcmp(tail + eocd - 20, "PK\6\7", 4) == 0) {
        uint64_t z64 = le64(tail + eocd - 20 + 8);
        uint8_t rec[56];
        if (z64 > size - 56)
            goto out;
        if (pread_full(fd, rec, sizeof rec, z64, &got, path, e) != 0) {
            rc = -1;
            goto out;
        }
        if (got != sizeof rec || memcmp(rec, "PK\6\6", 4) != 0)
            goto out;
        cd_size = le64(rec + 40);
        cd_off = le64(rec + 48);
    }
    if (cd_off > size || cd_size > size - cd_off || cd_size > ZIP_MAX_CD)
        goto out;
    cd = xmalloc(cd_size ? (size_t)cd_size : 1);
    if (pread_full(fd, cd, (size_t)cd_size, cd_off, &got, path, e) != 0) {
        rc = -1;
        goto out;
    }
    rc = zip_scan_central(cd, got, member, cap);
out:
    free(tail);
    free(cd);
    return rc;
}

int
safety_classify_file(const char *path, const char *name, struct safety_verdict *v,
                     struct al_err *e)
{
    int rc = -1;
    int fd = -1;
    uint8_t *head = NULL;
    memset(v, 0, sizeof *v);
    fd = fsx_open_read(path, e);
    if (fd < 0)
        goto out;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        al_errno(e, errno, "%s: stat", path);
        goto out;
    }
    uint64_t size = (uint64_t)sb.st_size;
    size_t want = size < SAFETY_HEAD_BYTES ? (size_t)size : SAFETY_HEAD_BYTES;
    head = xmalloc(want ? want : 1);
    size_t got;
    if (pread_full(fd, head, want, 0, &got, path, e) != 0)
        goto out;
    safety_classify(name ? name : path, head, got, size, v);
    if (v->cls == SAFETY_DATA && strcmp(v->format, "zip") == 0) {
        char member[128];
        int z = zip_scan_file(fd, size, path, member, sizeof member, e);
        if (z < 0)
            goto out;
        if (z == 1)
            verdict_set(v, SAFETY_PICKLE, "zip-pickle",
                        "zip central directory lists a pickle member \"%s\"", member);
    }
    rc = 0;
out:
    free(head);
    if (fd >= 0)
        close(fd);
    return rc;
}
