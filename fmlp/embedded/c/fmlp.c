/* Integer-only inference, the formulas of fmlp/embedded/integer.py (equal to them bit for bit):
 *
 *   acc_j = bias_j + sum_i a_i * code_ij                       (int32)
 *   y_j   = floor((acc_j * multiplier_j + 2^(shift_j - 1)) / 2^shift_j)   (int64 product)
 *
 * then h_j = table[clamp(y_j + FMLP_TABLE_SIZE / 2)] for a hidden layer (uint8, 255 sigmoid) or the
 * logit y_j for the last; the class is the first largest logit. Weights are stored per output unit,
 * FMLP_WEIGHT_BITS bits each, lowest bits first within a byte.
 */
#include "fmlp.h"
#include "fmlp_weights.h"

#define PER_BYTE (8 / FMLP_WEIGHT_BITS)
/* The Cortex-M55's MVE kernel of 8-bit weights reads centred biases; every other build uses dot(). */
#if FMLP_WEIGHT_BITS == 8 && defined(__ARM_FEATURE_MVE) && defined(FMLP_CENTRED_BIAS)
#define MVE_KERNEL 1
#else
#define MVE_KERNEL 0
#endif
#if FMLP_WEIGHT_BITS == 1 && defined(FMLP_SUBSET_TABLES)
#define SUBSET_KERNEL 1
#else
#define SUBSET_KERNEL 0
#endif
#define FIELD_MASK ((1u << FMLP_WEIGHT_BITS) - 1u)

#if !MVE_KERNEL && !SUBSET_KERNEL
/* The code a field stands for: the sign (+1 / -1) at one bit, else the field's two's complement. */
static int32_t decode(unsigned field)
{
#if FMLP_WEIGHT_BITS == 1
    return (int32_t)field * 2 - 1;
#else
    return (int32_t)(field ^ (1u << (FMLP_WEIGHT_BITS - 1))) - (int32_t)(1u << (FMLP_WEIGHT_BITS - 1));
#endif
}

/* sum_i in[i] * code_i over a unit's packed row: whole bytes first, then the codes of a last part-byte. */
static int32_t dot(const uint8_t *in, const uint8_t *row, int inputs)
{
    int32_t sum = 0;
    int i, k, whole = inputs / PER_BYTE;
    for (i = 0; i < whole; i++) {
        unsigned byte = row[i];
        for (k = 0; k < PER_BYTE; k++)
            sum += (int32_t)in[i * PER_BYTE + k] * decode((byte >> (k * FMLP_WEIGHT_BITS)) & FIELD_MASK);
    }
    for (k = 0; k < inputs - whole * PER_BYTE; k++)
        sum += (int32_t)in[whole * PER_BYTE + k] * decode((row[whole] >> (k * FMLP_WEIGHT_BITS)) & FIELD_MASK);
    return sum;
}
#endif

/* floor((acc * multiplier + 2^(shift-1)) / 2^shift), without relying on >> of a negative number. */
static int64_t requantize(int32_t acc, int32_t multiplier, int shift)
{
    int64_t product = (int64_t)acc * multiplier + ((int64_t)1 << (shift - 1));
    return product >= 0 ? product >> shift : -((-product - 1) >> shift) - 1;
}

static uint8_t sigmoid_of(int64_t y)
{
    int64_t index = y + FMLP_TABLE_SIZE / 2;
    return fmlp_sigmoid[index < 0 ? 0 : index >= FMLP_TABLE_SIZE ? FMLP_TABLE_SIZE - 1 : index];
}

/* The sums of a layer's units, bias included, into sums[0 .. outputs - 1]. The portable loop is the
 * reference; on a core with the DSP extension (Cortex-M4) or MVE (Cortex-M55) the 8-bit weights run
 * through the core's multiply-accumulate instructions instead, to the same integers. */
#if MVE_KERNEL
#include <arm_mve.h>

/* MVE: 16 multiply-accumulates a beat on int8 vectors. The activations (0..255) are centred once per
 * layer, a - 128, so that they are int8 too; 128 * sum_i code_i, the difference, was folded into each
 * unit's bias when the header was written (FMLP_CENTRED_BIAS). Every width here is a multiple of 16
 * but the last layer's inputs may not be: the rest runs one code at a time. */
static void layer_sums(const struct fmlp_layer *l, const uint8_t *in, int32_t *sums)
{
    static int8_t centred[FMLP_PIXELS > FMLP_WIDEST_HIDDEN ? FMLP_PIXELS : FMLP_WIDEST_HIDDEN];
    const int8_t *codes = (const int8_t *)l->codes;
    int i, unit, whole = l->inputs - l->inputs % 16;
    for (i = 0; i < whole; i += 16)
        vstrbq_s8(centred + i, vreinterpretq_s8_u8(veorq_u8(vldrbq_u8(in + i), vdupq_n_u8(128))));
    for (; i < l->inputs; i++)
        centred[i] = (int8_t)(in[i] ^ 128u);
    for (unit = 0; unit < l->outputs; unit++, codes += l->inputs) {
        int32_t sum = l->centred_bias[unit];
        for (i = 0; i < whole; i += 16)
            sum = vmladavaq_s8(sum, vldrbq_s8(centred + i), vldrbq_s8(codes + i));
        for (; i < l->inputs; i++)
            sum += centred[i] * codes[i];
        sums[unit] = sum;
    }
}
#elif FMLP_WEIGHT_BITS == 8 && defined(__ARM_FEATURE_DSP) && defined(FMLP_INTERLEAVED_UNITS)
#include <arm_acle.h>

static uint32_t word(const uint8_t *bytes) /* four bytes, little-endian; the M4 loads them unaligned */
{
    uint32_t value;
    __builtin_memcpy(&value, bytes, 4);
    return value;
}

/* SXTB16 and UXTB16 of the value rotated by 8: bytes 1 and 3, in one instruction (GCC does not fold
 * the rotation into the ACLE intrinsics). */
static uint32_t sxtb16_ror8(uint32_t value)
{
    uint32_t halves;
    __asm("sxtb16 %0, %1, ror #8" : "=r"(halves) : "r"(value));
    return halves;
}

static uint32_t uxtb16_ror8(uint32_t value)
{
    uint32_t halves;
    __asm("uxtb16 %0, %1, ror #8" : "=r"(halves) : "r"(value));
    return halves;
}

/* DSP: SMLAD multiplies two pairs of 16-bit halves and adds both products. Four activations a0..a3
 * unpack to [a0, a2] and [a1, a3] (UXTB16), once per layer; four codes c0..c3 to [c0, c2] and [c1, c3]
 * (SXTB16), so one word of codes and a pair of unpacked words give four multiply-accumulates in two
 * SMLADs. The unpacked activations serve four units at a time, whose rows the header interleaved word
 * by word (FMLP_INTERLEAVED_UNITS), so that their next four words are one load; the rows after the
 * last group of four are plain, at the offsets of the plain layout. Every layer's inputs are a
 * multiple of 4 (else the header is not interleaved and the portable loop runs). */
static void layer_sums(const struct fmlp_layer *l, const uint8_t *in, int32_t *sums)
{
    static uint32_t pairs[(FMLP_PIXELS > FMLP_WIDEST_HIDDEN ? FMLP_PIXELS : FMLP_WIDEST_HIDDEN) / 2];
    int i, unit = 0;
    for (i = 0; i < l->inputs; i += 4) {
        uint32_t a = word(in + i);
        pairs[i / 2] = __uxtb16(a), pairs[i / 2 + 1] = uxtb16_ror8(a);
    }
    for (; unit + 4 <= l->outputs; unit += 4) {
        const uint32_t *w = (const uint32_t *)(l->codes + (long)unit * l->inputs), *pair = pairs;
        const uint32_t *end = pairs + l->inputs / 2;
        int32_t s0 = l->bias[unit], s1 = l->bias[unit + 1], s2 = l->bias[unit + 2], s3 = l->bias[unit + 3];
        for (; pair < end; pair += 2, w += 4) {
            uint32_t a02 = pair[0], a13 = pair[1], w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
            s0 = __smlad(a02, __sxtb16(w0), __smlad(a13, sxtb16_ror8(w0), s0));
            s1 = __smlad(a02, __sxtb16(w1), __smlad(a13, sxtb16_ror8(w1), s1));
            s2 = __smlad(a02, __sxtb16(w2), __smlad(a13, sxtb16_ror8(w2), s2));
            s3 = __smlad(a02, __sxtb16(w3), __smlad(a13, sxtb16_ror8(w3), s3));
        }
        sums[unit] = s0, sums[unit + 1] = s1, sums[unit + 2] = s2, sums[unit + 3] = s3;
    }
    for (; unit < l->outputs; unit++)
        sums[unit] = l->bias[unit] + dot(in, l->codes + (long)unit * l->inputs, l->inputs);
}
#elif FMLP_WEIGHT_BITS == 1 && defined(FMLP_SUBSET_TABLES)
/* 1-bit weights: with c = 2 b - 1, sum_i a_i c_i = 2 sum_{b_i = 1} a_i - sum_i a_i. The sums of every
 * subset of each four consecutive activations (16 per group) are built once per layer and shared by
 * every unit, so a unit's byte of eight codes costs two table lookups instead of eight decodes. Every
 * layer's inputs are a multiple of 8 (else the header asks for no tables). */
static void layer_sums(const struct fmlp_layer *l, const uint8_t *in, int32_t *sums)
{
    static uint16_t subsets[(FMLP_PIXELS > FMLP_WIDEST_HIDDEN ? FMLP_PIXELS : FMLP_WIDEST_HIDDEN) * 4];
    int32_t total = 0;
    int i, m, unit, row_bytes = l->inputs / 8;
    for (i = 0; i < l->inputs; i += 4) {
        uint16_t *t = subsets + i * 4;
        t[0] = 0;
        for (m = 1; m < 16; m++) /* the subset m: m without its lowest bit, and that bit's activation */
            t[m] = (uint16_t)(t[m & (m - 1)] + in[i + __builtin_ctz((unsigned)m)]);
        total += t[15];
    }
    for (unit = 0; unit < l->outputs; unit++) {
        const uint8_t *row = l->codes + (long)unit * row_bytes;
        const uint16_t *t = subsets;
        int32_t chosen = 0;
        for (i = 0; i + 4 <= row_bytes; i += 4, t += 128) { /* four bytes of codes, 32 inputs, a step */
            uint32_t v;
            __builtin_memcpy(&v, row + i, 4);
            chosen += t[v & 15u] + t[16 + (v >> 4 & 15u)] + t[32 + (v >> 8 & 15u)] + t[48 + (v >> 12 & 15u)] +
                      t[64 + (v >> 16 & 15u)] + t[80 + (v >> 20 & 15u)] + t[96 + (v >> 24 & 15u)] + t[112 + (v >> 28)];
        }
        for (; i < row_bytes; i++, t += 32)
            chosen += t[row[i] & 15u] + t[16 + (row[i] >> 4)];
        sums[unit] = l->bias[unit] + 2 * chosen - total;
    }
}
#else
static void layer_sums(const struct fmlp_layer *l, const uint8_t *in, int32_t *sums)
{
    int unit, row_bytes = (l->inputs + PER_BYTE - 1) / PER_BYTE;
    for (unit = 0; unit < l->outputs; unit++)
        sums[unit] = l->bias[unit] + dot(in, l->codes + (long)unit * row_bytes, l->inputs);
}
#endif

int fmlp_logits(const uint8_t pixels[FMLP_PIXELS], int32_t logits[FMLP_CLASSES])
{
    uint8_t hidden[2][FMLP_WIDEST_HIDDEN];
    int32_t sums[FMLP_WIDEST_HIDDEN > FMLP_CLASSES ? FMLP_WIDEST_HIDDEN : FMLP_CLASSES];
    const uint8_t *in = pixels;
    int layer, unit, best = 0;

    for (layer = 0; layer < FMLP_LAYERS; layer++) {
        const struct fmlp_layer *l = &fmlp_layers[layer];
        uint8_t *out = hidden[layer % 2];
        layer_sums(l, in, sums);
        for (unit = 0; unit < l->outputs; unit++) {
            int64_t y = requantize(sums[unit], l->multiplier[unit], l->shift[unit]);
            if (layer == FMLP_LAYERS - 1)
                logits[unit] = (int32_t)y;
            else
                out[unit] = sigmoid_of(y);
        }
        in = out;
    }
    for (unit = 1; unit < FMLP_CLASSES; unit++)
        if (logits[unit] > logits[best])
            best = unit;
    return best;
}

int fmlp_predict(const uint8_t pixels[FMLP_PIXELS])
{
    int32_t logits[FMLP_CLASSES];
    return fmlp_logits(pixels, logits);
}
