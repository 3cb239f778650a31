/* The fast adapter's CPU kernel (rns_ros/core/adapter/native.py compiles this file on first use;
 * adapter/fast.py drives it): the subspace steps as one compiled loop, and the softmax + residual
 * of an exact step (rns_softmax_residual), whose two full matmuls stay torch's BLAS calls.
 *
 * The math is that of fast._run_subspace, step for step: with P = [W | b | 0] (C, W),
 * the orthonormal basis B (R, W), the training rows' coordinates A (M, R) and the residual terms
 * held since the last exact refresh,
 *     logits   = held_logits + (P B^T) A^T                  (C, M), class-major
 *     residual = softmax_classes(logits) * prob_scale + neg_target
 *     grad     = held_grad + (residual A) B                 (C, W)
 * then one Adam/AdamW step on P with torch's fused-kernel formulas. Written with explicit 8-lane
 * vectors (GCC/Clang vector extensions) so that every reduction has its own accumulators and
 * nothing depends on fast-math flags; eight lanes are one AVX2 register or two NEON registers.
 * Rows (M) and the width (W) must be multiples of 8; padded rows carry prob_scale = 0 and
 * neg_target = 0, so their residual is exactly 0 and they contribute nothing.
 */
#include <math.h>
#include <stddef.h>
#include <string.h>

#define LANES 8
typedef float vf __attribute__((vector_size(LANES * sizeof(float)), aligned(sizeof(float)), may_alias));
typedef int vi __attribute__((vector_size(LANES * sizeof(int)), aligned(sizeof(int)), may_alias));

struct rns_subspace {
    int classes, rows, width, rank;      /* C, M (multiple of 8), W (multiple of 8), R */
    float *params, *exp_avg, *exp_avg_sq; /* (C, W) P and Adam's moments, updated in place */
    const float *basis;                   /* (R, W) B, orthonormal rows */
    const float *coords_t;                /* (R, M) A^T */
    const float *held_logits;             /* (C, M) E P^T at the last refresh */
    const float *held_grad;               /* (C, W) residual^T E at the last refresh */
    const float *neg_target;              /* (C, M) -a y */
    const float *prob_scale;              /* (M) a s_y */
    float *residual;                      /* (C, M) out: the last row pass's residual */
    float *projected;                     /* (C, R) P B^T, kept current by the width pass */
    float *coord_grad;                    /* (C, R) residual A, from the last row pass */
    float *scratch;                       /* max(C W, 2 M) floats */
    float lr, beta1, beta2, weight_decay, eps;
    int decoupled;                        /* 1: AdamW (decay on P); 0: Adam (L2 term in the gradient) */
};

static inline vf load(const float *p) { return *(const vf *)p; }
static inline void store(float *p, vf x) { *(vf *)p = x; }
static inline vf splat(float x) { return (vf){x, x, x, x, x, x, x, x}; }
static inline vf vmax(vf a, vf b) {
    const vi a_wins = a > b;                                /* lanes: -1 (all bits) or 0 */
    return (vf)((a_wins & (vi)a) | (~a_wins & (vi)b));
}

static inline float hsum(vf x) {
    float s = 0.f;
    for (int k = 0; k < LANES; ++k) s += x[k];
    return s;
}

static inline vf vsqrt(vf x) {
    for (int k = 0; k < LANES; ++k) x[k] = sqrtf(x[k]);
    return x;
}

/* exp(x) for x <= 0 (logits minus their column maximum), within about 1 ulp: Cephes' expf
 * polynomial after reducing by n ln 2, n = round(x / ln 2) taken with the 1.5 * 2^23 rounding
 * trick (its low bits are n). Below -87.3, where expf leaves the normal floats, it returns 0
 * (such a class has probability < 1e-37 next to the maximum's 1). */
static inline vf vexp_nonpositive(vf x) {
    const vi normal = x >= splat(-87.3f);                   /* lanes: -1 (all bits) or 0 */
    const vf shifter = splat(12582912.0f);                 /* 1.5 * 2^23 */
    const vf rounded = x * splat(1.44269504088896341f) + shifter;
    const vf n = rounded - shifter;
    x = x - n * splat(0.693359375f) - n * splat(-2.12194440e-4f);
    vf p = splat(1.9875691500E-4f);
    p = p * x + splat(1.3981999507E-3f);
    p = p * x + splat(8.3334519073E-3f);
    p = p * x + splat(4.1665795894E-2f);
    p = p * x + splat(1.6666665459E-1f);
    p = p * x + splat(5.0000001201E-1f);
    p = p * x * x + x + splat(1.0f);
    const vi two_to_n = ((vi)rounded - (vi)shifter + 127) << 23;
    return (vf)((vi)(p * (vf)two_to_n) & normal);      /* garbage lanes (x < -87.3) -> +0 */
}

/* out[a][k] = base[a][k] + sum_b coef[a][b] y[b][k] for a < na, k < len (a multiple of 8).
 * Blocks of 4 rows x 16 columns of out: each coefficient is broadcast once for two vectors, each
 * vector of y is loaded once for four rows. coef is (na, nb) row-major. */
static void combine(int na, int nb, int len, const float *coef, const float *y, int ldy,
                    const float *base, int ldbase, float *out, int ldout) {
    int a = 0;
    for (; a + 4 <= na; a += 4) {
        const float *c0 = coef + (size_t)a * nb, *c1 = c0 + nb, *c2 = c1 + nb, *c3 = c2 + nb;
        const float *b0 = base + (size_t)a * ldbase, *b1 = b0 + ldbase, *b2 = b1 + ldbase, *b3 = b2 + ldbase;
        float *o0 = out + (size_t)a * ldout, *o1 = o0 + ldout, *o2 = o1 + ldout, *o3 = o2 + ldout;
        int k = 0;
        for (; k + 2 * LANES <= len; k += 2 * LANES) {
            vf s0 = load(b0 + k), s1 = load(b1 + k), s2 = load(b2 + k), s3 = load(b3 + k);
            vf t0 = load(b0 + k + LANES), t1 = load(b1 + k + LANES), t2 = load(b2 + k + LANES), t3 = load(b3 + k + LANES);
            for (int b = 0; b < nb; ++b) {
                const vf u = load(y + (size_t)b * ldy + k), w = load(y + (size_t)b * ldy + k + LANES);
                const vf f0 = splat(c0[b]), f1 = splat(c1[b]), f2 = splat(c2[b]), f3 = splat(c3[b]);
                s0 += f0 * u; s1 += f1 * u; s2 += f2 * u; s3 += f3 * u;
                t0 += f0 * w; t1 += f1 * w; t2 += f2 * w; t3 += f3 * w;
            }
            store(o0 + k, s0); store(o1 + k, s1); store(o2 + k, s2); store(o3 + k, s3);
            store(o0 + k + LANES, t0); store(o1 + k + LANES, t1); store(o2 + k + LANES, t2); store(o3 + k + LANES, t3);
        }
        for (; k < len; k += LANES) {
            vf s0 = load(b0 + k), s1 = load(b1 + k), s2 = load(b2 + k), s3 = load(b3 + k);
            for (int b = 0; b < nb; ++b) {
                const vf u = load(y + (size_t)b * ldy + k);
                s0 += splat(c0[b]) * u; s1 += splat(c1[b]) * u; s2 += splat(c2[b]) * u; s3 += splat(c3[b]) * u;
            }
            store(o0 + k, s0); store(o1 + k, s1); store(o2 + k, s2); store(o3 + k, s3);
        }
    }
    for (; a < na; ++a)
        for (int k = 0; k < len; k += LANES) {
            vf sum = load(base + (size_t)a * ldbase + k);
            for (int b = 0; b < nb; ++b) sum += splat(coef[(size_t)a * nb + b]) * load(y + (size_t)b * ldy + k);
            store(out + (size_t)a * ldout + k, sum);
        }
}

/* out[a][b] = sum_k x[a][k] y[b][k] for a < na, b < nb, k < len (a multiple of 8); blocks of
 * 2 x 4 dot products share their loads, each with its own accumulator. out is (na, nb). */
static void dots(int na, int nb, int len, const float *x, int ldx, const float *y, int ldy, float *out) {
    int a = 0;
    for (; a + 2 <= na; a += 2) {
        const float *x0 = x + (size_t)a * ldx, *x1 = x0 + ldx;
        int b = 0;
        for (; b + 4 <= nb; b += 4) {
            const float *y0 = y + (size_t)b * ldy, *y1 = y0 + ldy, *y2 = y1 + ldy, *y3 = y2 + ldy;
            vf s00 = splat(0.f), s01 = s00, s02 = s00, s03 = s00, s10 = s00, s11 = s00, s12 = s00, s13 = s00;
            for (int k = 0; k < len; k += LANES) {
                const vf u = load(x0 + k), w = load(x1 + k);
                const vf v0 = load(y0 + k), v1 = load(y1 + k), v2 = load(y2 + k), v3 = load(y3 + k);
                s00 += u * v0; s01 += u * v1; s02 += u * v2; s03 += u * v3;
                s10 += w * v0; s11 += w * v1; s12 += w * v2; s13 += w * v3;
            }
            float *o0 = out + (size_t)a * nb + b, *o1 = o0 + nb;
            o0[0] = hsum(s00); o0[1] = hsum(s01); o0[2] = hsum(s02); o0[3] = hsum(s03);
            o1[0] = hsum(s10); o1[1] = hsum(s11); o1[2] = hsum(s12); o1[3] = hsum(s13);
        }
        for (; b < nb; ++b) {
            const float *yb = y + (size_t)b * ldy;
            vf s0 = splat(0.f), s1 = s0;
            for (int k = 0; k < len; k += LANES) {
                const vf v = load(yb + k);
                s0 += load(x0 + k) * v;
                s1 += load(x1 + k) * v;
            }
            out[(size_t)a * nb + b] = hsum(s0);
            out[(size_t)(a + 1) * nb + b] = hsum(s1);
        }
    }
    for (; a < na; ++a)
        for (int b = 0; b < nb; ++b) {
            vf even = splat(0.f), odd = even;
            int k = 0;
            for (; k + 2 * LANES <= len; k += 2 * LANES) {
                even += load(x + (size_t)a * ldx + k) * load(y + (size_t)b * ldy + k);
                odd += load(x + (size_t)a * ldx + k + LANES) * load(y + (size_t)b * ldy + k + LANES);
            }
            for (; k < len; k += LANES) even += load(x + (size_t)a * ldx + k) * load(y + (size_t)b * ldy + k);
            out[(size_t)a * nb + b] = hsum(even + odd);
        }
}

/* In place on the class-major (C, M) logits L: L = softmax_classes(L) * prob_scale + neg_target,
 * the residual a s_y softmax(z) - a y. The softmax runs as passes along contiguous rows of L
 * (column maxima, exps and their sums, one scale per column). scratch: 2 M floats. */
void rns_softmax_residual(int C, int M, float *L, const float *prob_scale, const float *neg_target,
                          float *scratch) {
    float *top = scratch, *scale = top + M;
    memcpy(top, L, sizeof(float) * M);
    for (int c = 1; c < C; ++c)
        for (int i = 0; i < M; i += LANES) store(top + i, vmax(load(top + i), load(L + (size_t)c * M + i)));
    memset(scale, 0, sizeof(float) * M);
    for (int c = 0; c < C; ++c)
        for (int i = 0; i < M; i += LANES) {
            const vf e = vexp_nonpositive(load(L + (size_t)c * M + i) - load(top + i));
            store(L + (size_t)c * M + i, e);
            store(scale + i, load(scale + i) + e);
        }
    for (int i = 0; i < M; i += LANES) store(scale + i, load(prob_scale + i) / load(scale + i));
    for (int c = 0; c < C; ++c)
        for (int i = 0; i < M; i += LANES)
            store(L + (size_t)c * M + i, load(L + (size_t)c * M + i) * load(scale + i) + load(neg_target + (size_t)c * M + i));
}

/* residual (class-major logits first, then in place) and coord_grad from the current projected. */
void rns_row_pass(const struct rns_subspace *s) {
    const int C = s->classes, M = s->rows, R = s->rank;
    float *L = s->residual;
    combine(C, R, M, s->projected, s->coords_t, M, s->held_logits, M, L, M);  /* logits */
    rns_softmax_residual(C, M, L, s->prob_scale, s->neg_target, s->scratch);
    dots(C, R, M, L, M, s->coords_t, M, s->coord_grad);  /* residual A */
}

/* grad from coord_grad, Adam step number `step` (1-based) on P, then projected = P B^T. */
void rns_width_pass(const struct rns_subspace *s, int step) {
    const int C = s->classes, W = s->width, R = s->rank;
    float *grad = s->scratch;  /* (C, W) */
    combine(C, R, W, s->coord_grad, s->basis, W, s->held_grad, W, grad, W);
    const double bc1 = 1.0 - pow(s->beta1, step), bc2 = 1.0 - pow(s->beta2, step);
    const vf step_size = splat((float)(s->lr / bc1)), bc2_sqrt = splat((float)sqrt(bc2));
    const vf decay = splat(1.f - s->lr * s->weight_decay), l2 = splat(s->weight_decay);
    const vf beta1c = splat(1.f - s->beta1), beta2 = splat(s->beta2), beta2c = splat(1.f - s->beta2);
    const vf eps = splat(s->eps);
    for (size_t j = 0; j < (size_t)C * W; j += LANES) {  /* torch's fused Adam(W) formulas */
        vf g = load(grad + j), p = load(s->params + j), m = load(s->exp_avg + j), v = load(s->exp_avg_sq + j);
        if (s->decoupled) p *= decay; else g += l2 * p;
        m += beta1c * (g - m);
        v = v * beta2 + g * g * beta2c;
        p -= step_size * m / (vsqrt(v) / bc2_sqrt + eps);
        store(s->params + j, p); store(s->exp_avg + j, m); store(s->exp_avg_sq + j, v);
    }
    dots(C, R, W, s->params, W, s->basis, W, s->projected);
}

/* projected = P B^T (before the first step). */
void rns_project(const struct rns_subspace *s) {
    dots(s->classes, s->rank, s->width, s->params, s->width, s->basis, s->width, s->projected);
}

/* `count` whole steps numbered first, first + 1, ... (1-based). */
void rns_steps(const struct rns_subspace *s, int first, int count) {
    for (int k = 0; k < count; ++k) {
        rns_row_pass(s);
        rns_width_pass(s, first + k);
    }
}
