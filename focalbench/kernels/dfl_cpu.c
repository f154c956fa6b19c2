/*
 * Distribution Focal Loss (Li et al., GFL, 2020), the dfl family's CPU kernel: loss and gradient in one pass over each
 * row's n bins (bins last: logits (rows, n) contiguous, one continuous target per row in [0, n - 1]).
 *
 * Built at first use by focalbench.kernels.build into a library of its own (a compile error here leaves the other
 * families' kernels working); exp_nonpos, log1p_unit (focal_math.h) and run_chunks (sigmoid_math.h) are shared.
 * Called through ctypes (focalbench.kernels.dfl_cpu); the derivation is in focalbench/kernels/dfl_eager.py.
 *
 * Per row, with m = max_j z_j, e_j = exp(z_j - m) and M = {j : e_j == 1} (the maximum and its ties):
 *   y_l = min(floor(y), n - 2), y_r = y_l + 1, w_l = y_r - y, w_r = y - y_l (exact: y - floor(y) is, and so is
 *   y_r - y but for y < 1, where it rounds once);
 *   R = sum_{j not in M} e_j + (|M| - 1)   (T = sum_j e_j = 1 + R, never formed as T - 1: a confident row's R is
 *                                          far below 1 and keeps its digits);
 *   loss = w_l (m - z_l) + w_r (m - z_r) + log1p(R)   (three non-negative terms: no cancellation; a term whose weight
 *                                                      is 0 is 0, even at a logit of -inf);
 *   grad_j = e_j / T - w_j off M;  (1 - w_j) - R / T on M (p_j = 1 / T = 1 - R / T there: no 1 - p cancellation at a
 *            confident row), 1 - w_j being w_r at y_l, w_l at y_r and 1 elsewhere (exact).
 * Limits, as F.cross_entropy with the two-hot target takes them: a -inf bin has e_j = 0 (a target bin at -inf gives
 * +inf and the gradient -w_j there); a +inf logit (z_j - m = inf - inf) and a NaN make the row's loss and gradient NaN.
 *
 * Arithmetic: float32 logits are read and the gradient written in float32, everything between is double. Where the
 * row is near its optimum (p_j ~ w_j at a target bin) the gradient is a small difference of two probabilities: a
 * float32 exponential (its rounding alone, 3e-8 of p_j) would leave 2e-6 of a gradient of 0.01; in double the
 * gradient is the float32 rounding of a value exact to ~1e-15. The difference z_j - m of two float32 numbers is exact
 * in double, and the exponentials keep the subnormal range (dfl_exp_diff), so a confident row (R = e^-100) keeps its
 * digits with no second pass.
 *
 * Steps, 16 rows a block (one per SIMD lane: rows with n < DFL_ROW_MIN_BINS bins):
 *   0. targets: bins and weights; a target outside [0, n - 1] (NaN included) is counted and read as 0;
 *   1. the block's rows into a bin-major buffer (16 x 16 float32 register tiles where the target has AVX-512, 8 x 8
 *      with AVX2; the bins past the last whole tile one by one), m, z_l, z_r;
 *   2. e_j in double, and R's two sums (two chains: even and odd bins);
 *   3. per row: R, log1p(R), the loss, 1 / T and R / T (the reduction's scale folded in);
 *   4. the gradient, over the buffer in the logits' type, then back to the rows.
 * Rows of n >= DFL_ROW_MIN_BINS bins go one at a time, vectorized along the bins (the exponentials computed again in
 * the gradient's pass rather than stored).
 * With loss == NULL the loss is summed per chunk of DFL_CHUNK rows into partial[], in row order, and the chunks in
 * order, so the total does not depend on the number of threads; with grad == NULL no gradient is written; scale (the
 * reduction's) multiplies the gradient and the total.
 */
#include "focal_math.h"
#include "sigmoid_math.h"
#include "transpose.h"

#define DFL_LANES 16
#define DFL_CHUNK 512        /* rows per partial sum (a multiple of DFL_LANES) */
#define DFL_ROW_MIN_BINS 128 /* from here on rows go one at a time (a block's buffers would leave L1) */
#define DFL_ROW_CHAINS 32    /* independent partial maxima and sums of a long row (4 AVX-512 vectors of double) */

/* exp(z - m) for z <= m, in double (z - m is exact for float32 logits and rounds by at most |z - m| 2^-53 for
 * float64 ones), down into the subnormal range: exp_nonpos is 0 below -708, where a term still counts in a normal R
 * (e^-708.5 beside e^-685.3 is 8.6e-11 of it), so a difference below -700 is taken 64 higher (exactly: the same
 * binade) and scaled by e^-64. -inf gives 0; NaN, and a +inf maximum (inf - inf), NaN. */
static inline __attribute__((always_inline)) double dfl_exp_diff(double z, double m) {
    const double x = z - m;
    const int deep = x < -700.0;
    return exp_nonpos(deep ? x + 64.0 : x) * (deep ? 1.603810890548637853e-28 : 1.0);
}

/* R's two sums, per bin: e where it is below 1, and 1 where it is not (a bin of M). A NaN reaches R through the first
 * (NaN * 0 is NaN). Written as a product with the comparison's value: GCC turned the select `e >= 1 ? 0 : e` into a
 * branch and left the loop over the lanes scalar (4x slower). */
#define DFL_OFF_TOP(e) ((e) * (double)((e) < 1.0))
#define DFL_ON_TOP(e) ((double)((e) >= 1.0))

/* --- the bin-major buffer of a block: buf[j * DFL_LANES + l] = logit j of row l (rows past `rows` zero) ---------- */
#if defined(__AVX512F__)
#include <immintrin.h>
#define DFL_TILES 16
/* bins [j0, j0 + 16) of `rows` rows (row stride n) into the buffer, and back */
static inline __attribute__((always_inline)) void dfl_tile_in(const float *src, int64_t rows, int64_t n, int64_t j0,
                                                               float *dst) {
    __m512 r[16];
    for (int l = 0; l < 16; ++l) r[l] = l < rows ? _mm512_loadu_ps(src + l * n + j0) : _mm512_setzero_ps();
    transpose16(r);
    for (int k = 0; k < 16; ++k) _mm512_storeu_ps(dst + (j0 + k) * DFL_LANES, r[k]);
}
static inline __attribute__((always_inline)) void dfl_tile_out(const float *src, int64_t rows, int64_t n, int64_t j0,
                                                                float *dst) {
    __m512 r[16];
    for (int k = 0; k < 16; ++k) r[k] = _mm512_loadu_ps(src + (j0 + k) * DFL_LANES);
    transpose16(r);
    for (int l = 0; l < rows; ++l) _mm512_storeu_ps(dst + l * n + j0, r[l]);
}
#elif defined(__AVX2__)
#include <immintrin.h>
#define DFL_TILES 8
/* bins [j0, j0 + 8) of `rows` rows into the buffer (two 8 x 8 tiles: lanes 0-7 and 8-15), and back */
static inline __attribute__((always_inline)) void dfl_tile_in(const float *src, int64_t rows, int64_t n, int64_t j0,
                                                               float *dst) {
    for (int h = 0; h < 16; h += 8) {
        __m256 r[8];
        for (int l = 0; l < 8; ++l)
            r[l] = h + l < rows ? _mm256_loadu_ps(src + (h + l) * n + j0) : _mm256_setzero_ps();
        transpose8(r);
        for (int k = 0; k < 8; ++k) _mm256_storeu_ps(dst + (j0 + k) * DFL_LANES + h, r[k]);
    }
}
static inline __attribute__((always_inline)) void dfl_tile_out(const float *src, int64_t rows, int64_t n, int64_t j0,
                                                                float *dst) {
    for (int h = 0; h < 16 && h < rows; h += 8) {
        __m256 r[8];
        for (int k = 0; k < 8; ++k) r[k] = _mm256_loadu_ps(src + (j0 + k) * DFL_LANES + h);
        transpose8(r);
        for (int l = 0; l < 8 && h + l < rows; ++l) _mm256_storeu_ps(dst + (h + l) * n + j0, r[l]);
    }
}
#else
#define DFL_TILES 0
static inline void dfl_tile_in(const float *src, int64_t rows, int64_t n, int64_t j0, float *dst) {
    (void)src, (void)rows, (void)n, (void)j0, (void)dst;
}
static inline void dfl_tile_out(const float *src, int64_t rows, int64_t n, int64_t j0, float *dst) {
    (void)src, (void)rows, (void)n, (void)j0, (void)dst;
}
#endif

/* A block's rows into the buffer and its gradient back: whole register tiles where the bins allow (float32), the
 * remaining bins (n = 17: one) one by one. */
#define DEFINE_DFL_COPIES(T, TILED)                                                                                 \
    static inline __attribute__((always_inline)) void dfl_copy_in_##T(const T *restrict src, int64_t rows,          \
                                                                      int64_t n, T *restrict buf) {                 \
        int64_t j0 = 0;                                                                                             \
        if (TILED && DFL_TILES)                                                                                     \
            for (; j0 + DFL_TILES <= n; j0 += DFL_TILES)                                                            \
                dfl_tile_in((const float *)src, rows, n, j0, (float *)buf);                                         \
        if (j0 == n) return;                                                                                        \
        if (rows < DFL_LANES)                                                                                       \
            for (int64_t j = j0; j < n; ++j)                                                                        \
                for (int64_t l = rows; l < DFL_LANES; ++l) buf[j * DFL_LANES + l] = 0;                              \
        for (int64_t l = 0; l < rows; ++l)                                                                          \
            for (int64_t j = j0; j < n; ++j) buf[j * DFL_LANES + l] = src[l * n + j];                               \
    }                                                                                                               \
    static inline __attribute__((always_inline)) void dfl_copy_out_##T(const T *restrict buf, int64_t rows,         \
                                                                       int64_t n, T *restrict dst) {                \
        int64_t j0 = 0;                                                                                             \
        if (TILED && DFL_TILES)                                                                                     \
            for (; j0 + DFL_TILES <= n; j0 += DFL_TILES)                                                            \
                dfl_tile_out((const float *)buf, rows, n, j0, (float *)dst);                                        \
        for (int64_t l = 0; l < rows; ++l)                                                                          \
            for (int64_t j = j0; j < n; ++j) dst[l * n + j] = buf[j * DFL_LANES + l];                               \
    }
DEFINE_DFL_COPIES(float, 1)
DEFINE_DFL_COPIES(double, 0)

/* Step 0 for one target: its two bins (y_l; y_r = y_l + 1), their weights in double and whether it is inside
 * [0, n - 1] (a target outside is read as 0: never a read outside the row). */
#define DFL_TARGET(T, v, n, ok, yl, wl, wr)                                                                         \
    do {                                                                                                            \
        ok = (v) >= (T)0 && (v) <= (T)((n) - 1);                                                                    \
        const T c_ = ok ? (v) : (T)0;                                                                               \
        int32_t k_ = (int32_t)c_;                                                                                   \
        k_ = k_ > (int32_t)((n) - 2) ? (int32_t)((n) - 2) : k_;                                                     \
        yl = k_;                                                                                                    \
        wr = (double)c_ - (double)k_;                                                                               \
        wl = (double)(k_ + 1) - (double)c_;                                                                         \
    } while (0)

/* Step 3's loss: three non-negative terms; a weight of 0 contributes 0 whatever its logit (-inf: 0, not 0 * inf). */
static inline __attribute__((always_inline)) double dfl_row_loss(double m, double zl, double zr, double wl, double wr,
                                                                 double rest) {
    return (wl > 0.0 ? wl * (m - zl) : 0.0) + (wr > 0.0 ? wr * (m - zr) : 0.0) + log1p_unit(rest);
}

/* dfl_block_T: steps 0-4 on one block of `rows` (<= DFL_LANES) rows of n bins at z, targets at y; the loss per row to
 * loss (WANT_LOSS) or summed in row order into the return value; the gradient to grad (WANT_GRAD); the targets
 * outside [0, n - 1] added to *outside. zbuf holds the block in the logits' type (then its gradient), ebuf its
 * exponentials (16 x n each; for float64 logits the same buffer).
 *
 * dfl_row_T: the same for one long row, vectorized along its bins. */
#define DEFINE_DFL_KERNELS(T)                                                                                       \
    static inline __attribute__((always_inline)) double dfl_block_##T(                                              \
        const T *restrict z, const T *restrict y, int64_t rows, int64_t n, double scale, T *restrict loss,          \
        T *restrict grad, int64_t *restrict outside, T *zbuf, double *ebuf, const int want_loss,                    \
        const int want_grad) {                                                                                      \
        T yv[DFL_LANES];                                                                                            \
        for (int l = 0; l < DFL_LANES; ++l) yv[l] = l < rows ? y[l] : (T)0;                                         \
        /* 0. targets */                                                                                            \
        int32_t yl[DFL_LANES];                                                                                      \
        double wl[DFL_LANES], wr[DFL_LANES];                                                                        \
        int32_t bad = 0;                                                                                            \
        _Pragma("omp simd reduction(+ : bad)") for (int l = 0; l < DFL_LANES; ++l) {                                \
            int ok;                                                                                                 \
            DFL_TARGET(T, yv[l], n, ok, yl[l], wl[l], wr[l]);                                                       \
            bad += !ok;                                                                                             \
        }                                                                                                           \
        *outside += bad;                                                                                            \
        /* 1. the rows into the buffer; maximum and the two target bins' logits */                                  \
        dfl_copy_in_##T(z, rows, n, zbuf);                                                                          \
        T mx[DFL_LANES], zl[DFL_LANES], zr[DFL_LANES];                                                              \
        for (int l = 0; l < DFL_LANES; ++l) mx[l] = -INFINITY, zl[l] = zr[l] = 0;                                   \
        for (int32_t j = 0; j < (int32_t)n; ++j) {                                                                  \
            const T *col = zbuf + j * DFL_LANES;                                                                    \
            _Pragma("omp simd") for (int l = 0; l < DFL_LANES; ++l) {                                               \
                const T x = col[l];                                                                                 \
                mx[l] = x > mx[l] ? x : mx[l];                                                                      \
                zl[l] = j == yl[l] ? x : zl[l];                                                                     \
                zr[l] = j == yl[l] + 1 ? x : zr[l];                                                                 \
            }                                                                                                       \
        }                                                                                                           \
        /* 2. exponentials and R's two sums (two chains: even and odd bins) */                                      \
        double acc[DFL_LANES], ones[DFL_LANES], acc2[DFL_LANES], ones2[DFL_LANES];                                  \
        for (int l = 0; l < DFL_LANES; ++l) acc[l] = ones[l] = acc2[l] = ones2[l] = 0.0;                            \
        int32_t j = 0;                                                                                              \
        for (; j + 1 < (int32_t)n; j += 2) {                                                                        \
            const T *col = zbuf + j * DFL_LANES, *next = col + DFL_LANES;                                           \
            double *ecol = ebuf + j * DFL_LANES, *enext = ecol + DFL_LANES;                                         \
            _Pragma("omp simd") for (int l = 0; l < DFL_LANES; ++l) {                                               \
                const double e = dfl_exp_diff((double)col[l], (double)mx[l]);                                       \
                const double f = dfl_exp_diff((double)next[l], (double)mx[l]);                                      \
                ecol[l] = e, enext[l] = f;                                                                          \
                acc[l] += DFL_OFF_TOP(e);                                                                           \
                ones[l] += DFL_ON_TOP(e);                                                                           \
                acc2[l] += DFL_OFF_TOP(f);                                                                          \
                ones2[l] += DFL_ON_TOP(f);                                                                          \
            }                                                                                                       \
        }                                                                                                           \
        for (; j < (int32_t)n; ++j) {                                                                               \
            const T *col = zbuf + j * DFL_LANES;                                                                    \
            double *ecol = ebuf + j * DFL_LANES;                                                                    \
            _Pragma("omp simd") for (int l = 0; l < DFL_LANES; ++l) {                                               \
                const double e = dfl_exp_diff((double)col[l], (double)mx[l]);                                       \
                ecol[l] = e;                                                                                        \
                acc[l] += DFL_OFF_TOP(e);                                                                           \
                ones[l] += DFL_ON_TOP(e);                                                                           \
            }                                                                                                       \
        }                                                                                                           \
        /* 3. per row */                                                                                            \
        double row_loss[DFL_LANES], inv_t[DFL_LANES], rest_t[DFL_LANES];                                            \
        _Pragma("omp simd") for (int l = 0; l < DFL_LANES; ++l) {                                                   \
            const double r = ((ones[l] + ones2[l]) - 1.0) + (acc[l] + acc2[l]);                                     \
            inv_t[l] = scale / (1.0 + r);                                                                           \
            rest_t[l] = r * inv_t[l];                                                                               \
            row_loss[l] = dfl_row_loss((double)mx[l], (double)zl[l], (double)zr[l], wl[l], wr[l], r);               \
        }                                                                                                           \
        /* 4. gradient: e_j / T - w_j off M, (1 - w_j) - R / T on M (scale folded in) */                            \
        if (want_grad) {                                                                                            \
            for (int32_t j = 0; j < (int32_t)n; ++j) {                                                              \
                const double *ecol = ebuf + j * DFL_LANES;                                                          \
                T *col = zbuf + j * DFL_LANES;                                                                      \
                _Pragma("omp simd") for (int l = 0; l < DFL_LANES; ++l) {                                           \
                    const double e = ecol[l];                                                                       \
                    const int at_l = j == yl[l], at_r = j == yl[l] + 1;                                             \
                    const double w = (at_l ? wl[l] : at_r ? wr[l] : 0.0) * scale;                                   \
                    const double rest_w = (at_l ? wr[l] : at_r ? wl[l] : 1.0) * scale;                              \
                    col[l] = (T)(e >= 1.0 ? rest_w - rest_t[l] : e * inv_t[l] - w);                                 \
                }                                                                                                   \
            }                                                                                                       \
            dfl_copy_out_##T(zbuf, rows, n, grad);                                                                  \
        }                                                                                                           \
        double sum = 0.0;                                                                                           \
        for (int64_t l = 0; l < rows; ++l) {                                                                        \
            if (want_loss) loss[l] = (T)row_loss[l];                                                                \
            else sum += row_loss[l];                                                                                \
        }                                                                                                           \
        return sum;                                                                                                 \
    }                                                                                                               \
    static inline __attribute__((always_inline)) double dfl_row_##T(const T *restrict z, T target, int64_t n,       \
                                                                    double scale, T *restrict grad,                 \
                                                                    int64_t *restrict outside,                      \
                                                                    const int want_grad) {                          \
        int ok;                                                                                                     \
        int32_t yl;                                                                                                 \
        double wl, wr;                                                                                              \
        DFL_TARGET(T, target, n, ok, yl, wl, wr);                                                                   \
        *outside += !ok;                                                                                            \
        /* 1. maximum, in DFL_ROW_CHAINS independent lanes and then a tree */                                       \
        T mxs[DFL_ROW_CHAINS];                                                                                      \
        for (int l = 0; l < DFL_ROW_CHAINS; ++l) mxs[l] = -INFINITY;                                                \
        int64_t j = 0;                                                                                              \
        for (; j + DFL_ROW_CHAINS <= n; j += DFL_ROW_CHAINS) {                                                      \
            _Pragma("omp simd") for (int l = 0; l < DFL_ROW_CHAINS; ++l)                                            \
                mxs[l] = z[j + l] > mxs[l] ? z[j + l] : mxs[l];                                                     \
        }                                                                                                           \
        for (int64_t l = 0; j < n; ++j, ++l) mxs[l] = z[j] > mxs[l] ? z[j] : mxs[l];                                \
        for (int w = DFL_ROW_CHAINS / 2; w > 0; w /= 2)                                                             \
            _Pragma("omp simd") for (int l = 0; l < w; ++l) mxs[l] = mxs[l + w] > mxs[l] ? mxs[l + w] : mxs[l];     \
        const double m = (double)mxs[0];                                                                            \
        /* 2. R's sums over independent lanes */                                                                    \
        double acc[DFL_ROW_CHAINS], ones[DFL_ROW_CHAINS];                                                           \
        for (int l = 0; l < DFL_ROW_CHAINS; ++l) acc[l] = ones[l] = 0.0;                                            \
        for (j = 0; j < n; j += DFL_ROW_CHAINS) {                                                                   \
            const int64_t len = n - j < DFL_ROW_CHAINS ? n - j : DFL_ROW_CHAINS;                                    \
            _Pragma("omp simd") for (int64_t l = 0; l < len; ++l) {                                                 \
                const double e = dfl_exp_diff((double)z[j + l], m);                                                 \
                acc[l] += DFL_OFF_TOP(e);                                                                           \
                ones[l] += DFL_ON_TOP(e);                                                                           \
            }                                                                                                       \
        }                                                                                                           \
        for (int w = DFL_ROW_CHAINS / 2; w > 0; w /= 2)                                                             \
            _Pragma("omp simd") for (int l = 0; l < w; ++l) acc[l] += acc[l + w], ones[l] += ones[l + w];           \
        /* 3. per-row terms */                                                                                      \
        const double r = (ones[0] - 1.0) + acc[0], inv_t = scale / (1.0 + r), rest_t = r * inv_t;                   \
        if (want_grad) {                                                                                            \
            /* 4. gradient: the exponentials again; the two target bins after */                                    \
            _Pragma("omp simd") for (j = 0; j < n; ++j) {                                                           \
                const double e = dfl_exp_diff((double)z[j], m);                                                     \
                grad[j] = (T)(e >= 1.0 ? scale - rest_t : e * inv_t);                                               \
            }                                                                                                       \
            const double e_l = dfl_exp_diff((double)z[yl], m), e_r = dfl_exp_diff((double)z[yl + 1], m);            \
            grad[yl] = (T)(e_l >= 1.0 ? wr * scale - rest_t : e_l * inv_t - wl * scale);                            \
            grad[yl + 1] = (T)(e_r >= 1.0 ? wl * scale - rest_t : e_r * inv_t - wr * scale);                        \
        }                                                                                                           \
        return dfl_row_loss(m, (double)z[yl], (double)z[yl + 1], wl, wr, r);                                        \
    }

DEFINE_DFL_KERNELS(float)
DEFINE_DFL_KERNELS(double)

/* dfl_rows_T_<NBINS>_<WANT_LOSS><WANT_GRAD>: rows [0, rows) of one chunk, in blocks of DFL_LANES (long rows: one at a
 * time); returns the chunk's loss sum (0 when the losses are written). One noinline function per combination, n a
 * compile-time constant for ultralytics' 16 bins and mmdet's 17 (NBINS 0: n at run time). */
#define DEFINE_DFL_VARIANT(T, NBINS, WL, WG)                                                                        \
    static __attribute__((noinline)) double dfl_rows_##T##_##NBINS##_##WL##WG(                                      \
        const T *restrict z, const T *restrict y, int64_t rows, int64_t n, double scale, T *restrict loss,          \
        T *restrict grad, int64_t *restrict outside) {                                                              \
        const int64_t bins = NBINS ? NBINS : n;                                                                     \
        double sum = 0.0;                                                                                           \
        if (NBINS == 0 && bins >= DFL_ROW_MIN_BINS) {                                                               \
            for (int64_t i = 0; i < rows; ++i) {                                                                    \
                const double l = dfl_row_##T(z + i * bins, y[i], bins, scale, WG ? grad + i * bins : NULL,          \
                                             outside, WG);                                                          \
                if (WL) loss[i] = (T)l;                                                                             \
                else sum += l;                                                                                      \
            }                                                                                                       \
            return sum;                                                                                             \
        }                                                                                                           \
        T zbuf[DFL_LANES * (DFL_ROW_MIN_BINS - 1)] __attribute__((aligned(64)));                                    \
        double own_ebuf[sizeof(T) == sizeof(double) ? 1 : DFL_LANES * (DFL_ROW_MIN_BINS - 1)]                       \
            __attribute__((aligned(64)));                                                                           \
        double *ebuf = sizeof(T) == sizeof(double) ? (double *)zbuf : own_ebuf; /* float64: in place */             \
        for (int64_t i = 0; i < rows; i += DFL_LANES) {                                                             \
            const int64_t count = rows - i < DFL_LANES ? rows - i : DFL_LANES;                                      \
            sum += dfl_block_##T(z + i * bins, y + i, count, bins, scale, WL ? loss + i : NULL,                     \
                                 WG ? grad + i * bins : NULL, outside, zbuf, ebuf, WL, WG);                         \
        }                                                                                                           \
        return sum;                                                                                                 \
    }
#define DEFINE_DFL_VARIANTS(T, NBINS)                                                                               \
    DEFINE_DFL_VARIANT(T, NBINS, 0, 0) DEFINE_DFL_VARIANT(T, NBINS, 0, 1)                                           \
    DEFINE_DFL_VARIANT(T, NBINS, 1, 0) DEFINE_DFL_VARIANT(T, NBINS, 1, 1)

typedef double (*dfl_rows_float_fn)(const float *restrict, const float *restrict, int64_t, int64_t, double,
                                    float *restrict, float *restrict, int64_t *restrict);
typedef double (*dfl_rows_double_fn)(const double *restrict, const double *restrict, int64_t, int64_t, double,
                                     double *restrict, double *restrict, int64_t *restrict);
DEFINE_DFL_VARIANTS(float, 16)
DEFINE_DFL_VARIANTS(float, 17)
DEFINE_DFL_VARIANTS(float, 0)
DEFINE_DFL_VARIANTS(double, 0)
/* indexed [bins: 16, 17, other][want_loss][want_grad] */
static const dfl_rows_float_fn dfl_rows_float[3][2][2] = {
    {{dfl_rows_float_16_00, dfl_rows_float_16_01}, {dfl_rows_float_16_10, dfl_rows_float_16_11}},
    {{dfl_rows_float_17_00, dfl_rows_float_17_01}, {dfl_rows_float_17_10, dfl_rows_float_17_11}},
    {{dfl_rows_float_0_00, dfl_rows_float_0_01}, {dfl_rows_float_0_10, dfl_rows_float_0_11}}};
static const dfl_rows_double_fn dfl_rows_double[2][2] = {{dfl_rows_double_0_00, dfl_rows_double_0_01},
                                                         {dfl_rows_double_0_10, dfl_rows_double_0_11}};

struct dfl_call {
    const void *z, *y;
    int is_double;
    int64_t rows, n;
    double scale;
    void *loss;
    double *partial;
    void *grad;
    int64_t *outside;
};

static void dfl_body(const void *context, int64_t c0, int64_t c1) {
    const struct dfl_call *a = (const struct dfl_call *)context;
    const int want_loss = a->loss != NULL, want_grad = a->grad != NULL;
    const int kind = a->n == 16 ? 0 : a->n == 17 ? 1 : 2;
    for (int64_t c = c0; c < c1; ++c) {
        const int64_t r0 = c * DFL_CHUNK, count = a->rows - r0 < DFL_CHUNK ? a->rows - r0 : DFL_CHUNK;
        a->outside[c] = 0;
        double sum;
        if (a->is_double) {
            sum = dfl_rows_double[want_loss][want_grad](
                (const double *)a->z + r0 * a->n, (const double *)a->y + r0, count, a->n, a->scale,
                want_loss ? (double *)a->loss + r0 : NULL, want_grad ? (double *)a->grad + r0 * a->n : NULL,
                a->outside + c);
        } else {
            sum = dfl_rows_float[kind][want_loss][want_grad](
                (const float *)a->z + r0 * a->n, (const float *)a->y + r0, count, a->n, a->scale,
                want_loss ? (float *)a->loss + r0 : NULL, want_grad ? (float *)a->grad + r0 * a->n : NULL,
                a->outside + c);
        }
        if (!want_loss) a->partial[c] = sum;
    }
}

/* The exported entry point: `rows` contiguous rows of n >= 2 bins z and one target y per row (both float32, or both
 * float64); `scale` is the reduction's factor (1 / count for a mean, else 1). Writes the per-row loss to `loss` (the
 * logits' type) or, with loss == NULL, the loss sum of each chunk of DFL_CHUNK rows to `partial` (max(1,
 * ceil(rows / DFL_CHUNK)) doubles) and then, over partial[0], their sum in chunk order times `scale`: the reduced loss,
 * with no reduction left to the caller; the gradient times `scale` to `grad` (rows x n) unless it is NULL; the number of
 * targets outside [0, n - 1] (NaN included) of each chunk to `outside` (as many int64). Chunks are split between
 * `threads` OpenMP threads. Returns the number of targets outside [0, n - 1]: the caller raises when it is not 0, so
 * the targets' range costs no pass of its own. */
int64_t dfl_forward(const void *z, const void *y, int is_double, int64_t rows, int64_t n, double scale, void *loss,
                    double *partial, void *grad, int64_t *outside, int threads) {
    const struct dfl_call call = {z, y, is_double, rows, n, scale, loss, partial, grad, outside};
    const int64_t chunks = (rows + DFL_CHUNK - 1) / DFL_CHUNK;
    run_chunks(chunks, threads, dfl_body, &call);
    int64_t count = 0;
    double total = 0.0;
    for (int64_t c = 0; c < chunks; ++c) {
        count += outside[c];
        total += loss == NULL ? partial[c] : 0.0;
    }
    if (loss == NULL) partial[0] = total * scale;
    return count;
}
