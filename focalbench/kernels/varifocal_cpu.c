/*
 * Varifocal Loss (Zhang et al., VarifocalNet, 2021), the varifocal family's CPU kernel: forward and gradient in one
 * sweep over the elements, every element its own binary problem with an IoU-aware target q in [0, 1].
 *
 * Built at first use by focalbench.kernels.build into a library of its own (a compile error here leaves the other
 * families' kernels working); the per-element exponential, logarithm and chunking are shared with the sigmoid kernel
 * through sigmoid_math.h. Called through ctypes (focalbench.kernels.varifocal_cpu).
 *
 * Per element, from e = exp(-|x|), r = 1 / (1 + e), L = log1p(e) (sigmoid_math.h): p = sigmoid(x), q' = 1 - p,
 * softplus(x) = max(x, 0) + L = -log(1 - p), softplus(-x) = max(-x, 0) + L = -log p, and
 *   CE = (1 - q) softplus(x) + q softplus(-x): BCE with the target, a sum of non-negative terms;
 *   q > 0 (a positive): weight w = q (iou_weighted) or 1; loss = w CE; dloss/dx = w (p - q), p - q = p (1 - q) - q' q;
 *   q = 0 (a negative): weight w = alpha p^gamma; loss = w softplus(x);
 *     dloss/dx = w (p + gamma q' softplus(x)) (d p^gamma / dx = gamma p^gamma q'), or w p with detach_weight (the
 *     weight a constant, RT-DETR's choice: then the gradient is not the loss's derivative);
 *   p^gamma: gamma = 2: p p; gamma = 0: 1; otherwise exp(-gamma softplus(-x)) in double from the exact softplus.
 * Limits: q' softplus(x) -> 0 where q' underflows (x -> +inf: softplus(x) ~ x, q' ~ e^-x); a negative at x = +inf gives
 * loss +inf; x = -inf gives p = 0: loss 0 and gradient 0 at a negative; NaN propagates.
 * float32 is computed in float32 (16 lanes with AVX-512), the general gamma's p^gamma in double; float64 in double.
 * iou_weighted and detach_weight enter as 0/1 factors of the arithmetic (never a select on a scalar inside the loop,
 * which can keep GCC from vectorizing it: see sigmoid_cpu.c). Partial sums per chunk as in quality_cpu.c.
 */
#include "focal_math.h"
#include "sigmoid_math.h"

#define VARIFOCAL_CHUNK 4096
/* Elements a loop variant takes at a time through its three passes (a divisor of VARIFOCAL_CHUNK; e, r and L of a
 * block take 24 KB, in L1): measured on one Zen 5 core at 4800 x 80, 300 us a call at 256 (the sigmoid kernel's
 * block), 280 us at 2048, 345 us at 64. */
#define VARIFOCAL_BLOCK 2048

/* One float32 element from its e, r, L; GAMMA_KIND is 0, 2 or 1 (general), a constant at every call; iou (1 or 0:
 * weight positives by q) and live (1, or 0 with detach_weight) are factors. */
static inline __attribute__((always_inline)) float varifocal_element_f32(float x, float t, float e, float r, float L,
                                                                         float alpha, double gamma, float iou,
                                                                         float live, const int gamma_kind,
                                                                         float *grad) {
    const float er = e * r;
    const int positive = x >= 0.0f;
    const float p = positive ? r : er, q = positive ? er : r;
    const float softplus_x = (x > 0.0f ? x : 0.0f) + L, softplus_minus_x = (x < 0.0f ? -x : 0.0f) + L;
    const float ce = (t < 1.0f ? (1.0f - t) * softplus_x : 0.0f) + (t > 0.0f ? t * softplus_minus_x : 0.0f);
    float power;
    if (gamma_kind == 0) power = 1.0f;
    else if (gamma_kind == 2) power = p * p;
    else power = (float)exp_nonpos(-gamma * (double)softplus_minus_x);
    const float q_softplus = q > 0.0f ? q * softplus_x : 0.0f;
    const float w_neg = alpha * power;
    const float g_neg = w_neg * (p + live * (float)gamma * q_softplus);
    const float w_pos = iou * t + (1.0f - iou); /* t, or 1: exact either way (1 + iou (t - 1) loses a tiny t) */
    const float g_pos = w_pos * (p * (1.0f - t) - q * t);
    const int is_positive = t > 0.0f;
    *grad = is_positive ? g_pos : g_neg;
    const float w = is_positive ? w_pos : w_neg;
    /* weight 0 gives 0 at any logit (p = 0 at a negative: x = -inf); CE = +inf gives +inf */
    return w == 0.0f && x == x ? 0.0f : ce == INFINITY ? INFINITY : w * ce;
}

/* The same for one float64 element, in double. */
static inline __attribute__((always_inline)) double varifocal_element_f64(double x, double t, double e, double r,
                                                                          double L, double alpha, double gamma,
                                                                          double iou, double live,
                                                                          const int gamma_kind, double *grad) {
    const double er = e * r;
    const int positive = x >= 0.0;
    const double p = positive ? r : er, q = positive ? er : r;
    const double softplus_x = (x > 0.0 ? x : 0.0) + L, softplus_minus_x = (x < 0.0 ? -x : 0.0) + L;
    const double ce = (t < 1.0 ? (1.0 - t) * softplus_x : 0.0) + (t > 0.0 ? t * softplus_minus_x : 0.0);
    double power;
    if (gamma_kind == 0) power = 1.0;
    else if (gamma_kind == 2) power = p * p;
    else power = exp_nonpos(-gamma * softplus_minus_x);
    const double q_softplus = q > 0.0 ? q * softplus_x : 0.0;
    const double w_neg = alpha * power;
    const double g_neg = w_neg * (p + live * gamma * q_softplus);
    const double w_pos = iou * t + (1.0 - iou);
    const double g_pos = w_pos * (p * (1.0 - t) - q * t);
    const int is_positive = t > 0.0;
    *grad = is_positive ? g_pos : g_neg;
    const double w = is_positive ? w_pos : w_neg;
    return w == 0.0 && x == x ? 0.0 : ce == INFINITY ? INFINITY : w * ce;
}

#define DEFINE_VARIFOCAL_RUN(T, A, SUFFIX)                                                                           \
    static inline __attribute__((always_inline)) double varifocal_run_##T(                                          \
        const T *restrict x, const T *restrict t, int64_t n, double alpha, double gamma, double iou, double live,   \
        double scale, T *restrict loss, T *restrict grad, int64_t *restrict outside, const int want_loss,           \
        const int want_grad, const int gamma_kind) {                                                                \
        const A scale_a = (A)scale, alpha_a = (A)alpha, iou_a = (A)iou, live_a = (A)live;                           \
        double sum = 0.0;                                                                                           \
        A bad = 0; /* a count in the lanes' own type: exact to 2^24, far above a chunk */                     \
        A e[VARIFOCAL_BLOCK] __attribute__((aligned(64))), r[VARIFOCAL_BLOCK] __attribute__((aligned(64)));         \
        A L[VARIFOCAL_BLOCK] __attribute__((aligned(64)));                                                          \
        for (int64_t i0 = 0; i0 < n; i0 += VARIFOCAL_BLOCK) {                                                       \
            const int64_t len = n - i0 < VARIFOCAL_BLOCK ? n - i0 : VARIFOCAL_BLOCK;                                \
            const T *restrict xb = x + i0, *restrict tb = t + i0;                                                   \
            _Pragma("omp simd") for (int64_t i = 0; i < len; ++i) e[i] = sigmoid_exp_##SUFFIX(xb[i]);               \
            _Pragma("omp simd") for (int64_t i = 0; i < len; ++i) sigmoid_log_##SUFFIX(e[i], &r[i], &L[i]);         \
            _Pragma("omp simd reduction(+ : sum, bad)") for (int64_t i = 0; i < len; ++i) {                         \
                A g;                                                                                                \
                const A l = varifocal_element_##SUFFIX(xb[i], tb[i], e[i], r[i], L[i], alpha_a, gamma, iou_a,       \
                                                       live_a, gamma_kind, &g);                                     \
                if (want_loss) loss[i0 + i] = l;                                                                    \
                else sum += (double)l;                                                                              \
                if (want_grad) grad[i0 + i] = g * scale_a;                                                          \
                bad += tb[i] >= (A)0 && tb[i] <= (A)1 ? (A)0 : (A)1; /* outside [0, 1], NaN included */           \
            }                                                                                                       \
        }                                                                                                           \
        *outside = (int64_t)bad;                                                                                    \
        return sum;                                                                                                 \
    }

#define DEFINE_VARIFOCAL_VARIANT(T, L, G, K)                                                                         \
    static __attribute__((noinline)) double varifocal_variant_##T##_##L##G##_k##K(                                  \
        const T *restrict x, const T *restrict t, int64_t n, double alpha, double gamma, double iou, double live,   \
        double scale, T *restrict loss, T *restrict grad, int64_t *restrict outside) {                              \
        return varifocal_run_##T(x, t, n, alpha, K == 1 ? gamma : (double)K, iou, live, scale, loss, grad, outside, \
                                 L, G, K);                                                                          \
    }

#define DEFINE_VARIFOCAL_KERNELS(T, A, SUFFIX)                                                                       \
    DEFINE_VARIFOCAL_RUN(T, A, SUFFIX)                                                                              \
    DEFINE_VARIFOCAL_VARIANT(T, 1, 1, 0) DEFINE_VARIFOCAL_VARIANT(T, 1, 1, 1) DEFINE_VARIFOCAL_VARIANT(T, 1, 1, 2)  \
    DEFINE_VARIFOCAL_VARIANT(T, 1, 0, 0) DEFINE_VARIFOCAL_VARIANT(T, 1, 0, 1) DEFINE_VARIFOCAL_VARIANT(T, 1, 0, 2)  \
    DEFINE_VARIFOCAL_VARIANT(T, 0, 1, 0) DEFINE_VARIFOCAL_VARIANT(T, 0, 1, 1) DEFINE_VARIFOCAL_VARIANT(T, 0, 1, 2)  \
    DEFINE_VARIFOCAL_VARIANT(T, 0, 0, 0) DEFINE_VARIFOCAL_VARIANT(T, 0, 0, 1) DEFINE_VARIFOCAL_VARIANT(T, 0, 0, 2)  \
    typedef double (*varifocal_variant_fn_##T)(const T *restrict, const T *restrict, int64_t, double, double,       \
                                                double, double, double, T *restrict, T *restrict,                   \
                                                int64_t *restrict);                                                 \
    /* indexed [want_loss][want_grad][gamma kind] */                                                                \
    static const varifocal_variant_fn_##T varifocal_variants_##T[2][2][3] = {                                       \
        {{varifocal_variant_##T##_00_k0, varifocal_variant_##T##_00_k1, varifocal_variant_##T##_00_k2},             \
         {varifocal_variant_##T##_01_k0, varifocal_variant_##T##_01_k1, varifocal_variant_##T##_01_k2}},            \
        {{varifocal_variant_##T##_10_k0, varifocal_variant_##T##_10_k1, varifocal_variant_##T##_10_k2},             \
         {varifocal_variant_##T##_11_k0, varifocal_variant_##T##_11_k1, varifocal_variant_##T##_11_k2}}};           \
    static void varifocal_chunks_##T(const T *x, const T *t, int64_t n, double alpha, double gamma, double iou,     \
                                     double live, double scale, T *loss, double *partial, T *grad,                  \
                                     int64_t *outside, int64_t c0, int64_t c1) {                                    \
        const int kind = gamma == 0.0 ? 0 : gamma == 2.0 ? 2 : 1;                                                   \
        for (int64_t c = c0; c < c1; ++c) {                                                                         \
            const int64_t i0 = c * VARIFOCAL_CHUNK, len = n - i0 < VARIFOCAL_CHUNK ? n - i0 : VARIFOCAL_CHUNK;      \
            const double sum = varifocal_variants_##T[loss != NULL][grad != NULL][kind](                            \
                x + i0, t + i0, len, alpha, gamma, iou, live, scale, loss ? loss + i0 : NULL, grad ? grad + i0 : NULL, \
                outside + c);                                                                                       \
            if (!loss) partial[c] = sum;                                                                            \
        }                                                                                                           \
    }

DEFINE_VARIFOCAL_KERNELS(float, float, f32)
DEFINE_VARIFOCAL_KERNELS(double, double, f64)

struct varifocal_call {
    const void *x, *t;
    int is_double;
    int64_t n;
    double alpha, gamma, iou, live, scale;
    void *loss;
    double *partial;
    void *grad;
    int64_t *outside;
};

static void varifocal_body(const void *context, int64_t c0, int64_t c1) {
    const struct varifocal_call *a = (const struct varifocal_call *)context;
    if (a->is_double)
        varifocal_chunks_double((const double *)a->x, (const double *)a->t, a->n, a->alpha, a->gamma, a->iou, a->live,
                                a->scale, (double *)a->loss, a->partial, (double *)a->grad, a->outside, c0, c1);
    else
        varifocal_chunks_float((const float *)a->x, (const float *)a->t, a->n, a->alpha, a->gamma, a->iou, a->live,
                               a->scale, (float *)a->loss, a->partial, (float *)a->grad, a->outside, c0, c1);
}

/* The exported entry point: n contiguous logits x and targets t (both float32, or both float64), alpha >= 0,
 * gamma >= 0, iou_weighted and detach_weight (0 or 1); writes the per-element loss to `loss` (the logits' type) or,
 * with loss == NULL, the loss sum of each chunk to `partial` (ceil(n / VARIFOCAL_CHUNK) doubles); the gradient times
 * `scale` to `grad` unless it is NULL; the number of targets outside [0, 1] (NaN included) of each chunk to
 * `outside` (as many int64): the caller raises when one is not 0, so the targets' range costs no pass of its own.
 * Chunks are split between `threads` OpenMP threads. Returns the number of targets outside [0, 1]. */
int64_t varifocal_forward(const void *x, const void *t, int is_double, int64_t n, double alpha, double gamma,
                      int iou_weighted, int detach_weight, double scale, void *loss, double *partial, void *grad,
                      int64_t *outside, int threads) {
    const struct varifocal_call call = {x,     t,     is_double, n,    alpha,   gamma, iou_weighted ? 1.0 : 0.0,
                                        detach_weight ? 0.0 : 1.0, scale, loss, partial, grad, outside};
    const int64_t chunks = (n + VARIFOCAL_CHUNK - 1) / VARIFOCAL_CHUNK;
    run_chunks(chunks, threads, varifocal_body, &call);
    int64_t total = 0;
    for (int64_t c = 0; c < chunks; ++c) total += outside[c];
    return total;
}
