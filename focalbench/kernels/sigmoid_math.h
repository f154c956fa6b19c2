/*
 * The arithmetic the elementwise sigmoid kernels share (sigmoid_cpu.c: RetinaNet's focal loss; quality_cpu.c: Quality
 * Focal Loss; varifocal_cpu.c: Varifocal Loss): per element, e = exp(-|x|), r = 1 / (1 + e) and L = log1p(e), from
 * which p = sigmoid(x), q = 1 - p and both softplus terms follow without cancellation; and the split of n elements into
 * chunks between OpenMP threads, so that a sum over chunks does not depend on the number of threads. Included after
 * focal_math.h by each kernel's source (each is built into a library of its own).
 */
#ifndef SIGMOID_MATH_H
#define SIGMOID_MATH_H

#include "focal_math.h"

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
    /* m = u / 2 by the exponent bits: with `big ? u * 0.5f : u` (or u times a selected constant) GCC evaluates the
     * series, and its division, for both m and blends the two (u is normal: the exponent step is exact) */
    int32_t bits;
    memcpy(&bits, &u, 4);
    bits -= big << 23;
    float m;
    memcpy(&m, &bits, 4);
    const float f = (m - 1.0f) / (m + 1.0f);
    const float f2 = f * f;
    float p = 1.0f / 9.0f;
    p = FMAF(p, f2, 1.0f / 7.0f);
    p = FMAF(p, f2, 1.0f / 5.0f);
    p = FMAF(p, f2, 1.0f / 3.0f);
    const float log_m = FMAF(2.0f * f * f2, p, 2.0f * f);
    return log_m + (big ? 0.693147182f : 0.0f);
}

/* log(m) for 0 < m <= 1, subnormal m included (a float64 soft target of 1e-310): log_pos needs a normal number. */
static inline __attribute__((always_inline)) double log_unit(double m) {
    const int tiny = m < 2.2250738585072014e-308;
    return log_pos(tiny ? m * 18014398509481984.0 : m) - (tiny ? 37.42994775023704 : 0.0); /* 2^54, 54 ln 2 */
}

static inline __attribute__((always_inline)) float sigmoid_exp_f32(float x) {
    const float ax = x < 0.0f ? -x : x;
    return expf_wide(-ax);
}

static inline __attribute__((always_inline)) void sigmoid_log_f32(float e, float *r, float *L) {
    const float u = 1.0f + e;
    *r = 1.0f / u;
    *L = logf_1_2(u) + (e - (u - 1.0f)) * *r; /* log1p(e): log(u) corrected by u's rounding error */
}

static inline __attribute__((always_inline)) double sigmoid_exp_f64(double x) {
    const double ax = x < 0.0 ? -x : x;
    return exp_nonpos(-ax);
}

static inline __attribute__((always_inline)) void sigmoid_log_f64(double e, double *r, double *L) {
    *L = log1p_unit(e);
    *r = 1.0 / (1.0 + e);
}

/* Chunks [0, chunks) through body(context, c0, c1), split in contiguous ranges between `threads` OpenMP threads
 * (none for one thread): chunk c is always computed whole by one thread, so per-chunk partial sums, added in chunk
 * order, give the same total at any number of threads. */
static inline void run_chunks(int64_t chunks, int threads, void (*body)(const void *, int64_t, int64_t),
                              const void *context) {
    if (threads <= 1) {
        body(context, 0, chunks);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
    {
#ifdef _OPENMP
        const int64_t id = omp_get_thread_num(), count = omp_get_num_threads();
#else
        const int64_t id = 0, count = 1;
#endif
        body(context, chunks * id / count, chunks * (id + 1) / count);
    }
}

#endif /* SIGMOID_MATH_H */
