/*
 * Fused softmax focal loss, forward and gradient in one sweep over the logits (CPU).
 *
 * Built at first use by focalbench.native with the system C compiler, for the CPU target it selects (-march=native
 * by default; x86-64-v2/v3/v4 on request), -O3 and no fast-math: the arithmetic below relies on IEEE rounding, inf
 * and NaN. Called through ctypes; OpenMP splits the blocks between threads.
 *
 * Layout: logits viewed as (B, C, S) with element strides (sB, sC, sS); a "row" is one (b, s) pair. LANES rows are
 * copied into a class-major buffer and processed together, one per SIMD lane, so a short class dimension
 * (C = 20) vectorizes as well as a long one. A 2-D (N, C) input is passed as B = 1, S = N, sS = its row stride; a
 * dense (N, C, d1..dk) input as S = d1*...*dk. The gradient has its own strides (gB, gC, gS). target holds -1 at
 * ignored rows (they give 0 and a zero gradient whatever their logits hold). alpha_t (the per-row weight) may be
 * NULL: every weight is 1.
 *
 * Per row (derivation in focalbench/losses/softmax/closed_form.py); float32 logits keep float32 exponentials,
 * float64 ones double:
 *   1. m = max_j z_j
 *   2. e_j = exp(z_j - m), the rounding error of z_j - m folded back in (exp_diff_f32_normal); S = sum_{j != t} e_j
 *      in double (a row whose S is below 2^-60 is recomputed with exp_diff_f32, which keeps the e_j that fall below
 *      float32's normal range: at a gap of 88 to 120 they are all of 1 - p_t; long rows at once, block rows from the
 *      input after their block, refine_row_f32)
 *   3. in double: d = log((1 - p_t) / p_t) = log S + (m - z_t); -log p_t = softplus(d); log(1 - p_t) = -softplus(-d)
 *      loss = a (1 - p_t)^gamma softplus(d);  G = a (1 - p_t)^gamma [(1 - p_t) + gamma p_t softplus(d)] * scale
 *   4. grad_j = G e_j / S off the target (G q_j, q the softmax over the other classes), -G at the target
 */
#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LANES 16

/* fma where the target has it in hardware; elsewhere (x86-64-v2) a multiply and an add: libm's software fma would
 * cost ~100x, and every fma below is either a polynomial step or a Cody-Waite reduction whose constants are split so
 * that k * hi is exact without a fused multiply-add. */
#if defined(__FMA__) || defined(__aarch64__)
#define FMA(a, b, c) fma(a, b, c)
#define FMAF(a, b, c) fmaf(a, b, c)
#else
#define FMA(a, b, c) ((a) * (b) + (c))
#define FMAF(a, b, c) ((a) * (b) + (c))
#endif

static const double LN2_HI = 6.93147180369123816490e-01;
static const double LN2_LO = 1.90821492927058770002e-10;

/* exp(x) for x <= 0, to about 1 ulp of double; exactly 0 below -708 (far below anything float32 can hold). */
static inline __attribute__((always_inline)) double exp_nonpos(double x) {
    const double shifter = 6755399441055744.0; /* 1.5 * 2^52: adding it rounds to an integer held in the low bits */
    double xc = x < -708.0 ? -708.0 : x;
    double kk = FMA(xc, 1.4426950408889634, shifter);
    double k = kk - shifter;
    double r = FMA(k, -LN2_HI, xc);
    r = FMA(k, -LN2_LO, r); /* |r| <= ln2 / 2 */
    /* Taylor series to r^13: truncation below 2e-16 on |r| <= 0.347 */
    double p = 1.0 / 6227020800.0;
    p = FMA(p, r, 1.0 / 479001600.0);
    p = FMA(p, r, 1.0 / 39916800.0);
    p = FMA(p, r, 1.0 / 3628800.0);
    p = FMA(p, r, 1.0 / 362880.0);
    p = FMA(p, r, 1.0 / 40320.0);
    p = FMA(p, r, 1.0 / 5040.0);
    p = FMA(p, r, 1.0 / 720.0);
    p = FMA(p, r, 1.0 / 120.0);
    p = FMA(p, r, 1.0 / 24.0);
    p = FMA(p, r, 1.0 / 6.0);
    p = FMA(p, r, 0.5);
    p = FMA(p, r, 1.0);
    p = FMA(p, r, 1.0);
    int64_t bits;
    memcpy(&bits, &kk, 8);
    bits = (bits - (int64_t)0x4338000000000000LL + 1023) << 52; /* 2^k, k in [-1022, 0] */
    double scale;
    memcpy(&scale, &bits, 8);
    return x < -708.0 ? 0.0 : p * scale;
}

/* The float32 exponential's core, for xc in [-120, 0]: Cody-Waite reduction xc = k ln 2 + r with Cephes' two-part
 * ln 2, e^r by its Taylor series to r^7 (truncation 5e-9 on |r| <= 0.35). Returns e^r; *k receives k. */
static inline __attribute__((always_inline)) float expf_reduced(float xc, int32_t *k) {
    const float shifter = 12582912.0f; /* 1.5 * 2^23 */
    float kk = FMAF(xc, 1.44269504088896341f, shifter);
    float kf = kk - shifter;
    float r = FMAF(kf, -0.693359375f, xc);
    r = FMAF(kf, 2.12194440e-4f, r);
    float p = 1.0f / 5040.0f;
    p = FMAF(p, r, 1.0f / 720.0f);
    p = FMAF(p, r, 1.0f / 120.0f);
    p = FMAF(p, r, 1.0f / 24.0f);
    p = FMAF(p, r, 1.0f / 6.0f);
    p = FMAF(p, r, 0.5f);
    p = FMAF(p, r, 1.0f);
    p = FMAF(p, r, 1.0f);
    int32_t bits;
    memcpy(&bits, &kk, 4);
    *k = bits - 0x4B400000; /* the integer the shifter holds in its low bits */
    return p;
}

/* exp(x) for x <= 0 in float32, within about 2 ulp, as a normal float32 and a power of two *scale2 to apply after
 * (in double, by exp_diff_f32), so that a value below float32's normal range (x < -87.3) keeps its relative accuracy:
 * 2^k is split into 2^k1 2^k2, two normal powers of two. 0 below -120, where even a million terms sum to less than
 * half of float32's smallest subnormal. */
static inline __attribute__((always_inline)) float expf_nonpos_parts(float x, float *scale2) {
    float xc = x < -120.0f ? -120.0f : x;
    int32_t k;
    const float p = expf_reduced(xc, &k);
    const int32_t k1 = k / 2, k2 = k - k1; /* k in [-174, 0]: each half in [-87, 0] */
    int32_t bits1 = (k1 + 127) << 23, bits2 = (k2 + 127) << 23;
    float scale1;
    memcpy(&scale1, &bits1, 4);
    memcpy(scale2, &bits2, 4);
    return x < -120.0f ? 0.0f : p * scale1; /* a normal float32 (or 0): exp(x) = it times *scale2 */
}

/* exp(z - m) for float32 z <= m, with the rounding error of z - m folded back in: hi + lo = z - m exactly (Knuth's
 * TwoSum), exp(hi + lo) = exp(hi) (1 + lo) to within lo^2 (|lo| <= 2^-24 |hi|). Between -120 and -87.3 the result
 * is a subnormal float32 (kept: at a confident row it is all of 1 - p_t). A difference below -120 (a masked -inf
 * class, or a gap beyond float32's range) is exactly 0: its TwoSum would form inf - inf. NaN stays NaN. */
/* exp(x) for x <= 0 in float32, within about 2 ulp; 0 below -87 (where float32 leaves its normal range): the fast
 * pass of long rows, which recompute a row whose other classes all fall below (exp_diff_f32). */
static inline __attribute__((always_inline)) float expf_nonpos(float x) {
    float xc = x < -87.0f ? -87.0f : x;
    int32_t k;
    const float p = expf_reduced(xc, &k);
    int32_t bits = (k + 127) << 23; /* 2^k, k in [-126, 0] */
    float scale;
    memcpy(&scale, &bits, 4);
    return x < -87.0f ? 0.0f : p * scale;
}

/* exp_diff_f32 within float32's normal range: 0 below a difference of -87. */
static inline __attribute__((always_inline)) float exp_diff_f32_normal(float z, float m) {
    float hi = z - m;
    float back = hi - z;
    float lo = (z - (hi - back)) + (-m - back);
    float e = expf_nonpos(hi) * (1.0f + lo);
    return hi < -87.0f ? 0.0f : e;
}

static inline __attribute__((always_inline)) double exp_diff_f32(float z, float m) {
    float hi = z - m;
    float back = hi - z;
    float lo = (z - (hi - back)) + (-m - back);
    float scale2;
    float e = expf_nonpos_parts(hi, &scale2) * (1.0f + lo);
    /* the last power of two applied in double: a subnormal exponential keeps float32's relative accuracy in the sum
     * (a row of 1000 classes at a gap of 92 sums 999 of them into a normal 1 - p_t) */
    return hi < -120.0f ? 0.0 : (double)e * (double)scale2;
}

/* log(x) for normal x > 0: x = 2^k m, m in [sqrt(1/2), sqrt(2)), log m = 2 atanh(f), f = (m - 1) / (m + 1); NaN for
 * NaN. Written by hand, with libm's exp beside it, because libm's scalar calls would keep step 3 from vectorizing:
 * here every step is a lane-wise operation that AVX2 has (no int64 <-> double conversion, which x86 vectorizes only
 * with AVX-512DQ: the exponent becomes a double by the 2^52 bit trick). */
static inline __attribute__((always_inline)) double log_pos(double x) {
    uint64_t bits;
    memcpy(&bits, &x, 8);
    uint64_t ebits = (bits >> 52) | 0x4330000000000000ULL; /* the double 2^52 + biased exponent */
    double biased;
    memcpy(&biased, &ebits, 8);
    uint64_t mbits = (bits & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL;
    double m;
    memcpy(&m, &mbits, 8);
    const int big = m > 1.4142135623730951;
    m = big ? m * 0.5 : m;
    double k = (biased - 4503599627371519.0) + (big ? 1.0 : 0.0); /* 4503599627371519 = 2^52 + 1023 */
    double f = (m - 1.0) / (m + 1.0);
    double f2 = f * f; /* <= 0.0295: the series below is exact to 1e-17 */
    double p = 1.0 / 21.0;
    p = FMA(p, f2, 1.0 / 19.0);
    p = FMA(p, f2, 1.0 / 17.0);
    p = FMA(p, f2, 1.0 / 15.0);
    p = FMA(p, f2, 1.0 / 13.0);
    p = FMA(p, f2, 1.0 / 11.0);
    p = FMA(p, f2, 1.0 / 9.0);
    p = FMA(p, f2, 1.0 / 7.0);
    p = FMA(p, f2, 1.0 / 5.0);
    p = FMA(p, f2, 1.0 / 3.0);
    double log_m = 2.0 * f + 2.0 * f * f2 * p;
    double result = FMA(k, LN2_HI, FMA(k, LN2_LO, log_m));
    return x == x ? result : x;
}

/* log(1 + x) for 0 <= x <= 1, accurate for tiny x: log(u) * x / (u - 1) with u = fl(1 + x) (Goldberg). */
static inline __attribute__((always_inline)) double log1p_unit(double x) {
    double u = 1.0 + x;
    double um1 = u - 1.0;
    return um1 == 0.0 ? x : log_pos(u) * (x / um1);
}

/* Step 3 for one row: from the non-target sum s (of exp(z_j - mx)), the maximum mx and the target logit z_t, the loss
 * and G (reduction scale folded in). Everything comes from d = log((1 - p_t) / p_t) through u = e^-|d| (one exp, two
 * logs, one division per row):
 *   -log p_t = max(d, 0) + log1p(u),  log(1 - p_t) = -(max(-d, 0) + log1p(u)),
 *   p_t = u / (1 + u) and 1 - p_t = 1 / (1 + u) for d > 0, the other way round for d <= 0.
 * Limits, as cross-entropy takes them: s == 0 (every other class underflowed or is masked with -inf): p_t = 1, no
 * loss, no gradient. z_t = -inf (an impossible target): d = +inf, loss +inf, G = alpha (p_t log p_t -> 0), a finite
 * gradient. A NaN anywhere in the row reaches d and makes the loss NaN. An ignored row (counted == 0) gives 0 and 0
 * whatever its logits hold. Returns the loss; *big_g receives G and *coef G / s (the factor of the exponentials). */
static inline __attribute__((always_inline)) double row_terms(double s, double mx, double z_t, double alpha,
                                                              double gamma, double scale, int counted,
                                                              double *big_g, double *coef) {
    const int certain = s == 0.0;
    const double safe_s = certain ? 1.0 : s;
    const double d = log_pos(safe_s) + (mx - z_t);
    const double ad = d < 0.0 ? -d : d;
    const double u = exp_nonpos(-ad);
    const double log1p_u = log1p_unit(u);
    const double neg_log_p_t = (d > 0.0 ? d : 0.0) + log1p_u;
    const double r = 1.0 / (1.0 + u);
    const double p_t = d > 0.0 ? u * r : r;
    const double one_minus_p_t = d > 0.0 ? r : u * r;
    double focal;
    if (gamma == 2.0) focal = one_minus_p_t * one_minus_p_t; /* the default gamma, without an exp */
    else if (gamma == 0.0) focal = 1.0;
    else focal = exp_nonpos(-gamma * ((d < 0.0 ? -d : 0.0) + log1p_u));
    const double w = alpha * focal;
    const double p_t_log = p_t > 0.0 ? p_t * neg_log_p_t : 0.0; /* -> 0 as p_t -> 0 */
    const int live = counted && !certain;
    const double g = live ? w * (one_minus_p_t + gamma * p_t_log) * scale : 0.0;
    *big_g = g;
    *coef = g / safe_s;
    /* an element of weight 0 weighs nothing, even at a target of -inf (0 * inf); a NaN still propagates */
    return live && !(w == 0.0 && neg_log_p_t == INFINITY) ? w * neg_log_p_t : 0.0;
}

/* exp(z - m) for float64 z <= m (the difference rounds by at most |z - m| 2^-53, far inside the float64 bound). */
static inline __attribute__((always_inline)) double exp_diff_f64(double z, double m) { return exp_nonpos(z - m); }

/* One float32 row recomputed keeping the exponentials below float32's normal range (exp_diff_f32): the block
 * kernels' rare path for a confident row, whose other classes' sum S fell below 2^-60 in the fast pass. Reads the row
 * from the input (C logits at stride sC), writes its gradient at stride gstride and returns its loss. */
static double refine_row_f32(const float *zr, int64_t sC, int64_t C, int64_t t, double alpha, double gamma,
                             double scale, float *gr, int64_t gstride) {
    float mx = -INFINITY;
    for (int64_t j = 0; j < C; ++j) mx = zr[j * sC] > mx ? zr[j * sC] : mx;
    double sum = 0.0;
    for (int64_t j = 0; j < C; ++j) sum += j == t ? 0.0 : exp_diff_f32(zr[j * sC], mx);
    double g, coef;
    const double loss = row_terms(sum, (double)mx, (double)zr[t * sC], alpha, gamma, scale, 1, &g, &coef);
    for (int64_t j = 0; j < C; ++j)
        gr[j * gstride] = j == t ? (float)(-g) : (float)(exp_diff_f32(zr[j * sC], mx) * coef);
    return loss;
}

/* One block in flight: its position and a class-major buffer of its logits, then of its gradient. */
typedef struct {
    int64_t b, s0, n;
    int32_t tt[LANES]; /* target class, -1 at an ignored row */
    double alpha[LANES], loss[LANES];
    void *buf;
} block_t;

/* Two instances, for float32 and float64 logits (T), each with its exponential (EXP_DIFF, see above):
 *
 * focal_block_T: steps 1-4 on one block; buf[j * LANES + l] holds logit j of lane l on entry, its gradient on exit.
 * Sums are accumulated in double whatever T is.
 *
 * focal_blocks_T: blocks [block_begin, block_end) of a (B, C, S) input; target and alpha_t are (B, S) contiguous,
 * loss too. Three buffers rotate so that a block is copied in, computed and copied out at three different steps. */
#define DEFINE_BLOCK_KERNELS(T, EXP_DIFF)                                                                            \
    static inline __attribute__((always_inline)) int focal_block_##T(T *restrict buf, int64_t C,                    \
                                                                      const int32_t *restrict tt,                  \
                                                                      const double *restrict alpha, double gamma,  \
                                                                      double scale, double *restrict loss) {       \
        T mx[LANES], zt[LANES], coef_t[LANES];                                                                      \
        double sum[LANES], coef[LANES], big_g[LANES];                                                               \
        for (int l = 0; l < LANES; ++l) {                                                                           \
            mx[l] = -INFINITY;                                                                                      \
            sum[l] = 0.0;                                                                                           \
            zt[l] = 0;                                                                                              \
        }                                                                                                           \
        /* 1. row maxima */                                                                                         \
        for (int64_t j = 0; j < C; ++j) {                                                                           \
            const T *row = buf + j * LANES;                                                                         \
            _Pragma("omp simd") for (int l = 0; l < LANES; ++l) mx[l] = row[l] > mx[l] ? row[l] : mx[l];          \
        }                                                                                                           \
        /* 2. exponentials of the corrected differences, their sum over the other classes, the target logit */     \
        for (int64_t j = 0; j < C; ++j) {                                                                           \
            T *row = buf + j * LANES;                                                                               \
            _Pragma("omp simd") for (int l = 0; l < LANES; ++l) {                                                   \
                T v = row[l];                                                                                       \
                T e = EXP_DIFF(v, mx[l]);                                                                           \
                int is_t = j == tt[l];                                                                              \
                sum[l] += is_t ? 0.0 : (double)e;                                                                   \
                zt[l] = is_t ? v : zt[l];                                                                           \
                row[l] = e;                                                                                         \
            }                                                                                                       \
        }                                                                                                           \
        /* 3. per-row scalars */                                                                                    \
        _Pragma("omp simd") for (int l = 0; l < LANES; ++l) {                                                       \
            loss[l] = row_terms(sum[l], (double)mx[l], (double)zt[l], alpha[l], gamma, scale, tt[l] >= 0, &big_g[l], \
                                &coef[l]);                                                                          \
            coef_t[l] = (T)coef[l];                                                                                 \
        }                                                                                                           \
        /* 4. gradient over the stored exponentials: G q_j off the target, -G at it */                              \
        for (int64_t j = 0; j < C; ++j) {                                                                           \
            T *row = buf + j * LANES;                                                                               \
            _Pragma("omp simd") for (int l = 0; l < LANES; ++l) row[l] =                                            \
                tt[l] < 0 ? (T)0 : j == tt[l] ? (T)(-big_g[l]) : row[l] * coef_t[l];                             \
        }                                                                                                           \
        /* the lanes of float32 confident rows whose exponentials may have left the normal range (refined after) */  \
        int refine = 0;                                                                                             \
        for (int l = 0; l < LANES; ++l) refine |= (sizeof(T) == 4 && tt[l] >= 0 && sum[l] < 0x1p-60) << l;        \
        return refine;                                                                                              \
    }                                                                                                               \
                                                                                                                    \
    static inline __attribute__((always_inline)) void focal_blocks_##T(                                             \
        const T *z, int64_t S, int64_t C, int64_t sB, int64_t sC, int64_t sS, const int64_t *target,               \
        const double *alpha_t, double gamma, double scale, double *loss, T *grad, int64_t gB, int64_t gC,          \
        int64_t gS, int need_grad, int64_t block_begin, int64_t block_end, T *memory) {                            \
        block_t slots[3];                                                                                           \
        for (int i = 0; i < 3; ++i) slots[i].buf = memory + (size_t)i * C * LANES;                                 \
        const int64_t blocks_per_b = (S + LANES - 1) / LANES;                                                       \
        for (int64_t step = block_begin; step < block_end + 2; ++step) {                                           \
            if (step < block_end) { /* copy block `step` in */                                                      \
                block_t *in = &slots[step % 3];                                                                     \
                in->b = step / blocks_per_b;                                                                        \
                in->s0 = (step % blocks_per_b) * LANES;                                                             \
                in->n = S - in->s0 < LANES ? S - in->s0 : LANES;                                                    \
                const int64_t n = in->n, row0 = in->b * S + in->s0;                                                 \
                const T *zb = z + in->b * sB + in->s0 * sS;                                                         \
                T *buf = (T *)in->buf;                                                                              \
                for (int64_t l = 0; l < LANES; ++l) {                                                               \
                    in->tt[l] = l < n ? (int32_t)target[row0 + l] : 0;                                              \
                    in->alpha[l] = l < n ? (alpha_t ? alpha_t[row0 + l] : 1.0) : 0.0;                               \
                }                                                                                                   \
                if (n < LANES) memset(buf, 0, sizeof(T) * (size_t)C * LANES);                                       \
                if (sS == 1) { /* positions contiguous: copy along them */                                          \
                    for (int64_t j = 0; j < C; ++j)                                                                 \
                        for (int64_t l = 0; l < n; ++l) buf[j * LANES + l] = zb[l + j * sC];                        \
                } else {                                                                                            \
                    for (int64_t l = 0; l < n; ++l)                                                                 \
                        for (int64_t j = 0; j < C; ++j) buf[j * LANES + l] = zb[l * sS + j * sC];                   \
                }                                                                                                   \
            }                                                                                                       \
            if (step - 1 >= block_begin && step - 1 < block_end) { /* compute block step - 1 */                    \
                block_t *mid = &slots[(step - 1) % 3];                                                              \
                const int refine = focal_block_##T((T *)mid->buf, C, mid->tt, mid->alpha, gamma, scale, mid->loss); \
                for (int64_t l = 0; refine && l < mid->n; ++l) {                                                    \
                    if (!(refine >> l & 1)) continue;                                                               \
                    const float *zr = (const float *)(z + mid->b * sB + (mid->s0 + l) * sS);                        \
                    mid->loss[l] = refine_row_f32(zr, sC, C, mid->tt[l], mid->alpha[l], gamma, scale,               \
                                                  (float *)mid->buf + l, LANES);                                    \
                }                                                                                                   \
            }                                                                                                       \
            if (step - 2 >= block_begin) { /* copy block step - 2 out */                                            \
                block_t *out = &slots[(step - 2) % 3];                                                              \
                const int64_t n = out->n, row0 = out->b * S + out->s0;                                              \
                for (int64_t l = 0; l < n; ++l) loss[row0 + l] = out->loss[l];                                      \
                if (!need_grad) continue;                                                                           \
                const T *buf = (const T *)out->buf;                                                                 \
                T *gb = grad + out->b * gB + out->s0 * gS;                                                          \
                if (gS == 1) {                                                                                      \
                    for (int64_t j = 0; j < C; ++j)                                                                 \
                        for (int64_t l = 0; l < n; ++l) gb[l + j * gC] = buf[j * LANES + l];                        \
                } else {                                                                                            \
                    for (int64_t l = 0; l < n; ++l)                                                                 \
                        for (int64_t j = 0; j < C; ++j) gb[l * gS + j * gC] = buf[j * LANES + l];                  \
                }                                                                                                   \
            }                                                                                                       \
        }                                                                                                           \
    }

DEFINE_BLOCK_KERNELS(float, exp_diff_f32_normal)
DEFINE_BLOCK_KERNELS(double, exp_diff_f64)

/* Long rows with contiguous classes (C >= ROW_MIN_CLASSES, measured: blocks win at C = 80, rows at C = 1000):
 * one row at a time, vectorized along the classes. */
#define ROW_MIN_CLASSES 128
static void focal_rows(const float *z, int64_t S, int64_t C, int64_t sB, int64_t sS, const int64_t *target,
                       const double *alpha_t, double gamma, double scale, double *loss, float *grad, int64_t gB,
                       int64_t gS, int need_grad, int64_t row_begin, int64_t row_end, float *exps) {
    for (int64_t row = row_begin; row < row_end; ++row) {
        const int64_t b = row / S, s = row % S, t = target[row];
        const float *zr = z + b * sB + s * sS;
        float *gr = grad + b * gB + s * gS;
        if (t < 0) { /* ignored: nothing read, no loss, no gradient */
            loss[row] = 0.0;
            if (need_grad) memset(gr, 0, sizeof(float) * (size_t)C);
            continue;
        }
        float mx = -INFINITY;
        double sum = 0.0;
        /* 1. row maximum */
#pragma omp simd reduction(max : mx)
        for (int64_t j = 0; j < C; ++j) mx = zr[j] > mx ? zr[j] : mx;
        /* 2. exponentials of the differences with their rounding error folded back in (float32: twice the lanes
         *    of double), summed in double over the other classes */
#pragma omp simd reduction(+ : sum)
        for (int64_t j = 0; j < C; ++j) {
            float e = exp_diff_f32_normal(zr[j], mx);
            exps[j] = e;
            sum += j == t ? 0.0 : (double)e;
        }
        if (sum < 0x1p-60) { /* a confident row: its other classes may sit below float32's normal range; again,
                              * keeping them (rare: the logits are still at hand, and the fast pass stays fast) */
            sum = 0.0;
            for (int64_t j = 0; j < C; ++j) {
                double e = exp_diff_f32(zr[j], mx);
                exps[j] = (float)e;
                sum += j == t ? 0.0 : e;
            }
        }
        /* 3. per-row scalars */
        double g, coef;
        loss[row] =
            row_terms(sum, (double)mx, (double)zr[t], alpha_t ? alpha_t[row] : 1.0, gamma, scale, 1, &g, &coef);
        if (!need_grad) continue;
        /* 4. gradient: G q_j off the target, -G at it */
        const float coef_f = (float)coef;
#pragma omp simd
        for (int64_t j = 0; j < C; ++j) gr[j] = exps[j] * coef_f;
        gr[t] = (float)(-g);
    }
}

/* The exported entry point: the common layouts get their unit strides (and gamma = 2) as compile-time constants,
 * which lets the compiler vectorize the copies and fold the per-row formulas. Returns 1 if out of memory. */
#define FOCAL_CALL(SC, SS, GC, GS, GAMMA)                                                                        \
    focal_blocks_float((const float *)z, S, C, sB, SC, SS, target, alpha_t, GAMMA, scale, loss, (float *)grad, gB, \
                       GC, GS, need_grad, block_begin, block_end, (float *)memory)

static int64_t focal_blocks_count(int64_t B, int64_t S, int64_t C, int64_t sC, int64_t gC, int is_double) {
    if (!is_double && sC == 1 && gC == 1 && C >= ROW_MIN_CLASSES) return B * S;
    return B * ((S + LANES - 1) / LANES);
}

/* One thread's share of blocks [block_begin, block_end). Returns 1 if out of memory. */
static int focal_share(const void *z, int is_double, int64_t S, int64_t C, int64_t sB, int64_t sC, int64_t sS,
                       const int64_t *target, const double *alpha_t, double gamma, double scale, double *loss,
                       void *grad, int64_t gB, int64_t gC, int64_t gS, int need_grad, int64_t block_begin,
                       int64_t block_end) {
    double *memory = (double *)malloc(sizeof(double) * (size_t)C * LANES * 3);
    if (memory == NULL) return 1;
    if (!is_double && sC == 1 && gC == 1 && C >= ROW_MIN_CLASSES) { /* long rows: blocks are single rows */
        focal_rows((const float *)z, S, C, sB, sS, target, alpha_t, gamma, scale, loss, (float *)grad, gB, gS,
                   need_grad, block_begin, block_end, (float *)memory);
    } else if (!is_double && sC == 1 && gC == 1) { /* (N, C) rows, classes contiguous */
        if (gamma == 2.0) FOCAL_CALL(1, sS, 1, gS, 2.0);
        else FOCAL_CALL(1, sS, 1, gS, gamma);
    } else if (!is_double && sS == 1 && gS == 1) { /* dense (N, C, d1..dk), positions contiguous */
        if (gamma == 2.0) FOCAL_CALL(sC, 1, gC, 1, 2.0);
        else FOCAL_CALL(sC, 1, gC, 1, gamma);
    } else if (!is_double) {
        FOCAL_CALL(sC, sS, gC, gS, gamma);
    } else {
        focal_blocks_double((const double *)z, S, C, sB, sC, sS, target, alpha_t, gamma, scale, loss, (double *)grad,
                            gB, gC, gS, need_grad, block_begin, block_end, memory);
    }
    free(memory);
    return 0;
}

/* The exported entry point: the blocks of a (B, C, S) input, split between `threads` OpenMP threads. Linked against
 * the OpenMP runtime that torch has already loaded (same soname), so it shares torch's thread pool instead of
 * competing with it; one thread runs without a parallel region. Returns 1 if out of memory. */
int focal_forward(const void *z, int is_double, int64_t B, int64_t S, int64_t C, int64_t sB, int64_t sC, int64_t sS,
                  const int64_t *target, const double *alpha_t, double gamma, double scale, double *loss, void *grad,
                  int64_t gB, int64_t gC, int64_t gS, int need_grad, int threads) {
    const int64_t blocks = focal_blocks_count(B, S, C, sC, gC, is_double);
    if (threads <= 1)
        return focal_share(z, is_double, S, C, sB, sC, sS, target, alpha_t, gamma, scale, loss, grad, gB, gC, gS,
                           need_grad, 0, blocks);
    int failed = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) reduction(| : failed)
#endif
    {
#ifdef _OPENMP
        const int64_t id = omp_get_thread_num(), count = omp_get_num_threads();
#else
        const int64_t id = 0, count = 1;
        (void)threads;
#endif
        failed |= focal_share(z, is_double, S, C, sB, sC, sS, target, alpha_t, gamma, scale, loss, grad, gB, gC, gS,
                              need_grad, blocks * id / count, blocks * (id + 1) / count);
    }
    return failed;
}

/* ------------------------------------------------------------------------------------------------------------------
 * Fused sigmoid (one-vs-rest) focal loss, RetinaNet's: every element is its own binary problem, so there is no row
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

/* exp(x) for x <= 0 in float32 down into the subnormal range (0 below -104): expf_nonpos_parts' reduction, with 2^k applied
 * as 2^(k + 64) and then 2^-64 so that k may go below -126 (a loss of order exp(-87.3), 1.2e-38, is a normal float32
 * number and must keep its digits). */
static inline __attribute__((always_inline)) float expf_wide(float x) {
    float xc = x < -120.0f ? -120.0f : x;
    int32_t k;
    const float p = expf_reduced(xc, &k);
    int32_t bits = (k + 127 + 64) << 23; /* 2^(k + 64), k in [-150, 0] */
    float scale;
    memcpy(&scale, &bits, 4);
    return x < -120.0f ? 0.0f : p * scale * 5.42101086e-20f; /* 2^-64 */
}

/* log(u) for u in [1, 2] in float32 (NaN for NaN): 2 atanh(f), f = (m - 1) / (m + 1), m = u or u / 2; the series to
 * f^9 is exact to 2e-9 relative on |f| <= 0.172. */
static inline __attribute__((always_inline)) float logf_1_2(float u) {
    const int big = u > 1.41421356f;
    const float m = big ? u * 0.5f : u;
    const float f = (m - 1.0f) / (m + 1.0f);
    const float f2 = f * f;
    float p = 1.0f / 9.0f;
    p = FMAF(p, f2, 1.0f / 7.0f);
    p = FMAF(p, f2, 1.0f / 5.0f);
    p = FMAF(p, f2, 1.0f / 3.0f);
    const float log_m = FMAF(2.0f * f * f2, p, 2.0f * f);
    return big ? log_m + 0.693147182f : log_m;
}

/* log(m) for 0 < m <= 1, subnormal m included (a float64 soft target of 1e-310): log_pos needs a normal number. */
static inline __attribute__((always_inline)) double log_unit(double m) {
    const int tiny = m < 2.2250738585072014e-308;
    return log_pos(tiny ? m * 18014398509481984.0 : m) - (tiny ? 37.42994775023704 : 0.0); /* 2^54, 54 ln 2 */
}

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
static inline __attribute__((always_inline)) float sigmoid_exp_f32(float x) {
    const float ax = x < 0.0f ? -x : x;
    return expf_wide(-ax);
}

static inline __attribute__((always_inline)) void sigmoid_log_f32(float e, float *r, float *L) {
    const float u = 1.0f + e;
    *r = 1.0f / u;
    *L = logf_1_2(u) + (e - (u - 1.0f)) * *r; /* log1p(e): log(u) corrected by u's rounding error */
}

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
static inline __attribute__((always_inline)) double sigmoid_exp_f64(double x) {
    const double ax = x < 0.0 ? -x : x;
    return exp_nonpos(-ax);
}

static inline __attribute__((always_inline)) void sigmoid_log_f64(double e, double *r, double *L) {
    *L = log1p_unit(e);
    *r = 1.0 / (1.0 + e);
}

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
int sigmoid_focal_forward(const void *x, const void *t, int is_double, int64_t n, double alpha, double gamma,
                          double scale, void *loss, double *partial, void *grad, int threads) {
    const int64_t chunks = (n + SIGMOID_CHUNK - 1) / SIGMOID_CHUNK;
    if (threads <= 1) {
        sigmoid_chunks(x, t, is_double, n, alpha, gamma, scale, loss, partial, grad, 0, chunks);
        return 0;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
    {
#ifdef _OPENMP
        const int64_t id = omp_get_thread_num(), count = omp_get_num_threads();
#else
        const int64_t id = 0, count = 1;
        (void)threads;
#endif
        sigmoid_chunks(x, t, is_double, n, alpha, gamma, scale, loss, partial, grad, chunks * id / count,
                       chunks * (id + 1) / count);
    }
    return 0;
}
