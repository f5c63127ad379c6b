/* Runs the exported network bare-metal on every image of two IDX files read from the host through
 * semihosting, timing each fmlp_logits call with SysTick. Prints one line per image (its class and an
 * FNV-1a hash of its int32 logits, little-endian), then the totals:
 *
 *   images N correct C ticks T calibration_instructions I calibration_ticks K stack_bytes S
 *
 * Under QEMU's -icount shift=0 SysTick counts instructions at a fixed ratio, which the calibration
 * loop of I instructions measures in the same run; QEMU counts instructions, not cycles.
 */
#include "../fmlp.h"
#include "semihost.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018)
#define TICK_MASK 0xFFFFFFu
#define CALIBRATION_LOOPS 1000000u /* of two instructions each: subs, bne */

extern uint32_t _stack_bottom, _stack_top;

static uint8_t image[FMLP_PIXELS];

static uint32_t big_endian(const uint8_t *bytes)
{
    return (uint32_t)bytes[0] << 24 | (uint32_t)bytes[1] << 16 | (uint32_t)bytes[2] << 8 | bytes[3];
}

/* The item count of an IDX file of unsigned bytes with `dims` dimensions (28 x 28 images), or 0. */
static uint32_t open_idx(const char *path, uint32_t dims, int *handle)
{
    uint8_t header[16];
    long size = 4 + 4 * (long)dims;
    *handle = semihost_open(path);
    if (*handle < 0 || semihost_read(*handle, header, size) != size || big_endian(header) != 0x0800 + dims ||
        (dims == 3 && (big_endian(header + 8) != 28 || big_endian(header + 12) != 28))) {
        semihost_print("error: cannot read ");
        semihost_print(path);
        semihost_print(" as an IDX file of MNIST\n");
        return 0;
    }
    return big_endian(header + 4);
}

static uint32_t ticks_now(void)
{
    return SYST_CVR & TICK_MASK;
}

static uint32_t calibrate(void)
{
    uint32_t loops = CALIBRATION_LOOPS, start = ticks_now();
    __asm volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(loops) : : "cc");
    return (start - ticks_now()) & TICK_MASK; /* SysTick counts down */
}

static uint32_t fnv1a(const int32_t *logits, int count)
{
    uint32_t hash = 2166136261u;
    int i, k;
    for (i = 0; i < count; i++)
        for (k = 0; k < 4; k++)
            hash = (hash ^ (((uint32_t)logits[i] >> (8 * k)) & 0xFFu)) * 16777619u;
    return hash;
}

static uint32_t stack_used(void)
{
    const uint32_t *word = &_stack_bottom;
    while (word < &_stack_top && *word == STACK_PAINT)
        word++;
    return (uint32_t)((uintptr_t)&_stack_top - (uintptr_t)word);
}

int main(void)
{
    int images, labels, cls;
    uint32_t count, n, correct = 0, ticks = 0, start, calibration;
    int32_t logits[FMLP_CLASSES];
    uint8_t label;
    char line[3] = {0, ' ', 0};

    SYST_RVR = TICK_MASK;
    SYST_CVR = 0;
    SYST_CSR = 5; /* enabled, counting the processor clock, no interrupt */
    calibration = calibrate();
    count = open_idx("test-images-idx3-ubyte", 3, &images);
    if (count == 0 || open_idx("test-labels-idx1-ubyte", 1, &labels) != count)
        return 1;
    for (n = 0; n < count; n++) {
        if (semihost_read(images, image, FMLP_PIXELS) != FMLP_PIXELS || semihost_read(labels, &label, 1) != 1) {
            semihost_print("error: the IDX files end early\n");
            return 1;
        }
        if (label >= FMLP_CLASSES) { /* as main.c refuses it: a label that is no digit */
            semihost_print("error: a label is not a digit 0 to 9\n");
            return 1;
        }
        start = ticks_now();
        cls = fmlp_logits(image, logits);
        ticks += (start - ticks_now()) & TICK_MASK;
        correct += cls == label;
        line[0] = (char)('0' + cls);
        semihost_print(line);
        semihost_print_hex(fnv1a(logits, FMLP_CLASSES));
        semihost_print("\n");
    }
    semihost_print("images ");
    semihost_print_number(count);
    semihost_print(" correct ");
    semihost_print_number(correct);
    semihost_print(" ticks ");
    semihost_print_number(ticks);
    semihost_print(" calibration_instructions ");
    semihost_print_number(2 * CALIBRATION_LOOPS);
    semihost_print(" calibration_ticks ");
    semihost_print_number(calibration);
    semihost_print(" stack_bytes ");
    semihost_print_number(stack_used());
    semihost_print("\n");
    return 0;
}
