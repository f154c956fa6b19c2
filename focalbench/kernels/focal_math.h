/*
 * The arithmetic the CPU kernels share (focal_cpu.c: the softmax family; sigmoid_cpu.c: the sigmoid family): an
 * exponential and a logarithm written as lane-wise operations, so that the loops that call them vectorize (libm's
 * scalar calls would not), and fma where the target has it. Included by each kernel's source; each source is built
 * into a library of its own, so a compile error in one family's kernel leaves the others working. No fast-math:
 * everything here relies on IEEE rounding, inf and NaN.
 */
#ifndef FOCAL_MATH_H
#define FOCAL_MATH_H

#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

#endif /* FOCAL_MATH_H */
