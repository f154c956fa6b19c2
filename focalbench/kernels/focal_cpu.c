/*
 * Fused softmax focal loss, forward and gradient in one sweep over the logits (CPU).
 *
 * Built at first use by focalbench.native with the system C compiler, for the CPU target it selects (-march=native
 * by default; x86-64-v2/v3/v4 on request), -O3 and no fast-math: the arithmetic below relies on IEEE rounding, inf
 * and NaN. Called through ctypes; OpenMP splits the blocks between threads.
 *
 * Layout: logits viewed as (B, C, S) with element strides (sB, sC, sS); a "row" is one (b, s) pair. LANES rows are
 * processed together, one per SIMD lane, so a short class dimension (C = 20) vectorizes as well as a long one: rows
 * with contiguous classes are transposed into a class-major buffer (16 x 16 register tiles with AVX-512), a dense
 * input's full blocks (positions contiguous: already class-major) are read in place and their gradient written in
 * place; blocks go GROUP at a time so that their per-row terms overlap. A 2-D (N, C) input is passed as B = 1, S = N,
 * sS = its row stride; a dense (N, C, d1..dk) input as S = d1*...*dk. The gradient has its own strides (gB, gC, gS).
 * target holds -1 at ignored rows (they give 0 and a zero gradient whatever their logits hold). alpha_t (the per-row
 * weight) may be NULL: every weight is 1.
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

#include "focal_math.h"
#include "transpose.h"

#define LANES 16

/* The logits' element type (focal_forward's `element`): float32 and float64 are computed in their own precision;
 * bfloat16 and float16 are widened to float32 as a block is read and the gradient rounded back (to nearest, ties to
 * even) as it is written, so that half-precision logits cost no conversion pass of their own. */
enum { ELEM_F32 = 0, ELEM_F64 = 1, ELEM_BF16 = 2, ELEM_F16 = 3 };

static inline __attribute__((always_inline)) float half_to_f32(uint16_t h, int elem) {
    if (elem == ELEM_BF16) {
        const uint32_t bits = (uint32_t)h << 16;
        float f;
        memcpy(&f, &bits, 4);
        return f;
    }
    _Float16 v;
    memcpy(&v, &h, 2);
    return (float)v;
}

static inline __attribute__((always_inline)) uint16_t f32_to_half(float f, int elem) {
    if (elem == ELEM_BF16) {
        uint32_t bits;
        memcpy(&bits, &f, 4);
        if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40u); /* NaN stays NaN */
        bits += 0x7fffu + ((bits >> 16) & 1u);
        return (uint16_t)(bits >> 16);
    }
    const _Float16 v = (_Float16)f;
    uint16_t h;
    memcpy(&h, &v, 2);
    return h;
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

/* Step 3 for one row: from the non-target sum s (of exp(z_j - mx)), the target's own term e_t = exp(z_t - mx), the
 * maximum mx and the target logit z_t, the loss and G (reduction scale folded in). Everything comes from
 * d = log((1 - p_t) / p_t) = log s + (mx - z_t) and u = e^-|d| = min(s, e_t) / max(s, e_t) (one log, one log1p, three
 * divisions per row, and no exponential: u from the two sums rather than exp(-|d|) halves the chain of dependent
 * operations a row waits on; both have the relative accuracy of the exponentials):
 *   -log p_t = max(d, 0) + log1p(u),  log(1 - p_t) = -(max(-d, 0) + log1p(u)),
 *   p_t = u / (1 + u) and 1 - p_t = 1 / (1 + u) for d > 0 (s > e_t), the other way round otherwise.
 * max(s, e_t) >= 1 whenever s > 0: the maximum's own term, 1, is in s or is e_t. An e_t that underflowed (a hopeless
 * row, z_t more than 87 below the maximum) gives u = 0 where u < 1e-38: nothing of it reaches the loss or G.
 * Limits, as cross-entropy takes them: s == 0 (every other class underflowed or is masked with -inf): p_t = 1, no
 * loss, no gradient. z_t = -inf (an impossible target): d = +inf, loss +inf, G = alpha (p_t log p_t -> 0), a finite
 * gradient. A NaN anywhere in the row reaches d and makes the loss NaN. An ignored row (counted == 0) gives 0 and 0
 * whatever its logits hold. Returns the loss; *big_g receives G and *coef G / s (the factor of the exponentials). */
static inline __attribute__((always_inline)) double row_terms(double s, double e_t, double mx, double z_t,
                                                              double alpha, double gamma, double scale, int counted,
                                                              double *big_g, double *coef) {
    const int certain = s == 0.0;
    const double safe_s = certain ? 1.0 : s;
    const double d = log_pos(safe_s) + (mx - z_t);
    const int pos = safe_s > e_t; /* d > 0 */
    const double big = pos ? safe_s : e_t;
    const double u = (pos ? e_t : safe_s) / big; /* big > 0, or NaN (a NaN logit), which propagates */
    const double log1p_u = log1p_unit(u);
    const double neg_log_p_t = (pos ? d : 0.0) + log1p_u;
    const double r = 1.0 / (1.0 + u);
    const double p_t = pos ? u * r : r;
    const double one_minus_p_t = pos ? r : u * r;
    double focal;
    if (gamma == 2.0) focal = one_minus_p_t * one_minus_p_t; /* the default gamma, without an exp */
    else if (gamma == 0.0) focal = 1.0;
    else focal = exp_nonpos(-gamma * ((pos ? 0.0 : -d) + log1p_u));
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
    const double loss =
        row_terms(sum, exp_diff_f32(zr[t * sC], mx), (double)mx, (double)zr[t * sC], alpha, gamma, scale, 1, &g, &coef);
    for (int64_t j = 0; j < C; ++j)
        gr[j * gstride] = j == t ? (float)(-g) : (float)(exp_diff_f32(zr[j * sC], mx) * coef);
    return loss;
}

/* Block transposition for float32 rows whose classes are contiguous (an (N, C) input, and its gradient): LANES rows
 * of C classes to the class-major buffer (tile_in: dst[j * LANES + l] = src[l * rs + j], lanes l >= rows zero)
 * and back (tile_out: dst[l * rs + j] = src[j * LANES + l] for l < rows). A scalar copy costs a load and a
 * store per logit (0.27 ns per logit each way at C = 20, measured on a Zen 5 core: more than the exponentials);
 * 16 x 16 tiles transposed in registers (AVX-512; 8 x 8 with AVX2) cost about 0.4 shuffles per logit. */
/* The cache lines of the 16 rows PREFETCH_BLOCKS blocks ahead (row stride rs_bytes, `bytes` a row), for reading
 * (RW 0) or writing (1): without it the transposed copies wait on memory at C = 80. */
#define PREFETCH_BLOCKS 2
#define PREFETCH_ROWS(base, rs_bytes, bytes, RW)                                                                  \
    do {                                                                                                            \
        for (int64_t l_ = 0; l_ < 16; ++l_)                                                                         \
            for (int64_t b_ = 0; b_ < (bytes); b_ += 64) __builtin_prefetch((base) + l_ * (rs_bytes) + b_, RW);    \
    } while (0)
#if defined(__AVX512F__)
#include <immintrin.h>
#if defined(__AVX512BW__) && defined(__AVX512VL__)
#define TILES_HALF 1
#else
#define TILES_HALF 0
#endif
/* 16 elements (those of mask m) from p as float32; the half types widened (bfloat16: a shift; float16: vcvtph2ps) */
static inline __attribute__((always_inline)) __m512 load16(const char *p, __mmask16 m, int elem) {
#if TILES_HALF
    if (elem != ELEM_F32) {
        const __m256i h = _mm256_maskz_loadu_epi16(m, p);
        if (elem == ELEM_BF16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
        return _mm512_cvtph_ps(h);
    }
#endif
    return _mm512_maskz_loadu_ps(m, p);
}
/* 16 float32 to p (those of mask m), rounded to the half types to nearest, ties to even (NaN stays NaN) */
static inline __attribute__((always_inline)) void store16(char *p, __m512 v, __mmask16 m, int full, int elem) {
#if TILES_HALF
    if (elem != ELEM_F32) {
        __m256i h;
        if (elem == ELEM_BF16) {
            const __m512i bits = _mm512_castps_si512(v), high = _mm512_srli_epi32(bits, 16);
            const __m512i bias = _mm512_add_epi32(_mm512_set1_epi32(0x7fff), _mm512_and_si512(high, _mm512_set1_epi32(1)));
            __m512i r = _mm512_srli_epi32(_mm512_add_epi32(bits, bias), 16);
            r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q),
                                      _mm512_or_si512(high, _mm512_set1_epi32(0x40)));
            h = _mm512_cvtepi32_epi16(r);
        } else {
            h = _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        }
        if (full) _mm256_storeu_si256((__m256i *)p, h);
        else _mm256_mask_storeu_epi16(p, m, h);
        return;
    }
#endif
    if (full) _mm512_storeu_ps((float *)p, v);
    else _mm512_mask_storeu_ps((float *)p, m, v);
}
static inline __attribute__((always_inline)) void tile_in(const char *src, int64_t rs, int64_t rows, int64_t C,
                                                           float *dst, int elem) {
    const int64_t es = elem == ELEM_F32 ? 4 : 2;
    PREFETCH_ROWS(src + PREFETCH_BLOCKS * 16 * rs * es, rs * es, C * es, 0);
    for (int64_t j0 = 0; j0 < C; j0 += 16) {
        const int64_t cols = C - j0 < 16 ? C - j0 : 16;
        const __mmask16 m = (__mmask16)((1u << cols) - 1u);
        __m512 r[16];
        for (int l = 0; l < 16; ++l) r[l] = l < rows ? load16(src + (l * rs + j0) * es, m, elem) : _mm512_setzero_ps();
        transpose16(r);
        for (int k = 0; k < cols; ++k) _mm512_storeu_ps(dst + (j0 + k) * 16, r[k]);
    }
}
static inline __attribute__((always_inline)) void tile_out(const float *src, int64_t rows, int64_t C, char *dst,
                                                            int64_t rs, int elem, const float *scale, uint32_t keep) {
    const int64_t es = elem == ELEM_F32 ? 4 : 2;
    PREFETCH_ROWS(dst + PREFETCH_BLOCKS * 16 * rs * es, rs * es, C * es, 1);
    const __m512 sv = scale ? _mm512_loadu_ps(scale) : _mm512_set1_ps(1.0f);
    for (int64_t j0 = 0; j0 < C; j0 += 16) {
        const int64_t cols = C - j0 < 16 ? C - j0 : 16;
        const __mmask16 m = (__mmask16)((1u << cols) - 1u);
        __m512 r[16];
        for (int k = 0; k < 16; ++k)
            r[k] = k >= cols ? _mm512_setzero_ps()
                   : scale  ? _mm512_maskz_mul_ps((__mmask16)keep, _mm512_loadu_ps(src + (j0 + k) * 16), sv)
                            : _mm512_loadu_ps(src + (j0 + k) * 16);
        transpose16(r);
        if (elem != ELEM_F32) {
            for (int l = 0; l < rows; ++l) store16(dst + (l * rs + j0) * es, r[l], m, cols == 16, elem);
        } else if (cols == 16) {
            for (int l = 0; l < rows; ++l) _mm512_storeu_ps((float *)dst + l * rs + j0, r[l]);
        } else {
            for (int l = 0; l < rows; ++l) _mm512_mask_storeu_ps((float *)dst + l * rs + j0, m, r[l]);
        }
    }
}
/* n contiguous elements of type elem to float32 (widen_row) and back (narrow_row) */
static inline __attribute__((always_inline)) void widen_row(const char *src, int64_t n, float *dst, int elem) {
    const int64_t es = elem == ELEM_F32 ? 4 : 2;
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 m = (__mmask16)(n - j >= 16 ? 0xffffu : (1u << (n - j)) - 1u);
        _mm512_mask_storeu_ps(dst + j, m, load16(src + j * es, m, elem));
    }
}
static inline __attribute__((always_inline)) void narrow_row(const float *src, int64_t n, float factor, char *dst,
                                                              int elem) {
    const int64_t es = elem == ELEM_F32 ? 4 : 2;
    const __m512 f = _mm512_set1_ps(factor);
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 m = (__mmask16)(n - j >= 16 ? 0xffffu : (1u << (n - j)) - 1u);
        store16(dst + j * es, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, src + j), f), m, n - j >= 16, elem);
    }
}
#define HAVE_TILES 1
#elif defined(__AVX2__)
#include <immintrin.h>
#if defined(__F16C__)
#define TILES_HALF 1
#else
#define TILES_HALF 0
#endif
static inline __attribute__((always_inline)) __m256i tail_mask8(int64_t cols) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)cols), idx);
}
/* the first cols (<= 8) elements at p as float32 (the half types widened), the rest 0 */
static inline __attribute__((always_inline)) __m256 load8(const char *p, int64_t cols, int elem) {
#if TILES_HALF
    if (elem != ELEM_F32) {
        __m128i h;
        if (cols == 8) {
            h = _mm_loadu_si128((const __m128i *)p);
        } else {
            uint16_t part[8] = {0};
            memcpy(part, p, (size_t)cols * 2);
            h = _mm_loadu_si128((const __m128i *)part);
        }
        if (elem == ELEM_BF16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
        return _mm256_cvtph_ps(h);
    }
#endif
    return cols == 8 ? _mm256_loadu_ps((const float *)p) : _mm256_maskload_ps((const float *)p, tail_mask8(cols));
}
/* the first cols (<= 8) lanes of v to p, rounded to the half types to nearest, ties to even; plain stores: a masked
 * store (vmaskmovps) costs tens of cycles on AMD cores */
static inline __attribute__((always_inline)) void store8(char *p, __m256 v, int64_t cols, int elem) {
#if TILES_HALF
    if (elem != ELEM_F32) {
        __m128i h;
        if (elem == ELEM_BF16) {
            const __m256i bits = _mm256_castps_si256(v), high = _mm256_srli_epi32(bits, 16);
            const __m256i bias = _mm256_add_epi32(_mm256_set1_epi32(0x7fff), _mm256_and_si256(high, _mm256_set1_epi32(1)));
            __m256i r = _mm256_srli_epi32(_mm256_add_epi32(bits, bias), 16);
            const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
            r = _mm256_blendv_epi8(r, _mm256_or_si256(high, _mm256_set1_epi32(0x40)), nan);
            h = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
        } else {
            h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        }
        if (cols == 8) {
            _mm_storeu_si128((__m128i *)p, h);
        } else {
            uint16_t part[8];
            _mm_storeu_si128((__m128i *)part, h);
            memcpy(p, part, (size_t)cols * 2);
        }
        return;
    }
#endif
    if (cols == 8) {
        _mm256_storeu_ps((float *)p, v);
    } else {
        float part[8];
        _mm256_storeu_ps(part, v);
        memcpy(p, part, (size_t)cols * 4);
    }
}
static inline __attribute__((always_inline)) void tile_in(const char *src, int64_t rs, int64_t rows, int64_t C,
                                                           float *dst, int elem) {
    const int64_t es = elem == ELEM_F32 ? 4 : 2;
    PREFETCH_ROWS(src + PREFETCH_BLOCKS * 16 * rs * es, rs * es, C * es, 0);
    for (int64_t j0 = 0; j0 < C; j0 += 8) {
        const int64_t cols = C - j0 < 8 ? C - j0 : 8;
        for (int h = 0; h < 16; h += 8) {
            __m256 r[8];
            for (int l = 0; l < 8; ++l)
                r[l] = h + l < rows ? load8(src + ((h + l) * rs + j0) * es, cols, elem) : _mm256_setzero_ps();
            transpose8(r);
            for (int k = 0; k < cols; ++k) _mm256_storeu_ps(dst + (j0 + k) * 16 + h, r[k]);
        }
    }
}
static inline __attribute__((always_inline)) void tile_out(const float *src, int64_t rows, int64_t C, char *dst,
                                                            int64_t rs, int elem, const float *scale, uint32_t keep) {
    const int64_t es = elem == ELEM_F32 ? 4 : 2;
    PREFETCH_ROWS(dst + PREFETCH_BLOCKS * 16 * rs * es, rs * es, C * es, 1);
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    for (int64_t j0 = 0; j0 < C; j0 += 8) {
        const int64_t cols = C - j0 < 8 ? C - j0 : 8;
        for (int h = 0; h < 16 && h < rows; h += 8) {
            const __m256 sv = scale ? _mm256_loadu_ps(scale + h) : _mm256_set1_ps(1.0f);
            const __m256 kv = _mm256_castsi256_ps(
                _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32((int)(keep >> h)), bit), bit));
            __m256 r[8];
            for (int k = 0; k < 8; ++k)
                r[k] = k >= cols ? _mm256_setzero_ps()
                       : scale  ? _mm256_and_ps(_mm256_mul_ps(_mm256_loadu_ps(src + (j0 + k) * 16 + h), sv), kv)
                                : _mm256_loadu_ps(src + (j0 + k) * 16 + h);
            transpose8(r);
            for (int l = 0; l < 8 && h + l < rows; ++l) store8(dst + ((h + l) * rs + j0) * es, r[l], cols, elem);
        }
    }
}
static inline __attribute__((always_inline)) void widen_row(const char *src, int64_t n, float *dst, int elem) {
    const int64_t es = elem == ELEM_F32 ? 4 : 2;
    for (int64_t j = 0; j < n; j += 8) {
        const int64_t cols = n - j < 8 ? n - j : 8;
        const __m256 v = load8(src + j * es, cols, elem);
        if (cols == 8) {
            _mm256_storeu_ps(dst + j, v);
        } else {
            float part[8];
            _mm256_storeu_ps(part, v);
            memcpy(dst + j, part, (size_t)cols * 4);
        }
    }
}
static inline __attribute__((always_inline)) void narrow_row(const float *src, int64_t n, float factor, char *dst,
                                                              int elem) {
    const int64_t es = elem == ELEM_F32 ? 4 : 2;
    const __m256 f = _mm256_set1_ps(factor);
    for (int64_t j = 0; j < n; j += 8) {
        const int64_t cols = n - j < 8 ? n - j : 8;
        const __m256 v = cols == 8 ? _mm256_loadu_ps(src + j) : _mm256_maskload_ps(src + j, tail_mask8(cols));
        store8(dst + j * es, _mm256_mul_ps(v, f), cols, elem);
    }
}
#define HAVE_TILES 1
#else
#define HAVE_TILES 0
#define TILES_HALF 0
static inline void widen_row(const char *src, int64_t n, float *dst, int elem) {
    (void)src, (void)n, (void)dst, (void)elem;
}
static inline void narrow_row(const float *src, int64_t n, float factor, char *dst, int elem) {
    (void)src, (void)n, (void)factor, (void)dst, (void)elem;
}
static inline void tile_in(const char *src, int64_t rs, int64_t rows, int64_t C, float *dst, int elem) {
    (void)src, (void)rs, (void)rows, (void)C, (void)dst, (void)elem;
}
static inline void tile_out(const float *src, int64_t rows, int64_t C, char *dst, int64_t rs, int elem,
                            const float *scale, uint32_t keep) {
    (void)src, (void)rows, (void)C, (void)dst, (void)rs, (void)elem, (void)scale, (void)keep;
}
#endif

/* Element i of an array of element type elem, as the block's arithmetic type T (float: float32 and the half types;
 * double: float64), and back. */
static inline __attribute__((always_inline)) float read_float(const char *p, int64_t i, int elem) {
    return elem == ELEM_F32 ? ((const float *)p)[i] : half_to_f32(((const uint16_t *)p)[i], elem);
}
static inline __attribute__((always_inline)) void write_float(char *p, int64_t i, float v, int elem) {
    if (elem == ELEM_F32) ((float *)p)[i] = v;
    else ((uint16_t *)p)[i] = f32_to_half(v, elem);
}
static inline __attribute__((always_inline)) double read_double(const char *p, int64_t i, int elem) {
    (void)elem;
    return ((const double *)p)[i];
}
static inline __attribute__((always_inline)) void write_double(char *p, int64_t i, double v, int elem) {
    (void)elem;
    ((double *)p)[i] = v;
}

/* A block's logits (element type elem at zb, strides in elements) into its class-major buffer (lanes past n zero),
 * and its gradient back out. */
#define DEFINE_BLOCK_COPIES(T)                                                                                      \
    static inline __attribute__((always_inline)) void copy_in_##T(const char *zb, int elem, int64_t n, int64_t C,  \
                                                                  int64_t sC, int64_t sS, T *buf) {                \
        if (HAVE_TILES && sizeof(T) == 4 && sC == 1 && (elem == ELEM_F32 || TILES_HALF)) {                          \
            tile_in(zb, sS, n, C, (float *)buf, elem);                                                              \
            return;                                                                                                 \
        }                                                                                                           \
        if (HAVE_TILES && TILES_HALF && sizeof(T) == 4 && elem != ELEM_F32 && sS == 1 && n == LANES) {              \
            for (int64_t j = 0; j < C; ++j) widen_row(zb + j * sC * 2, LANES, (float *)buf + j * LANES, elem);      \
            return;                                                                                                 \
        }                                                                                                           \
        if (n < LANES) memset(buf, 0, sizeof(T) * (size_t)C * LANES);                                               \
        if (sS == 1) { /* positions contiguous: copy along them */                                                  \
            for (int64_t j = 0; j < C; ++j)                                                                         \
                for (int64_t l = 0; l < n; ++l) buf[j * LANES + l] = read_##T(zb, l + j * sC, elem);               \
        } else {                                                                                                    \
            for (int64_t l = 0; l < n; ++l)                                                                         \
                for (int64_t j = 0; j < C; ++j) buf[j * LANES + l] = read_##T(zb, l * sS + j * sC, elem);          \
        }                                                                                                           \
    }                                                                                                               \
    static inline __attribute__((always_inline)) void copy_out_##T(const T *buf, int64_t n, int64_t C, int64_t gC, \
                                                                   int64_t gS, char *gb, int elem) {               \
        if (HAVE_TILES && sizeof(T) == 4 && gC == 1 && (elem == ELEM_F32 || TILES_HALF)) {                          \
            tile_out((const float *)buf, n, C, gb, gS, elem, NULL, 0);                                              \
            return;                                                                                                 \
        }                                                                                                           \
        if (HAVE_TILES && TILES_HALF && sizeof(T) == 4 && elem != ELEM_F32 && gS == 1 && n == LANES) {              \
            for (int64_t j = 0; j < C; ++j) narrow_row((const float *)buf + j * LANES, LANES, 1.0f, gb + j * gC * 2, elem); \
            return;                                                                                                 \
        }                                                                                                           \
        if (gS == 1) {                                                                                              \
            for (int64_t j = 0; j < C; ++j)                                                                         \
                for (int64_t l = 0; l < n; ++l) write_##T(gb, l + j * gC, buf[j * LANES + l], elem);               \
        } else {                                                                                                    \
            for (int64_t l = 0; l < n; ++l)                                                                         \
                for (int64_t j = 0; j < C; ++j) write_##T(gb, l * gS + j * gC, buf[j * LANES + l], elem);          \
        }                                                                                                           \
    }
DEFINE_BLOCK_COPIES(float)
DEFINE_BLOCK_COPIES(double)

/* Blocks are taken GROUP at a time (up to GROUP_MAX, as many as fit in GROUP_BYTES of buffer): each block's
 * exponentials and sums first, then the per-row terms of all GROUP * LANES rows in one loop. A row's terms are a
 * chain of ~80 dependent double operations (two logarithms, three divisions); one block gives the core two such
 * chains (16 lanes, 8 doubles a vector) and it waits on them (8.5 ns a row, measured on a Zen 5 core: most of the
 * time at C = 20); eight blocks give it sixteen to overlap. */
#define GROUP_MAX 8
/* how many blocks ahead a dense input's direct blocks prefetch (measured at 8 x 21 x 128 x 128, Zen 5: 4 and 8 both
 * 10-15 % faster than none, 8 the steadier) */
#define DIRECT_AHEAD 8
#define GROUP_BYTES 65536

/* Two instances, for float32 and float64 logits (T), each with its exponential (EXP_DIFF, see above):
 *
 * block_sums_T: steps 1-2 on one block; src[j * ss + l] holds logit j of lane l (ss = LANES: the block's buffer; sC:
 * a dense input read in place), dst[j * ds + l] receives exp(z_j - m) (0 at the target); mx, zt, et and sum receive
 * each lane's maximum, target logit, target term and sum (in double).
 *
 * block_grad_T: step 4 on one block: from the exponentials in buf (class-major, LANES a class), the gradient into
 * out[j * os + l] (the buffer itself, or a dense gradient written in place; 0 throughout an ignored row).
 *
 * focal_blocks_T: blocks [block_begin, block_end) of a (B, C, S) input; target and alpha_t are (B, S) contiguous,
 * loss too. */
#define DEFINE_BLOCK_KERNELS(T, EXP_DIFF)                                                                           \
    static inline __attribute__((always_inline)) void block_sums_##T(const T *src, int64_t ss, T *dst, int64_t ds,  \
                                                                     int64_t C,                                     \
                                                                     const int32_t *restrict tt, T *restrict mx,    \
                                                                     T *restrict zt, T *restrict et,                \
                                                                     double *restrict sum) {                        \
        T mx2[LANES];                                                                                               \
        double sum2[LANES];                                                                                         \
        for (int l = 0; l < LANES; ++l) {                                                                           \
            mx[l] = mx2[l] = -INFINITY;                                                                             \
            sum[l] = sum2[l] = 0.0;                                                                                 \
            zt[l] = src[(tt[l] < 0 ? 0 : tt[l]) * ss + l];                                                          \
        }                                                                                                           \
        /* 1. row maxima (two chains: a max waits on the one two classes back) */                                   \
        int64_t j = 0;                                                                                              \
        for (; j + 1 < C; j += 2) {                                                                                 \
            const T *row = src + j * ss, *next = row + ss;                                                          \
            _Pragma("omp simd") for (int l = 0; l < LANES; ++l) {                                                   \
                mx[l] = row[l] > mx[l] ? row[l] : mx[l];                                                            \
                mx2[l] = next[l] > mx2[l] ? next[l] : mx2[l];                                                       \
            }                                                                                                       \
        }                                                                                                           \
        for (; j < C; ++j) {                                                                                        \
            const T *row = src + j * ss;                                                                            \
            _Pragma("omp simd") for (int l = 0; l < LANES; ++l) mx[l] = row[l] > mx[l] ? row[l] : mx[l];            \
        }                                                                                                           \
        _Pragma("omp simd") for (int l = 0; l < LANES; ++l) mx[l] = mx2[l] > mx[l] ? mx2[l] : mx[l];                \
        /* 2. exponentials of the corrected differences (nothing carried from class to class), then their sum over  \
         *    the other classes in double (two chains) */                                                           \
        for (j = 0; j < C; ++j) {                                                                                   \
            const T *in = src + j * ss;                                                                             \
            T *out = dst + j * ds;                                                                                  \
            _Pragma("omp simd") for (int l = 0; l < LANES; ++l) out[l] = EXP_DIFF(in[l], mx[l]);                    \
        }                                                                                                           \
        for (int l = 0; l < LANES; ++l) {                                                                           \
            T *target = dst + (tt[l] < 0 ? 0 : tt[l]) * ds + l;                                                     \
            et[l] = *target;                                                                                        \
            *target = 0;                                                                                            \
        }                                                                                                           \
        for (j = 0; j + 1 < C; j += 2) {                                                                            \
            const T *row = dst + j * ds, *next = row + ds;                                                          \
            _Pragma("omp simd") for (int l = 0; l < LANES; ++l) {                                                   \
                sum[l] += (double)row[l];                                                                           \
                sum2[l] += (double)next[l];                                                                         \
            }                                                                                                       \
        }                                                                                                           \
        for (; j < C; ++j) {                                                                                        \
            const T *row = dst + j * ds;                                                                            \
            _Pragma("omp simd") for (int l = 0; l < LANES; ++l) sum[l] += (double)row[l];                           \
        }                                                                                                           \
        _Pragma("omp simd") for (int l = 0; l < LANES; ++l) sum[l] += sum2[l];                                      \
    }                                                                                                               \
                                                                                                                    \
    static inline __attribute__((always_inline)) void block_grad_##T(const T *buf, T *out, int64_t os, int64_t C,    \
                                                                     const int32_t *restrict tt,                    \
                                                                     const T *restrict coef,                        \
                                                                     const double *restrict big_g) {                \
        T keep[LANES];                                                                                              \
        for (int l = 0; l < LANES; ++l) keep[l] = tt[l] < 0 ? (T)0 : (T)1;                                          \
        for (int64_t j = 0; j < C; ++j) {                                                                           \
            const T *in = buf + j * LANES;                                                                          \
            T *row = out + j * os;                                                                                  \
            _Pragma("omp simd") for (int l = 0; l < LANES; ++l) row[l] = keep[l] != 0 ? in[l] * coef[l] : (T)0;     \
        }                                                                                                           \
        for (int l = 0; l < LANES; ++l)                                                                             \
            if (tt[l] >= 0) out[tt[l] * os + l] = (T)(-big_g[l]);                                                   \
    }                                                                                                               \
                                                                                                                    \
    static inline __attribute__((always_inline)) void focal_blocks_##T(                                             \
        const char *z, int elem, int64_t S, int64_t C, int64_t sB, int64_t sC, int64_t sS, const int64_t *target,   \
        const double *alpha_t, double gamma, double scale, double *loss, char *grad, int64_t gB, int64_t gC,        \
        int64_t gS, int need_grad, int64_t block_begin, int64_t block_end, T *memory, int64_t group,                \
        float *row_scratch) {                                                                                       \
        const int64_t es = elem == ELEM_F64 ? 8 : elem == ELEM_F32 ? 4 : 2; /* bytes an element */                 \
        int64_t b[GROUP_MAX], s0[GROUP_MAX], n[GROUP_MAX], ostride[GROUP_MAX];                                      \
        int direct[GROUP_MAX];                                                                                      \
        T *out[GROUP_MAX];                                                                                          \
        int32_t tt[GROUP_MAX * LANES];                                                                              \
        double alpha[GROUP_MAX * LANES], sum[GROUP_MAX * LANES], big_g[GROUP_MAX * LANES];                          \
        double rows_loss[GROUP_MAX * LANES], coef[GROUP_MAX * LANES];                                               \
        T mx[GROUP_MAX * LANES], zt[GROUP_MAX * LANES], et[GROUP_MAX * LANES], coef_t[GROUP_MAX * LANES];           \
        const int64_t blocks_per_b = (S + LANES - 1) / LANES;                                                       \
        for (int64_t first = block_begin; first < block_end; first += group) {                                      \
            const int64_t count = block_end - first < group ? block_end - first : group;                            \
            for (int64_t k = 0; k < count; ++k) { /* copy each block in; its exponentials and sums */               \
                const int64_t step = first + k, o = k * LANES;                                                      \
                b[k] = step / blocks_per_b;                                                                         \
                s0[k] = (step % blocks_per_b) * LANES;                                                              \
                n[k] = S - s0[k] < LANES ? S - s0[k] : LANES;                                                       \
                const int64_t row0 = b[k] * S + s0[k];                                                              \
                for (int64_t l = 0; l < LANES; ++l) {                                                               \
                    tt[o + l] = l < n[k] ? (int32_t)target[row0 + l] : 0;                                           \
                    alpha[o + l] = l < n[k] ? (alpha_t ? alpha_t[row0 + l] : 1.0) : 0.0;                            \
                }                                                                                                   \
                /* a full block of a dense input (positions contiguous) is already class-major: read in place, the \
                 * exponentials and then the gradient written straight into the output (no copy either way) */    \
                direct[k] = sS == 1 && n[k] == LANES && (!need_grad || gS == 1) && es == (int64_t)sizeof(T);        \
                T *buf = memory + k * C * LANES;                                                                    \
                const char *src = z + (b[k] * sB + s0[k] * sS) * es;                                                \
                out[k] = direct[k] && need_grad ? (T *)(grad + (b[k] * gB + s0[k] * gS) * es) : buf;                \
                ostride[k] = direct[k] && need_grad ? gC : LANES;                                                   \
                if (direct[k]) {                                                                                    \
                    /* each class's cache line DIRECT_AHEAD blocks on, read and written (the planes lie a plane's  \
                     * size apart, so the hardware's stride prefetch sees C streams at once and falls behind) */   \
                    if (s0[k] + (DIRECT_AHEAD + 1) * LANES <= S)                                                    \
                        for (int64_t j = 0; j < C; ++j) {                                                           \
                            __builtin_prefetch(src + (j * sC + DIRECT_AHEAD * LANES) * es, 0);                      \
                            if (need_grad)                                                                          \
                                __builtin_prefetch((const char *)out[k] + (j * gC + DIRECT_AHEAD * LANES) * es, 1); \
                        }                                                                                           \
                    block_sums_##T((const T *)src, sC, buf, LANES, C, tt + o, mx + o, zt + o, et + o, sum + o);     \
                } else {                                                                                            \
                    copy_in_##T(src, elem, n[k], C, sC, sS, buf);                                                   \
                    block_sums_##T(buf, LANES, buf, LANES, C, tt + o, mx + o, zt + o, et + o, sum + o);             \
                }                                                                                                   \
            }                                                                                                       \
            /* 3. the per-row scalars of the whole group */                                                         \
            _Pragma("omp simd") for (int64_t l = 0; l < count * LANES; ++l) {                                       \
                rows_loss[l] = row_terms(sum[l], (double)et[l], (double)mx[l], (double)zt[l], alpha[l], gamma, scale, \
                                         tt[l] >= 0, &big_g[l], &coef[l]);                                          \
                coef_t[l] = (T)coef[l];                                                                             \
            }                                                                                                       \
            for (int64_t k = 0; k < count; ++k) { /* each block's gradient, refined rows, and out */                \
                const int64_t o = k * LANES, row0 = b[k] * S + s0[k];                                               \
                /* rows with contiguous classes through the register tiles: the gradient's factors applied as the  \
                 * tiles go out (no pass of their own), the targets' -G written after */                            \
                const int scaled_out = need_grad && !direct[k] && HAVE_TILES && sizeof(T) == 4 && gC == 1 &&        \
                                       (elem == ELEM_F32 || TILES_HALF);                                            \
                if (need_grad && !scaled_out)                                                                       \
                    block_grad_##T(memory + k * C * LANES, out[k], ostride[k], C, tt + o, coef_t + o, big_g + o);   \
                uint32_t refined = 0;                                                                               \
                /* float32 confident rows, whose exponentials may have left the normal range: again, from the input */ \
                for (int64_t l = 0; sizeof(T) == 4 && l < n[k]; ++l) {                                              \
                    if (tt[o + l] < 0 || !(sum[o + l] < 0x1p-60)) continue;                                         \
                    refined |= 1u << l;                                                                             \
                    const char *zr = z + (b[k] * sB + (s0[k] + l) * sS) * es;                                       \
                    for (int64_t j = 0; elem != ELEM_F32 && j < C; ++j) row_scratch[j] = read_float(zr, j * sC, elem); \
                    float scratch[LANES];                                                                           \
                    rows_loss[o + l] = refine_row_f32(elem == ELEM_F32 ? (const float *)zr : row_scratch,           \
                                                      elem == ELEM_F32 ? sC : 1, C, tt[o + l], alpha[o + l], gamma, scale, \
                                                      need_grad ? (float *)out[k] + l : scratch,                    \
                                                      need_grad ? ostride[k] : 0);                                  \
                }                                                                                                   \
                for (int64_t l = 0; l < n[k]; ++l) loss[row0 + l] = rows_loss[o + l];                               \
                char *gb = grad + (b[k] * gB + s0[k] * gS) * es;                                                    \
                if (scaled_out) { /* a refined row's buffer column is its gradient already */                       \
                    float lane_coef[LANES];                                                                         \
                    uint32_t keep = 0;                                                                              \
                    for (int l = 0; l < LANES; ++l) {                                                               \
                        lane_coef[l] = (refined >> l) & 1u ? 1.0f : (float)coef_t[o + l];                           \
                        keep |= (uint32_t)(tt[o + l] >= 0) << l;                                                    \
                    }                                                                                               \
                    tile_out((const float *)out[k], n[k], C, gb, gS, elem, lane_coef, keep);                        \
                    for (int64_t l = 0; l < n[k]; ++l)                                                              \
                        if (tt[o + l] >= 0 && !((refined >> l) & 1u))                                               \
                            write_float(gb, l * gS + tt[o + l], (float)(-big_g[o + l]), elem);                      \
                } else if (need_grad && !direct[k]) {                                                               \
                    copy_out_##T(out[k], n[k], C, gC, gS, gb, elem);                                                \
                }                                                                                                   \
            }                                                                                                       \
        }                                                                                                           \
    }

DEFINE_BLOCK_KERNELS(float, exp_diff_f32_normal)
DEFINE_BLOCK_KERNELS(double, exp_diff_f64)

/* Long rows with contiguous classes (C >= ROW_MIN_CLASSES, measured: blocks win at C = 80, rows at C = 1000):
 * one row at a time, vectorized along the classes. A half-precision row is widened into `widened` first and its
 * gradient scaled and rounded back in one pass (without register tiles, from `narrowing`; both C floats, in cache). */
#define ROW_MIN_CLASSES 128
#define ROW_CHAINS 64 /* independent partial maxima and sums of a long row (8 AVX-512 vectors of double) */
static inline __attribute__((always_inline)) void focal_rows_of(
    const char *z, int elem, int64_t S, int64_t C, int64_t sB, int64_t sS, const int64_t *target,
    const double *alpha_t, double gamma, double scale, double *loss, char *grad, int64_t gB, int64_t gS,
    int need_grad, int64_t row_begin, int64_t row_end, float *exps, float *widened, float *narrowing) {
    const int64_t es = elem == ELEM_F32 ? 4 : 2;
    for (int64_t row = row_begin; row < row_end; ++row) {
        const int64_t b = row / S, s = row % S, t = target[row];
        const char *zin = z + (b * sB + s * sS) * es;
        char *gout = grad + (b * gB + s * gS) * es;
        if (t < 0) { /* ignored: nothing read, no loss, no gradient */
            loss[row] = 0.0;
            if (need_grad) memset(gout, 0, (size_t)(es * C));
            continue;
        }
        const float *zr = (const float *)zin;
        if (elem != ELEM_F32) {
            if (HAVE_TILES && TILES_HALF) {
                widen_row(zin, C, widened, elem);
            } else {
                for (int64_t j = 0; j < C; ++j) widened[j] = read_float(zin, j, elem);
            }
            zr = widened;
        }
        float *gr = elem == ELEM_F32 ? (float *)gout : narrowing;
        /* 1. row maximum, in ROW_CHAINS independent lanes (one running maximum would wait on itself) */
        float mxs[ROW_CHAINS];
        for (int l = 0; l < ROW_CHAINS; ++l) mxs[l] = -INFINITY;
        int64_t j = 0;
        for (; j + ROW_CHAINS <= C; j += ROW_CHAINS) {
#pragma omp simd
            for (int l = 0; l < ROW_CHAINS; ++l) mxs[l] = zr[j + l] > mxs[l] ? zr[j + l] : mxs[l];
        }
        for (int64_t l = 0; j < C; ++j, ++l) mxs[l] = zr[j] > mxs[l] ? zr[j] : mxs[l];
        for (int w = ROW_CHAINS / 2; w > 0; w /= 2) /* a tree: no chain of ROW_CHAINS dependent steps */
#pragma omp simd
            for (int l = 0; l < w; ++l) mxs[l] = mxs[l + w] > mxs[l] ? mxs[l + w] : mxs[l];
        const float mx = mxs[0];
        /* 2. exponentials of the differences with their rounding error folded back in; the target's own term taken
         *    out, then the others summed in double over ROW_CHAINS independent partial sums (a single sum would
         *    make every addition wait on the previous one: the loop's bound before) */
#pragma omp simd
        for (j = 0; j < C; ++j) exps[j] = exp_diff_f32_normal(zr[j], mx);
        const float e_target = exps[t];
        exps[t] = 0.0f;
        double sums[ROW_CHAINS];
        for (int l = 0; l < ROW_CHAINS; ++l) sums[l] = 0.0;
        for (j = 0; j + ROW_CHAINS <= C; j += ROW_CHAINS) {
#pragma omp simd
            for (int l = 0; l < ROW_CHAINS; ++l) sums[l] += (double)exps[j + l];
        }
        for (int64_t l = 0; j < C; ++j, ++l) sums[l] += (double)exps[j];
        for (int w = ROW_CHAINS / 2; w > 0; w /= 2)
#pragma omp simd
            for (int l = 0; l < w; ++l) sums[l] += sums[l + w];
        double sum = sums[0];
        exps[t] = e_target;
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
            row_terms(sum, (double)exps[t], (double)mx, (double)zr[t], alpha_t ? alpha_t[row] : 1.0, gamma, scale, 1,
                      &g, &coef);
        if (!need_grad) continue;
        /* 4. gradient: G q_j off the target, -G at it */
        const float coef_f = (float)coef;
        if (elem != ELEM_F32 && HAVE_TILES && TILES_HALF) { /* scaled and rounded in one pass */
            exps[t] = 0.0f;
            narrow_row(exps, C, coef_f, gout, elem);
            write_float(gout, t, (float)(-g), elem);
            continue;
        }
#pragma omp simd
        for (int64_t j = 0; j < C; ++j) gr[j] = exps[j] * coef_f;
        gr[t] = (float)(-g);
        for (int64_t j = 0; elem != ELEM_F32 && j < C; ++j) write_float(gout, j, gr[j], elem);
    }
}

static void focal_rows(const char *z, int elem, int64_t S, int64_t C, int64_t sB, int64_t sS, const int64_t *target,
                       const double *alpha_t, double gamma, double scale, double *loss, char *grad, int64_t gB,
                       int64_t gS, int need_grad, int64_t row_begin, int64_t row_end, float *memory) {
    float *exps = memory, *widened = memory + C, *narrowing = memory + 2 * C;
    if (elem == ELEM_F32)
        focal_rows_of(z, ELEM_F32, S, C, sB, sS, target, alpha_t, gamma, scale, loss, grad, gB, gS, need_grad,
                      row_begin, row_end, exps, widened, narrowing);
    else if (elem == ELEM_BF16)
        focal_rows_of(z, ELEM_BF16, S, C, sB, sS, target, alpha_t, gamma, scale, loss, grad, gB, gS, need_grad,
                      row_begin, row_end, exps, widened, narrowing);
    else
        focal_rows_of(z, ELEM_F16, S, C, sB, sS, target, alpha_t, gamma, scale, loss, grad, gB, gS, need_grad,
                      row_begin, row_end, exps, widened, narrowing);
}

/* The exported entry point: the common layouts get their unit strides (and gamma = 2) as compile-time constants,
 * which lets the compiler vectorize the copies and fold the per-row formulas. Returns 1 if out of memory. */
#define FOCAL_CALL(ELEM, SC, SS, GC, GS, GAMMA)                                                                  \
    focal_blocks_float((const char *)z, ELEM, S, C, sB, SC, SS, target, alpha_t, GAMMA, scale, loss, (char *)grad,  \
                       gB, GC, GS, need_grad, block_begin, block_end, (float *)memory, group, row_scratch)
/* the half types' instances: every layout (a half block always goes through the buffer, whose copies pick the
 * register tiles or widened rows by its strides), gamma = 2 a constant or not (a gamma the caller does not fix leaves
 * the per-row terms scalar) */
#define FOCAL_CALLS_HALF(ELEM)                                                                                      \
    do {                                                                                                            \
        if (gamma == 2.0) FOCAL_CALL(ELEM, sC, sS, gC, gS, 2.0);                                                    \
        else FOCAL_CALL(ELEM, sC, sS, gC, gS, gamma);                                                               \
    } while (0)

static int64_t focal_blocks_count(int64_t B, int64_t S, int64_t C, int64_t sC, int64_t gC, int element) {
    if (element != ELEM_F64 && sC == 1 && gC == 1 && C >= ROW_MIN_CLASSES) return B * S;
    return B * ((S + LANES - 1) / LANES);
}

/* The half types' blocks, apart from focal_share: inlined there, their instances made GCC compile the float32 ones
 * worse (the float32 gradient 11-24 % slower at C = 20 and 80, measured). */
static __attribute__((noinline)) void focal_blocks_half(const void *z, int element, int64_t S, int64_t C, int64_t sB,
                                                        int64_t sC, int64_t sS, const int64_t *target,
                                                        const double *alpha_t, double gamma, double scale,
                                                        double *loss, void *grad, int64_t gB, int64_t gC, int64_t gS,
                                                        int need_grad, int64_t block_begin, int64_t block_end,
                                                        float *memory, int64_t group, float *row_scratch) {
    FOCAL_CALLS_HALF(element);
}

/* One thread's share of blocks [block_begin, block_end). Returns 1 if out of memory. */
static int focal_share(const void *z, int element, int64_t S, int64_t C, int64_t sB, int64_t sC, int64_t sS,
                       const int64_t *target, const double *alpha_t, double gamma, double scale, double *loss,
                       void *grad, int64_t gB, int64_t gC, int64_t gS, int need_grad, int64_t block_begin,
                       int64_t block_end) {
    const int is_double = element == ELEM_F64;
    const size_t item = is_double ? sizeof(double) : sizeof(float);
    int64_t group = GROUP_BYTES / ((int64_t)item * C * LANES);
    group = group < 1 ? 1 : group > GROUP_MAX ? GROUP_MAX : group;
    /* the blocks' buffers, then C floats of scratch for a row (a half-precision row widened) */
    void *memory = malloc(item * (size_t)C * LANES * (size_t)group + sizeof(float) * (size_t)C);
    if (memory == NULL) return 1;
    float *row_scratch = (float *)((char *)memory + item * (size_t)C * LANES * (size_t)group);
    if (!is_double && sC == 1 && gC == 1 && C >= ROW_MIN_CLASSES) { /* long rows: blocks are single rows */
        focal_rows((const char *)z, element, S, C, sB, sS, target, alpha_t, gamma, scale, loss, (char *)grad, gB, gS,
                   need_grad, block_begin, block_end, (float *)memory);
    } else if (element == ELEM_BF16 || element == ELEM_F16) { /* one instance for both: a branch a tile row */
        focal_blocks_half(z, element, S, C, sB, sC, sS, target, alpha_t, gamma, scale, loss, grad, gB, gC, gS,
                          need_grad, block_begin, block_end, (float *)memory, group, row_scratch);
    } else if (!is_double && sC == 1 && gC == 1) { /* (N, C) rows, classes contiguous */
        if (gamma == 2.0) FOCAL_CALL(ELEM_F32, 1, sS, 1, gS, 2.0);
        else FOCAL_CALL(ELEM_F32, 1, sS, 1, gS, gamma);
    } else if (!is_double && sS == 1 && gS == 1) { /* dense (N, C, d1..dk), positions contiguous */
        if (gamma == 2.0) FOCAL_CALL(ELEM_F32, sC, 1, gC, 1, 2.0);
        else FOCAL_CALL(ELEM_F32, sC, 1, gC, 1, gamma);
    } else if (!is_double) {
        FOCAL_CALL(ELEM_F32, sC, sS, gC, gS, gamma);
    } else {
        focal_blocks_double((const char *)z, ELEM_F64, S, C, sB, sC, sS, target, alpha_t, gamma, scale, loss,
                            (char *)grad, gB, gC, gS, need_grad, block_begin, block_end, (double *)memory, group,
                            row_scratch);
    }
    free(memory);
    return 0;
}

/* The exported entry point: the blocks of a (B, C, S) input, split between `threads` OpenMP threads. Linked against
 * the OpenMP runtime that torch has already loaded (same soname), so it shares torch's thread pool instead of
 * competing with it; one thread runs without a parallel region. Returns 1 if out of memory. */
int focal_forward(const void *z, int element, int64_t B, int64_t S, int64_t C, int64_t sB, int64_t sC, int64_t sS,
                  const int64_t *target, const double *alpha_t, double gamma, double scale, double *loss, void *grad,
                  int64_t gB, int64_t gC, int64_t gS, int need_grad, int threads) {
    const int64_t blocks = focal_blocks_count(B, S, C, sC, gC, element);
    if (threads <= 1)
        return focal_share(z, element, S, C, sB, sC, sS, target, alpha_t, gamma, scale, loss, grad, gB, gC, gS,
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
        failed |= focal_share(z, element, S, C, sB, sC, sS, target, alpha_t, gamma, scale, loss, grad, gB, gC, gS,
                              need_grad, blocks * id / count, blocks * (id + 1) / count);
    }
    return failed;
}
