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
#if FMLP_WEIGHT_BITS <= 2 && defined(FMLP_SUBSET_TABLES)
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
#elif SUBSET_KERNEL
/* 1- and 2-bit weights as bit planes. A unit's sum is a weighted sum of sums over subsets of the
 * activations: at 1 bit, with c = 2 b - 1, 2 sum_{b_i = 1} a_i - sum_i a_i; at 2 bits, the two's
 * complement c = b0 - 2 b1, sum_{b0_i = 1} a_i - 2 sum_{b1_i = 1} a_i. The sums over every subset of eight
 * consecutive activations (a table of 256) are built once per block of 32 inputs and shared by every
 * unit, so each byte of a plane costs one table lookup instead of eight decodes. The header
 * (FMLP_SUBSET_TABLES) stores, per block of 32 inputs, per unit, per plane, one word whose bit i is
 * input 32 k + i's; inputs past the layer's have zero bits and are read as zero activations. */
#define PLANES FMLP_WEIGHT_BITS
#define GROUPS 4 /* tables of eight inputs in a block of 32 */
#define FLUSH 8  /* blocks between the additions of 16-bit partial sums into the int32 sums (MVE) */

/* Entry m: the sum of the group's eight activations over the bits of m (at most 8 x 255). The scalar
 * build writes two entries to a word; every kernel reads them one by one. */
typedef union {
    uint16_t entry[256];
    uint32_t pair[128];
} subset_table;

/* The sum a plane word chooses: one entry of each of the block's four tables (t_j, table j's entries). */
static int32_t chosen(const uint16_t *t0, const uint16_t *t1, const uint16_t *t2, const uint16_t *t3, uint32_t word)
{
    return t0[word & 255u] + t1[word >> 8 & 255u] + t2[word >> 16 & 255u] + t3[word >> 24];
}

#if defined(__ARM_FEATURE_MVE)
#include <arm_mve.h>

/* A unit's sum over one block, from its plane words (b0 - 2 b1 at 2 bits): for the units after the last
 * eight. */
static int32_t unit_block_sum(const subset_table tables[GROUPS], const uint32_t *planes)
{
    const uint16_t *t0 = tables[0].entry, *t1 = tables[1].entry, *t2 = tables[2].entry, *t3 = tables[3].entry;
#if PLANES == 1
    return chosen(t0, t1, t2, t3, planes[0]);
#else
    return chosen(t0, t1, t2, t3, planes[0]) - 2 * chosen(t0, t1, t2, t3, planes[1]);
#endif
}

/* The sums of a[0..3] over the bits of m, for m = 0..7 (lanes) and m + 8 (the second vector). */
static void subset_vectors(const uint8_t *a, uint16x8_t *first, uint16x8_t *second)
{
    const uint16x8_t m = vidupq_n_u16(0, 1);
    const uint16x8_t bit0 = vandq_u16(m, vdupq_n_u16(1)), bit1 = vshrq_n_u16(vandq_u16(m, vdupq_n_u16(2)), 1);
    *first = vmlaq_n_u16(vmlaq_n_u16(vmulq_n_u16(bit0, a[0]), bit1, a[1]), vshrq_n_u16(m, 2), a[2]);
    *second = vaddq_n_u16(*first, a[3]);
}

/* The block's tables from its 32 activations: entry 16 h + l of table j is high[h] + low[l], the sums
 * over the subsets of its inputs 8 j + 4 .. 8 j + 7 and 8 j .. 8 j + 3; a row of sixteen is two vectors. */
static void block_tables(const uint8_t *in, subset_table tables[GROUPS])
{
    uint16x8_t low0, low1, high0, high1;
    uint16_t high[16];
    int j, h;
    for (j = 0; j < GROUPS; j++) {
        subset_vectors(in + 8 * j, &low0, &low1);
        subset_vectors(in + 8 * j + 4, &high0, &high1);
        vst1q_u16(high, high0);
        vst1q_u16(high + 8, high1);
        for (h = 0; h < 16; h++) {
            vst1q_u16(&tables[j].entry[16 * h], vaddq_n_u16(low0, high[h]));
            vst1q_u16(&tables[j].entry[16 * h + 8], vaddq_n_u16(low1, high[h]));
        }
    }
}

/* The units the vector loop takes, eight at a time, keep a 16-bit sum per plane, added into the int32
 * sums every FLUSH blocks: a block adds at most 4 x 2040 per plane, and 8 x 4 x 2040 < 2^16. */
static uint16_t partial[PLANES][FMLP_WIDEST_HIDDEN > FMLP_CLASSES ? FMLP_WIDEST_HIDDEN : FMLP_CLASSES];

/* Eight units at a time: their bytes j of a plane, 4 PLANES bytes apart, in one gather (offsets
 * apart + j); their eight entries of table j in another. The units after the last eight add into
 * the int32 sums directly. */
static void block_sums(const subset_table tables[GROUPS], const uint32_t *words, int outputs, int32_t *sums)
{
    const uint16x8_t apart = vmulq_n_u16(vidupq_n_u16(0, 1), 4 * PLANES);
    const uint16x8_t at1 = vaddq_n_u16(apart, 1), at2 = vaddq_n_u16(apart, 2), at3 = vaddq_n_u16(apart, 3);
    const uint16_t *t0 = tables[0].entry, *t1 = tables[1].entry, *t2 = tables[2].entry, *t3 = tables[3].entry;
    int unit = 0, plane;
    for (; unit + 8 <= outputs; unit += 8) {
        const uint8_t *bytes = (const uint8_t *)(words + unit * PLANES);
        for (plane = 0; plane < PLANES; plane++, bytes += 4) {
            uint16x8_t sum = vld1q_u16(partial[plane] + unit);
            sum = vaddq_u16(sum, vldrhq_gather_shifted_offset_u16(t0, vldrbq_gather_offset_u16(bytes, apart)));
            sum = vaddq_u16(sum, vldrhq_gather_shifted_offset_u16(t1, vldrbq_gather_offset_u16(bytes, at1)));
            sum = vaddq_u16(sum, vldrhq_gather_shifted_offset_u16(t2, vldrbq_gather_offset_u16(bytes, at2)));
            sum = vaddq_u16(sum, vldrhq_gather_shifted_offset_u16(t3, vldrbq_gather_offset_u16(bytes, at3)));
            vst1q_u16(partial[plane] + unit, sum);
        }
    }
    for (; unit < outputs; unit++)
        sums[unit] += unit_block_sum(tables, words + unit * PLANES);
}

/* The 16-bit sums added into the int32 sums (b0 - 2 b1 at 2 bits), four units a step, and cleared. */
static void flush_sums(int outputs, int32_t *sums)
{
    int unit, whole = outputs - outputs % 8;
    for (unit = 0; unit < whole; unit += 4) {
        int32x4_t sum = vreinterpretq_s32_u32(vldrhq_u32(partial[0] + unit));
#if PLANES == 2
        sum = vsubq_s32(sum, vshlq_n_s32(vreinterpretq_s32_u32(vldrhq_u32(partial[1] + unit)), 1));
        vstrhq_u32(partial[1] + unit, vdupq_n_u32(0));
#endif
        vstrhq_u32(partial[0] + unit, vdupq_n_u32(0));
        vst1q_s32(sums + unit, vaddq_s32(vld1q_s32(sums + unit), sum));
    }
}
#else
/* sums[m], m = 0..15: the sum of in[0..3] over the bits of m. */
static void subset_sums(const uint8_t *in, uint16_t sums[16])
{
    int bit, m;
    sums[0] = 0;
    for (bit = 0; bit < 4; bit++) /* the subsets that hold in[bit]: those before them, plus in[bit] */
        for (m = 0; m < 1 << bit; m++)
            sums[(1 << bit) + m] = (uint16_t)(sums[m] + in[bit]);
}

/* The block's tables, as above; two entries share a 32-bit add, which no carry crosses, and a row's
 * eight pairs stay in registers. */
static __attribute__((noinline)) void block_tables(const uint8_t *in, subset_table tables[GROUPS])
{
    uint16_t low[16], high[16];
    int j, h;
    for (j = 0; j < GROUPS; j++) {
        subset_sums(in + 8 * j, low);
        subset_sums(in + 8 * j + 4, high);
        uint32_t p0 = low[0] | (uint32_t)low[1] << 16, p1 = low[2] | (uint32_t)low[3] << 16;
        uint32_t p2 = low[4] | (uint32_t)low[5] << 16, p3 = low[6] | (uint32_t)low[7] << 16;
        uint32_t p4 = low[8] | (uint32_t)low[9] << 16, p5 = low[10] | (uint32_t)low[11] << 16;
        uint32_t p6 = low[12] | (uint32_t)low[13] << 16, p7 = low[14] | (uint32_t)low[15] << 16;
        for (h = 0; h < 16; h++) {
            uint32_t base = high[h] * 0x10001u, *row = tables[j].pair + 8 * h;
            row[0] = p0 + base, row[1] = p1 + base, row[2] = p2 + base, row[3] = p3 + base;
            row[4] = p4 + base, row[5] = p5 + base, row[6] = p6 + base, row[7] = p7 + base;
        }
    }
}

/* Each unit's sum over the block, added to its running sum. The four tables are reached through pointers
 * of their own, hidden from the compiler's arithmetic (an empty asm), so that a lookup is one indexed
 * load rather than an add and a load at an offset from one shared base. */
static __attribute__((noinline)) void block_sums(const subset_table tables[GROUPS], const uint32_t *words,
                                                 int outputs, int32_t *sums)
{
    const uint16_t *t0 = tables[0].entry, *t1 = tables[1].entry, *t2 = tables[2].entry, *t3 = tables[3].entry;
    int32_t *end = sums + outputs;
    __asm__("" : "+r"(t1), "+r"(t2), "+r"(t3));
    for (; sums < end; sums++, words += PLANES) {
#if PLANES == 1
        *sums += chosen(t0, t1, t2, t3, words[0]);
#else
        *sums += chosen(t0, t1, t2, t3, words[0]) - 2 * chosen(t0, t1, t2, t3, words[1]);
#endif
    }
}

/* Nothing to add: the scalar loop adds into the int32 sums directly. */
static void flush_sums(int outputs, int32_t *sums)
{
    (void)outputs, (void)sums;
}
#endif

static void layer_sums(const struct fmlp_layer *l, const uint8_t *in, int32_t *sums)
{
    static subset_table tables[GROUPS];
    const uint32_t *words = (const uint32_t *)l->codes;
    uint8_t tail[32]; /* the last block's activations, zero past the layer's inputs */
    int32_t total = 0;
    int unit, block, first, i;
    for (unit = 0; unit < l->outputs; unit++)
        sums[unit] = 0;
    for (block = 0, first = 0; first < l->inputs; block++, first += 32, words += l->outputs * PLANES) {
        const uint8_t *activations = in + first;
        if (l->inputs - first < 32) {
            for (i = 0; i < 32; i++)
                tail[i] = first + i < l->inputs ? in[first + i] : 0;
            activations = tail;
        }
        block_tables(activations, tables);
        total += tables[0].entry[255] + tables[1].entry[255] + tables[2].entry[255] + tables[3].entry[255];
        block_sums(tables, words, l->outputs, sums);
        if (block % FLUSH == FLUSH - 1 || first + 32 >= l->inputs)
            flush_sums(l->outputs, sums);
    }
    for (unit = 0; unit < l->outputs; unit++)
        sums[unit] = l->bias[unit] + (PLANES == 1 ? 2 * sums[unit] - total : sums[unit]);
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
