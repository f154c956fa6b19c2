/*
 * Quality Focal Loss (Li et al., GFL, 2020), the quality family's CPU kernel: forward and gradient in one sweep over
 * the elements, every element its own binary problem with a soft target y in [0, 1].
 *
 * Built at first use by focalbench.kernels.build into a library of its own (a compile error here leaves the other
 * families' kernels working); the per-element exponential, logarithm and chunking are shared with the sigmoid kernel
 * through sigmoid_math.h. Called through ctypes (focalbench.kernels.quality_cpu).
 *
 * Per element, from e = exp(-|x|), r = 1 / (1 + e), L = log1p(e) (sigmoid_math.h):
 *   p = sigmoid(x), q = 1 - p (r and e r by the sign of x); softplus(x) = max(x, 0) + L = -log q and
 *   softplus(-x) = max(-x, 0) + L = -log p;
 *   CE = (1 - y) softplus(x) + y softplus(-x): BCE with the soft target, a sum of non-negative terms;
 *   d = s - y = p (1 - y) - q y (p = s), m = |d|;
 *   loss = m^beta CE;
 *   dloss/dx = m^beta d + beta m^(beta - 1) sign(d) p q CE = m^beta (d + beta CE p q / d)  (CE' = d, m' = sign(d) p q);
 *     beta = 2: d (m^2 + 2 p q CE); beta = 0: d (BCE's); otherwise m^beta in double, exp(beta log m).
 * Limits: at d = 0 (s == y exactly) loss and gradient are 0 for beta > 0 (the term beta m^(beta - 1) sign(d) is taken as
 * 0 there, the value of sign(0)); p q CE -> 0 where p q underflows (CE = +inf included); an infinite logit that
 * disagrees with its target gives loss +inf and the gradient's finite limit; NaN propagates.
 * float32 is computed in float32 (16 lanes with AVX-512), the general beta's m^beta in double from m; float64 in double.
 * With loss == NULL the loss is summed per chunk of QUALITY_CHUNK elements into partial[], in order, so the total does
 * not depend on the number of threads; with grad == NULL no gradient is written; scale multiplies the gradient.
 */
#include "focal_math.h"
#include "sigmoid_math.h"

#define QUALITY_CHUNK 4096
/* Elements a loop variant takes at a time through its passes (a divisor of QUALITY_CHUNK): see sigmoid_cpu.c's
 * sigmoid_run_T for why three short passes over an L1-resident block run faster than one long chain. */
#define QUALITY_BLOCK 256

/* One float64 element from its e, r, L, in double; BETA_KIND as for float32 (below). */
static inline __attribute__((always_inline)) double quality_element_f64(double x, double y, double e, double r,
                                                                        double L, double beta, const int beta_kind,
                                                                        double *grad) {
    const double er = e * r;
    const int positive = x >= 0.0;
    const double p = positive ? r : er, q = positive ? er : r;
    const double softplus_x = (x > 0.0 ? x : 0.0) + L, softplus_minus_x = (x < 0.0 ? -x : 0.0) + L;
    const double ce = (y < 1.0 ? (1.0 - y) * softplus_x : 0.0) + (y > 0.0 ? y * softplus_minus_x : 0.0);
    const double d = p * (1.0 - y) - q * y;
    const double m = d < 0.0 ? -d : d;
    const double pq = p * q;
    const double ce_pq = pq > 0.0 ? ce * pq : 0.0;
    double w, g;
    if (beta_kind == 0) {
        w = 1.0;
        g = d;
    } else if (beta_kind == 2) {
        w = m * m;
        g = d * w + 2.0 * d * ce_pq;
    } else {
        w = m > 0.0 ? exp_nonpos(beta * log_unit(m)) : 0.0;
        g = w * (d + beta * (m > 0.0 ? ce_pq / d : 0.0));
    }
    *grad = g;
    return w == 0.0 && x == x ? 0.0 : ce == INFINITY ? INFINITY : w * ce;
}

/* One float32 element from its e, r, L; BETA_KIND is 0, 2 or 1 (general), a constant at every call. */
static inline __attribute__((always_inline)) float quality_element_f32(float x, float y, float e, float r, float L,
                                                                       double beta, const int beta_kind, float *grad) {
    const float er = e * r;
    const int positive = x >= 0.0f;
    const float p = positive ? r : er, q = positive ? er : r;
    const float softplus_x = (x > 0.0f ? x : 0.0f) + L, softplus_minus_x = (x < 0.0f ? -x : 0.0f) + L;
    /* (1 - y) * inf at y = 1 would be NaN: a term whose weight is 0 is 0 */
    const float ce = (y < 1.0f ? (1.0f - y) * softplus_x : 0.0f) + (y > 0.0f ? y * softplus_minus_x : 0.0f);
    const float d = p * (1.0f - y) - q * y;
    const float m = d < 0.0f ? -d : d;
    const float pq = p * q;
    const float ce_pq = pq > 0.0f ? ce * pq : 0.0f;
    if (beta_kind == 1) {
        /* p, q, d = s - y and the weight again in double, from e = exp(-|x|) in double: m^beta multiplies m's relative
         * error by beta, and m = |s - y| cancels, so float32's p (a few ulp) gave 5e-6 at beta 5, |x| 1, y 0.25; CE
         * p q / d at a saturated logit (e^-|x| |x| e^-|x| / e^-|x|) passes below float32's normal range where the
         * result does not. CE itself keeps float32's relative accuracy. Only a general beta pays this (the default,
         * 2, stays in float32). */
        const double ed = exp_nonpos(-(double)(x < 0.0f ? -x : x)), rd = 1.0 / (1.0 + ed), erd = ed * rd;
        const double pd = positive ? rd : erd, qd = positive ? erd : rd;
        const double yd = (double)y, dd = pd * (1.0 - yd) - qd * yd, md = dd < 0.0 ? -dd : dd;
        const double wd = md > 0.0 ? exp_nonpos(beta * log_unit(md)) : 0.0;
        const double ratio = md > 0.0 ? (double)ce * (pd * qd) / dd : 0.0;
        *grad = (float)(wd * (dd + beta * ratio));
        /* s == y exactly gives 0 at any logit; CE = +inf gives +inf however far m^beta underflowed */
        return md == 0.0 && x == x ? 0.0f : ce == INFINITY ? INFINITY : (float)(wd * (double)ce);
    }
    /* beta = 2 (the terms CE p q and d^3 fall below float32's normal range together, where the gradient is below it
     * too) and beta = 0 (BCE) */
    const float w = beta_kind == 2 ? m * m : 1.0f;
    *grad = beta_kind == 2 ? d * w + 2.0f * d * ce_pq : d;
    /* weight 0 (s == y) gives 0 at any logit; CE = +inf gives +inf however far m^beta underflowed */
    return w == 0.0f && x == x ? 0.0f : ce == INFINITY ? INFINITY : w * ce;
}

/* quality_run_T: elements [0, n) of one chunk with the outputs (WANT_LOSS, WANT_GRAD) and BETA_KIND constant;
 * returns the chunk's loss sum in double (0 when the losses are written). quality_variant_T_<loss><grad>_k<kind>: one
 * noinline function per combination (each keeps its own vector loop: tests/test_native.py reads their machine code). */
#define DEFINE_QUALITY_RUN(T, A, SUFFIX)                                                                             \
    static inline __attribute__((always_inline)) double quality_run_##T(                                            \
        const T *restrict x, const T *restrict y, int64_t n, double beta, double scale, T *restrict loss,           \
        T *restrict grad, int64_t *restrict outside, const int want_loss, const int want_grad,                       \
        const int beta_kind) {                                                                                      \
        const A scale_a = (A)scale;                                                                                 \
        double sum = 0.0;                                                                                           \
        A bad = 0; /* a count in the lanes' own type: exact to 2^24, far above a chunk */                     \
        A e[QUALITY_BLOCK] __attribute__((aligned(64))), r[QUALITY_BLOCK] __attribute__((aligned(64)));             \
        A L[QUALITY_BLOCK] __attribute__((aligned(64)));                                                            \
        for (int64_t i0 = 0; i0 < n; i0 += QUALITY_BLOCK) {                                                         \
            const int64_t len = n - i0 < QUALITY_BLOCK ? n - i0 : QUALITY_BLOCK;                                    \
            const T *restrict xb = x + i0, *restrict yb = y + i0;                                                   \
            _Pragma("omp simd") for (int64_t i = 0; i < len; ++i) e[i] = sigmoid_exp_##SUFFIX(xb[i]);               \
            _Pragma("omp simd") for (int64_t i = 0; i < len; ++i) sigmoid_log_##SUFFIX(e[i], &r[i], &L[i]);         \
            _Pragma("omp simd reduction(+ : sum, bad)") for (int64_t i = 0; i < len; ++i) {                         \
                A g;                                                                                                \
                const A l = quality_element_##SUFFIX(xb[i], yb[i], e[i], r[i], L[i], beta, beta_kind, &g);          \
                if (want_loss) loss[i0 + i] = l;                                                                    \
                else sum += (double)l;                                                                              \
                if (want_grad) grad[i0 + i] = g * scale_a;                                                          \
                bad += yb[i] >= (A)0 && yb[i] <= (A)1 ? (A)0 : (A)1; /* outside [0, 1], NaN included */           \
            }                                                                                                       \
        }                                                                                                           \
        *outside = (int64_t)bad;                                                                                    \
        return sum;                                                                                                 \
    }

#define DEFINE_QUALITY_VARIANT(T, L, G, K)                                                                           \
    static __attribute__((noinline)) double quality_variant_##T##_##L##G##_k##K(                                    \
        const T *restrict x, const T *restrict y, int64_t n, double beta, double scale, T *restrict loss,           \
        T *restrict grad, int64_t *restrict outside) {                                                              \
        return quality_run_##T(x, y, n, K == 1 ? beta : (double)K, scale, loss, grad, outside, L, G, K);            \
    }

#define DEFINE_QUALITY_KERNELS(T, A, SUFFIX)                                                                         \
    DEFINE_QUALITY_RUN(T, A, SUFFIX)                                                                                \
    DEFINE_QUALITY_VARIANT(T, 1, 1, 0) DEFINE_QUALITY_VARIANT(T, 1, 1, 1) DEFINE_QUALITY_VARIANT(T, 1, 1, 2)        \
    DEFINE_QUALITY_VARIANT(T, 1, 0, 0) DEFINE_QUALITY_VARIANT(T, 1, 0, 1) DEFINE_QUALITY_VARIANT(T, 1, 0, 2)        \
    DEFINE_QUALITY_VARIANT(T, 0, 1, 0) DEFINE_QUALITY_VARIANT(T, 0, 1, 1) DEFINE_QUALITY_VARIANT(T, 0, 1, 2)        \
    DEFINE_QUALITY_VARIANT(T, 0, 0, 0) DEFINE_QUALITY_VARIANT(T, 0, 0, 1) DEFINE_QUALITY_VARIANT(T, 0, 0, 2)        \
    typedef double (*quality_variant_fn_##T)(const T *restrict, const T *restrict, int64_t, double, double,         \
                                              T *restrict, T *restrict, int64_t *restrict);                         \
    /* indexed [want_loss][want_grad][beta kind] */                                                                 \
    static const quality_variant_fn_##T quality_variants_##T[2][2][3] = {                                           \
        {{quality_variant_##T##_00_k0, quality_variant_##T##_00_k1, quality_variant_##T##_00_k2},                   \
         {quality_variant_##T##_01_k0, quality_variant_##T##_01_k1, quality_variant_##T##_01_k2}},                  \
        {{quality_variant_##T##_10_k0, quality_variant_##T##_10_k1, quality_variant_##T##_10_k2},                   \
         {quality_variant_##T##_11_k0, quality_variant_##T##_11_k1, quality_variant_##T##_11_k2}}};                 \
    static void quality_chunks_##T(const T *x, const T *y, int64_t n, double beta, double scale, T *loss,           \
                                   double *partial, T *grad, int64_t *outside, int64_t c0, int64_t c1) {            \
        const int kind = beta == 0.0 ? 0 : beta == 2.0 ? 2 : 1;                                                     \
        for (int64_t c = c0; c < c1; ++c) {                                                                         \
            const int64_t i0 = c * QUALITY_CHUNK, len = n - i0 < QUALITY_CHUNK ? n - i0 : QUALITY_CHUNK;           \
            const double sum = quality_variants_##T[loss != NULL][grad != NULL][kind](                              \
                x + i0, y + i0, len, beta, scale, loss ? loss + i0 : NULL, grad ? grad + i0 : NULL, outside + c);   \
            if (!loss) partial[c] = sum;                                                                            \
        }                                                                                                           \
    }

DEFINE_QUALITY_KERNELS(float, float, f32)
DEFINE_QUALITY_KERNELS(double, double, f64)

struct quality_call {
    const void *x, *y;
    int is_double;
    int64_t n;
    double beta, scale;
    void *loss;
    double *partial;
    void *grad;
    int64_t *outside;
};

static void quality_body(const void *context, int64_t c0, int64_t c1) {
    const struct quality_call *a = (const struct quality_call *)context;
    if (a->is_double)
        quality_chunks_double((const double *)a->x, (const double *)a->y, a->n, a->beta, a->scale, (double *)a->loss,
                              a->partial, (double *)a->grad, a->outside, c0, c1);
    else
        quality_chunks_float((const float *)a->x, (const float *)a->y, a->n, a->beta, a->scale, (float *)a->loss,
                             a->partial, (float *)a->grad, a->outside, c0, c1);
}

/* The exported entry point: n contiguous logits x and soft targets y (both float32, or both float64), beta >= 0;
 * writes the per-element loss to `loss` (the logits' type) or, with loss == NULL, the loss sum of each chunk to
 * `partial` (ceil(n / QUALITY_CHUNK) doubles); the gradient times `scale` to `grad` unless it is NULL; the number of
 * targets outside [0, 1] (NaN included) of each chunk to `outside` (as many int64). Chunks are split between
 * `threads` OpenMP threads. Returns the number of targets outside [0, 1]: the caller raises when it is not 0, so
 * the targets' range costs no pass of its own. */
int64_t quality_focal_forward(const void *x, const void *y, int is_double, int64_t n, double beta, double scale,
                          void *loss, double *partial, void *grad, int64_t *outside, int threads) {
    const struct quality_call call = {x, y, is_double, n, beta, scale, loss, partial, grad, outside};
    const int64_t chunks = (n + QUALITY_CHUNK - 1) / QUALITY_CHUNK;
    run_chunks(chunks, threads, quality_body, &call);
    int64_t total = 0;
    for (int64_t c = 0; c < chunks; ++c) total += outside[c];
    return total;
}
