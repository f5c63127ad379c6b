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
#define FIELD_MASK ((1u << FMLP_WEIGHT_BITS) - 1u)

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

int fmlp_predict(const uint8_t pixels[FMLP_PIXELS])
{
    uint8_t hidden[2][FMLP_WIDEST_HIDDEN];
    int32_t logits[FMLP_CLASSES];
    const uint8_t *in = pixels;
    int layer, unit, best = 0;

    for (layer = 0; layer < FMLP_LAYERS; layer++) {
        const struct fmlp_layer *l = &fmlp_layers[layer];
        int row_bytes = (l->inputs + PER_BYTE - 1) / PER_BYTE;
        uint8_t *out = hidden[layer % 2];
        for (unit = 0; unit < l->outputs; unit++) {
            const uint8_t *row = l->codes + (long)unit * row_bytes;
            int64_t y = requantize(l->bias[unit] + dot(in, row, l->inputs), l->multiplier[unit], l->shift[unit]);
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
