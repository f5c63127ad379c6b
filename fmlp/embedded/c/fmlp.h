/* fmlp: a trained MNIST network in integers only (no floating point, no heap, no dependencies). */
#ifndef FMLP_H
#define FMLP_H

#include <stdint.h>

#define FMLP_PIXELS 784
#define FMLP_CLASSES 10

/* The class (0..9) of one 28 x 28 image, its pixels row by row, 0 = background. */
int fmlp_predict(const uint8_t pixels[FMLP_PIXELS]);

/* The same class, and the int32 logits it is the first largest of. */
int fmlp_logits(const uint8_t pixels[FMLP_PIXELS], int32_t logits[FMLP_CLASSES]);

#endif
