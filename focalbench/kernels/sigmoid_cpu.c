/*
 * Fused sigmoid (one-vs-rest) focal loss, RetinaNet's (the sigmoid family's CPU kernel), forward and gradient in one
 * sweep over the elements.
 *
 * Built at first use by focalbench.kernels.build, like focal_cpu.c but into a library of its own (a compile error in
 * one family's kernel leaves the other's working); the exponential and logarithm it shares with focal_cpu.c are in
 * focal_math.h. Called through ctypes (focalbench.kernels.sigmoid_cpu); OpenMP splits the chunks between threads.
 */
#include "focal_math.h"
#include "sigmoid_math.h"

/*
 * Every element is its own binary problem, so there is no row
 * and no class dimension, only n contiguous elements (derivation in focalbench/losses/sigmoid/closed_form.py). Loss
 * and gradient in one sweep; per element (s = x for t = 0, -x for t = 1):
 *   1. e = exp(-|x|), r = 1 / (1 + e), L = log(1 + e): p = sigmoid(x) and q = 1 - p are r and e r (by the sign of x),
 *      softplus(x) = max(x, 0) + L = -log q and softplus(-x) = max(-x, 0) + L = -log p
 *   2. CE = (1 - t) softplus(x) + t softplus(-x) and m = 1 - p_t = p (1 - t) + q t: sums of non-negative terms, never
 *      1 - (a number close to 1), so a confident element keeps its digits at any logit
 *   3. focal = m^gamma (gamma = 2: m m; gamma = 0: 1; else exp(gamma log m), log m = -softplus(+-x) at t = 0 or 1)
 *      loss = alpha_t focal CE, alpha_t = alpha t + (1 - alpha)(1 - t) (alpha < 0: 1)
 *   4. dloss/dx = alpha_t [focal (p (1 - t) - q t) + gamma (1 - 2t) CE focal p q / m]: p q / m is in [0, 1] (p at
 *      t = 1, q at t = 0) and focal p q / m is m p q for gamma = 2; no power of m below gamma is formed, so nothing is
 *      0 * inf at a confident element for 0 < gamma < 1
 * float32 logits are computed in float32 (16 lanes of AVX-512, twice double's): every quantity above is a product, a
 * quotient or a sum of non-negative terms of numbers known to a few ulp, so loss and gradient stay within ~10 float32
 * ulp of the exact values; the one exception, the exponent gamma log m of a general gamma (its absolute error would be
 * multiplied by |gamma log m|, up to ~87), is formed in double from the exact |x| and the small L. float64 logits are
 * computed in double throughout.
 * Limits: x = +-inf gives p, q in {0, 1} exactly: loss 0 where the target agrees, +inf where it does not, and the
 * gradient's finite limit (CE p q -> 0); an element whose alpha_t is 0 gives loss 0 at any logit; NaN propagates.
 * With loss == NULL the loss is summed per chunk of SIGMOID_CHUNK elements into partial[], in order, so the total does
 * not depend on the number of threads; with grad == NULL no gradient is written. scale multiplies the gradient.
 */
#define SIGMOID_CHUNK 4096
/* Elements a loop variant takes at a time through its three passes (a divisor of SIGMOID_CHUNK); see sigmoid_run_T. */
#define SIGMOID_BLOCK 256

/* The loss of one element from its weighted value w ce: an element of weight alpha_t = 0 gives 0 at any logit (NaN
 * stays NaN); where CE = +inf (an infinite logit that disagrees with its target t, which then weighs t or 1 - t > 0)
 * the loss is +inf, however far the focal factor (1 - p_t)^gamma = t^gamma or (1 - t)^gamma underflowed: a soft
 * target of 1e-30 at gamma 2 gives a focal factor of 1e-60, 0 in float32, yet the limit is +inf, not 0. */
static inline __attribute__((always_inline)) float sigmoid_loss_f32(float alpha_t, float weighted, float ce, float x) {
    return alpha_t == 0.0f && x == x ? 0.0f : ce == INFINITY ? INFINITY : weighted;
}

/* Steps 1-4 for one float32 element; GAMMA_KIND and WEIGHTED (constants at every call: see sigmoid_variant_T) are
 * 0 for gamma = 0, 2 for gamma = 2, 1 otherwise, and whether alpha weights the classes. Returns the loss; *grad
 * receives dloss/dx. */
static inline __attribute__((always_inline)) float sigmoid_element_f32(float x, float t, float e, float r, float L,
                                                                       float alpha, double gamma, const int gamma_kind,
                                                                       const int weighted, float *grad) {
    const float er = e * r;
    const int positive = x >= 0.0f;
    const float p = positive ? r : er, q = positive ? er : r;
    const float relu_x = x > 0.0f ? x : 0.0f, relu_minus_x = x < 0.0f ? -x : 0.0f;
    const float softplus_x = relu_x + L, softplus_minus_x = relu_minus_x + L;
    /* (1 - t) * inf at t = 1 would be NaN: a term whose weight is 0 is 0 */
    const float ce = (t < 1.0f ? (1.0f - t) * softplus_x : 0.0f) + (t > 0.0f ? t * softplus_minus_x : 0.0f);
    const float m = p * (1.0f - t) + q * t;
    const float alpha_t = weighted ? alpha * t + (1.0f - alpha) * (1.0f - t) : 1.0f;
    const float pq = p * q;
    const float direct = p * (1.0f - t) - q * t; /* p - t */
    if (gamma_kind == 1) {
        /* gamma log m in double from exact pieces: -(|x| or 0) - L for hard targets, log m for soft ones */
        const double log_m = t == 1.0f   ? -((double)relu_x + (double)L)
                             : t == 0.0f ? -((double)relu_minus_x + (double)L)
                                         : log_unit((double)m);
        const double w = (double)alpha_t * exp_nonpos(gamma * log_m);
        const float ratio = m > 0.0f ? pq / m : 0.0f;
        const double ce_ratio = ratio > 0.0f ? (double)ce * (double)ratio : 0.0;
        *grad = (float)(w * ((double)direct + gamma * (double)(1.0f - 2.0f * t) * ce_ratio));
        return sigmoid_loss_f32(alpha_t, (float)(w * (double)ce), ce, x);
    }
    const float focal = gamma_kind == 2 ? m * m : 1.0f;
    const float w = alpha_t * focal;
    /* gamma = 2: CE focal p q / m = CE m p q (-> 0 where p q underflows, CE = +inf included); gamma = 0: no term */
    const float ce_m_pq = gamma_kind == 2 && pq > 0.0f ? ce * m * pq : 0.0f;
    *grad = alpha_t * (focal * direct + 2.0f * (1.0f - 2.0f * t) * ce_m_pq);
    return sigmoid_loss_f32(alpha_t, w * ce, ce, x);
}

/* The same steps for one float64 element, in double. */
static inline __attribute__((always_inline)) double sigmoid_element_f64(double x, double t, double e, double r,
                                                                        double L, double alpha, double gamma,
                                                                        const int gamma_kind, const int weighted,
                                                                        double *grad) {
    const double er = e * r;
    const int positive = x >= 0.0;
    const double p = positive ? r : er, q = positive ? er : r;
    const double softplus_x = (x > 0.0 ? x : 0.0) + L, softplus_minus_x = (x < 0.0 ? -x : 0.0) + L;
    const double ce = (t < 1.0 ? (1.0 - t) * softplus_x : 0.0) + (t > 0.0 ? t * softplus_minus_x : 0.0);
    const double m = p * (1.0 - t) + q * t;
    double focal;
    if (gamma_kind == 0) {
        focal = 1.0;
    } else if (gamma_kind == 2) {
        focal = m * m;
    } else {
        const double log_m = t == 1.0 ? -softplus_x : t == 0.0 ? -softplus_minus_x : log_unit(m);
        focal = exp_nonpos(gamma * log_m);
    }
    const double alpha_t = weighted ? alpha * t + (1.0 - alpha) * (1.0 - t) : 1.0;
    const double w = alpha_t * focal;
    const double ratio = m > 0.0 ? p * q / m : 0.0;
    const double ce_ratio = ratio > 0.0 ? ce * ratio : 0.0; /* -> 0 where p q underflows, CE = +inf included */
    *grad = w * ((p * (1.0 - t) - q * t) + gamma * (1.0 - 2.0 * t) * ce_ratio);
    /* as sigmoid_loss_f32: weight 0 gives 0 at any logit, CE = +inf gives +inf however small the focal factor */
    return alpha_t == 0.0 && x == x ? 0.0 : ce == INFINITY ? INFINITY : w * ce;
}

/* Two instances, for float32 and float64 logits (T, with ELEMENT and its arithmetic type A).
 *
 * sigmoid_run_T: elements [0, n) of one chunk, with the outputs (WANT_LOSS, WANT_GRAD), GAMMA_KIND and WEIGHTED
 * constants; returns the chunk's loss sum in double (0 when the losses are written). It takes SIGMOID_BLOCK elements
 * at a time through three passes, e = exp(-|x|), then r = 1 / (1 + e) and L = log1p(e), then steps 2-4, with e, r
 * and L in small arrays (3 KB, in L1): one pass doing all of it chains ~60 dependent operations per vector, more
 * than the out-of-order window can overlap between vectors, and ran at 1.32 ns an element (one thread, Zen 5,
 * 2.6M elements) where the three passes run at 0.71 ns, with the same operations on each element (the same results,
 * bit for bit; the chunk's sum adds its per-block partial sums). Its loops must vectorize: a
 * float32 element costs ~20 arithmetic operations, 16 lanes at a time with AVX-512, and a loop the compiler leaves
 * scalar is 10x slower. Whether it vectorizes depends on details that look harmless: with alpha's "no weighting"
 * decided inside the loop (alpha_t = alpha >= 0 ? ... : 1), GCC 12 folded the weight-0 test alpha_t == 0 into a select
 * between a vector mask and a scalar one (`alpha >= 0 ? mask : false`), which it cannot vectorize, and every gamma = 2
 * and general-gamma loop ran scalar (10x slower) while gamma = 0 kept its vector code. So every decision that does
 * not change per element is a constant of the variant, never a select in the loop.
 *
 * sigmoid_variant_T_<loss><grad>_k<gamma kind>_w<weighted>: one noinline function per combination of the constants,
 * so each has its own symbol: tests/test_native.py reads each one's machine code and fails when one lost its vector
 * instructions. sigmoid_chunk_T dispatches a chunk to its variant; sigmoid_chunks_T runs chunks [c0, c1). */
#define DEFINE_SIGMOID_RUN(T, A, SUFFIX)                                                                             \
    static inline __attribute__((always_inline)) double sigmoid_run_##T(                                            \
        const T *restrict x, const T *restrict t, int64_t n, double alpha, double gamma, double scale,              \
        T *restrict loss, T *restrict grad, const int want_loss, const int want_grad, const int gamma_kind,         \
        const int weighted) {                                                                                       \
        const A alpha_a = (A)alpha, scale_a = (A)scale;                                                             \
        double sum = 0.0;                                                                                           \
        A e[SIGMOID_BLOCK] __attribute__((aligned(64))), r[SIGMOID_BLOCK] __attribute__((aligned(64)));             \
        A L[SIGMOID_BLOCK] __attribute__((aligned(64)));                                                            \
        for (int64_t i0 = 0; i0 < n; i0 += SIGMOID_BLOCK) {                                                         \
            const int64_t len = n - i0 < SIGMOID_BLOCK ? n - i0 : SIGMOID_BLOCK;                                    \
            const T *restrict xb = x + i0, *restrict tb = t + i0;                                                   \
            _Pragma("omp simd") for (int64_t i = 0; i < len; ++i) e[i] = sigmoid_exp_##SUFFIX(xb[i]);               \
            _Pragma("omp simd") for (int64_t i = 0; i < len; ++i) sigmoid_log_##SUFFIX(e[i], &r[i], &L[i]);         \
            _Pragma("omp simd reduction(+ : sum)") for (int64_t i = 0; i < len; ++i) {                              \
                A g;                                                                                                \
                const A l = sigmoid_element_##SUFFIX(xb[i], tb[i], e[i], r[i], L[i], alpha_a, gamma, gamma_kind,    \
                                                     weighted, &g);                                                 \
                if (want_loss) loss[i0 + i] = l;                                                                    \
                else sum += (double)l;                                                                              \
                if (want_grad) grad[i0 + i] = g * scale_a;                                                          \
            }                                                                                                       \
        }                                                                                                           \
        return sum;                                                                                                 \
    }

/* One variant: WANT_LOSS, WANT_GRAD, GAMMA_KIND (0, 1 general, 2) and WEIGHTED fixed; the general gamma's value
 * still comes as an argument. */
#define DEFINE_SIGMOID_VARIANT(T, L, G, K, W)                                                                        \
    static __attribute__((noinline)) double sigmoid_variant_##T##_##L##G##_k##K##_w##W(                             \
        const T *restrict x, const T *restrict t, int64_t n, double alpha, double gamma, double scale,              \
        T *restrict loss, T *restrict grad) {                                                                       \
        return sigmoid_run_##T(x, t, n, alpha, K == 1 ? gamma : (double)K, scale, loss, grad, L, G, K, W);          \
    }

/* The 24 variants of one type, and the dispatch of a chunk to its variant. */
#define DEFINE_SIGMOID_KERNELS(T, A, SUFFIX)                                                                         \
    DEFINE_SIGMOID_RUN(T, A, SUFFIX)                                                                                \
    DEFINE_SIGMOID_VARIANT(T, 1, 1, 0, 0) DEFINE_SIGMOID_VARIANT(T, 1, 1, 1, 0) DEFINE_SIGMOID_VARIANT(T, 1, 1, 2, 0) \
    DEFINE_SIGMOID_VARIANT(T, 1, 0, 0, 0) DEFINE_SIGMOID_VARIANT(T, 1, 0, 1, 0) DEFINE_SIGMOID_VARIANT(T, 1, 0, 2, 0) \
    DEFINE_SIGMOID_VARIANT(T, 0, 1, 0, 0) DEFINE_SIGMOID_VARIANT(T, 0, 1, 1, 0) DEFINE_SIGMOID_VARIANT(T, 0, 1, 2, 0) \
    DEFINE_SIGMOID_VARIANT(T, 0, 0, 0, 0) DEFINE_SIGMOID_VARIANT(T, 0, 0, 1, 0) DEFINE_SIGMOID_VARIANT(T, 0, 0, 2, 0) \
    DEFINE_SIGMOID_VARIANT(T, 1, 1, 0, 1) DEFINE_SIGMOID_VARIANT(T, 1, 1, 1, 1) DEFINE_SIGMOID_VARIANT(T, 1, 1, 2, 1) \
    DEFINE_SIGMOID_VARIANT(T, 1, 0, 0, 1) DEFINE_SIGMOID_VARIANT(T, 1, 0, 1, 1) DEFINE_SIGMOID_VARIANT(T, 1, 0, 2, 1) \
    DEFINE_SIGMOID_VARIANT(T, 0, 1, 0, 1) DEFINE_SIGMOID_VARIANT(T, 0, 1, 1, 1) DEFINE_SIGMOID_VARIANT(T, 0, 1, 2, 1) \
    DEFINE_SIGMOID_VARIANT(T, 0, 0, 0, 1) DEFINE_SIGMOID_VARIANT(T, 0, 0, 1, 1) DEFINE_SIGMOID_VARIANT(T, 0, 0, 2, 1) \
                                                                                                                    \
    typedef double (*sigmoid_variant_fn_##T)(const T *restrict, const T *restrict, int64_t, double, double, double, \
                                              T *restrict, T *restrict);                                            \
    /* indexed [weighted][want_loss][want_grad][gamma kind] */                                                      \
    static const sigmoid_variant_fn_##T sigmoid_variants_##T[2][2][2][3] = {                                        \
        {{{sigmoid_variant_##T##_00_k0_w0, sigmoid_variant_##T##_00_k1_w0, sigmoid_variant_##T##_00_k2_w0},         \
          {sigmoid_variant_##T##_01_k0_w0, sigmoid_variant_##T##_01_k1_w0, sigmoid_variant_##T##_01_k2_w0}},        \
         {{sigmoid_variant_##T##_10_k0_w0, sigmoid_variant_##T##_10_k1_w0, sigmoid_variant_##T##_10_k2_w0},         \
          {sigmoid_variant_##T##_11_k0_w0, sigmoid_variant_##T##_11_k1_w0, sigmoid_variant_##T##_11_k2_w0}}},       \
        {{{sigmoid_variant_##T##_00_k0_w1, sigmoid_variant_##T##_00_k1_w1, sigmoid_variant_##T##_00_k2_w1},         \
          {sigmoid_variant_##T##_01_k0_w1, sigmoid_variant_##T##_01_k1_w1, sigmoid_variant_##T##_01_k2_w1}},        \
         {{sigmoid_variant_##T##_10_k0_w1, sigmoid_variant_##T##_10_k1_w1, sigmoid_variant_##T##_10_k2_w1},         \
          {sigmoid_variant_##T##_11_k0_w1, sigmoid_variant_##T##_11_k1_w1, sigmoid_variant_##T##_11_k2_w1}}}};      \
                                                                                                                    \
    static double sigmoid_chunk_##T(const T *x, const T *t, int64_t n, double alpha, double gamma, double scale,    \
                                    T *loss, T *grad) {                                                             \
        const int kind = gamma == 0.0 ? 0 : gamma == 2.0 ? 2 : 1;                                                   \
        return sigmoid_variants_##T[alpha >= 0.0][loss != NULL][grad != NULL][kind](x, t, n, alpha, gamma, scale,   \
                                                                                   loss, grad);                     \
    }                                                                                                               \
                                                                                                                    \
    static void sigmoid_chunks_##T(const T *x, const T *t, int64_t n, double alpha, double gamma, double scale,     \
                                   T *loss, double *partial, T *grad, int64_t c0, int64_t c1) {                     \
        for (int64_t c = c0; c < c1; ++c) {                                                                         \
            const int64_t i0 = c * SIGMOID_CHUNK, len = n - i0 < SIGMOID_CHUNK ? n - i0 : SIGMOID_CHUNK;           \
            const double sum = sigmoid_chunk_##T(x + i0, t + i0, len, alpha, gamma, scale, loss ? loss + i0 : NULL, \
                                                 grad ? grad + i0 : NULL);                                          \
            if (!loss) partial[c] = sum;                                                                            \
        }                                                                                                           \
    }

DEFINE_SIGMOID_KERNELS(float, float, f32)
DEFINE_SIGMOID_KERNELS(double, double, f64)

static void sigmoid_chunks(const void *x, const void *t, int is_double, int64_t n, double alpha, double gamma,
                           double scale, void *loss, double *partial, void *grad, int64_t c0, int64_t c1) {
    if (is_double)
        sigmoid_chunks_double((const double *)x, (const double *)t, n, alpha, gamma, scale, (double *)loss, partial,
                              (double *)grad, c0, c1);
    else
        sigmoid_chunks_float((const float *)x, (const float *)t, n, alpha, gamma, scale, (float *)loss, partial,
                             (float *)grad, c0, c1);
}

/* The exported entry point: n contiguous logits x and targets t (both float32, or both float64), alpha (< 0: no
 * weighting), gamma; writes the per-element loss to `loss` (the logits' type) or, with loss == NULL, the loss sum of
 * each chunk to `partial` (ceil(n / SIGMOID_CHUNK) doubles); the gradient times `scale` to `grad` unless it is NULL.
 * Chunks are split between `threads` OpenMP threads (none for one thread). Returns 0. */
struct sigmoid_call {
    const void *x, *t;
    int is_double;
    int64_t n;
    double alpha, gamma, scale;
    void *loss;
    double *partial;
    void *grad;
};

static void sigmoid_body(const void *context, int64_t c0, int64_t c1) {
    const struct sigmoid_call *a = (const struct sigmoid_call *)context;
    sigmoid_chunks(a->x, a->t, a->is_double, a->n, a->alpha, a->gamma, a->scale, a->loss, a->partial, a->grad, c0, c1);
}

int sigmoid_focal_forward(const void *x, const void *t, int is_double, int64_t n, double alpha, double gamma,
                          double scale, void *loss, double *partial, void *grad, int threads) {
    const struct sigmoid_call call = {x, t, is_double, n, alpha, gamma, scale, loss, partial, grad};
    run_chunks((n + SIGMOID_CHUNK - 1) / SIGMOID_CHUNK, threads, sigmoid_body, &call);
    return 0;
}
