/* Runs the exported network on MNIST IDX files and prints its accuracy and time per image:
 *
 *   ./fmlp_mnist [--predictions] IMAGES_IDX LABELS_IDX
 *
 * --predictions prints each image's class on a line of its own before the summary line.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fmlp.h"

#define BLOCK 256 /* images read, then timed, together */
#define SIDE 28   /* MNIST images are SIDE x SIDE pixels */
#define DIGITS 10 /* and labels 0 to DIGITS - 1 */

static uint8_t images[BLOCK][FMLP_PIXELS];
static uint8_t labels[BLOCK];
static int predictions[BLOCK];

static int read_u32(FILE *file, unsigned long *value)
{
    unsigned char bytes[4];
    if (fread(bytes, 1, 4, file) != 4)
        return 0;
    *value = ((unsigned long)bytes[0] << 24) | ((unsigned long)bytes[1] << 16) | ((unsigned long)bytes[2] << 8) | bytes[3];
    return 1;
}

/* Opens an IDX file of `dims` dimensions with magic 0x0800 + dims; the count of items, or -1. */
static long open_idx(const char *path, unsigned long dims, FILE **file)
{
    unsigned long magic, count, rows, columns;
    *file = fopen(path, "rb");
    if (*file == NULL) {
        fprintf(stderr, "error: %s: cannot open it\n", path);
        return -1;
    }
    if (!read_u32(*file, &magic) || magic != 0x0800 + dims || !read_u32(*file, &count)) {
        fprintf(stderr, "error: %s: not an IDX file of unsigned bytes with %lu dimension(s)\n", path, dims);
        return -1;
    }
    if (dims == 3 && (!read_u32(*file, &rows) || !read_u32(*file, &columns))) {
        fprintf(stderr, "error: %s: the header ends before the image size\n", path);
        return -1;
    }
    if (dims == 3 && (rows != SIDE || columns != SIDE)) {
        fprintf(stderr, "error: %s: images are %lu x %lu, not 28 x 28\n", path, rows, columns);
        return -1;
    }
    return (long)count;
}

int main(int argc, char **argv)
{
    int print = argc == 4 && strcmp(argv[1], "--predictions") == 0;
    FILE *image_file, *label_file;
    long count, label_count, done = 0, correct = 0, block, k;
    clock_t ticks = 0, start;
    long long nanoseconds;

    if (argc != 3 + print) {
        fprintf(stderr, "usage: %s [--predictions] IMAGES_IDX LABELS_IDX\n", argv[0]);
        return 2;
    }
    count = open_idx(argv[1 + print], 3, &image_file);
    if (count < 0)
        return 1;
    label_count = open_idx(argv[2 + print], 1, &label_file);
    if (label_count < 0)
        return 1;
    if (label_count != count || count == 0) {
        fprintf(stderr, "error: %ld images and %ld labels; expected as many of each, at least one\n", count, label_count);
        return 1;
    }
    while (done < count) {
        block = count - done < BLOCK ? count - done : BLOCK;
        if (fread(images, FMLP_PIXELS, (size_t)block, image_file) != (size_t)block ||
            fread(labels, 1, (size_t)block, label_file) != (size_t)block) {
            fprintf(stderr, "error: the files end after fewer than %ld images\n", count);
            return 1;
        }
        for (k = 0; k < block; k++)
            if (labels[k] >= DIGITS) {
                fprintf(stderr, "error: label %d of image %ld is not a digit 0 to %d\n", labels[k], done + k, DIGITS - 1);
                return 1;
            }
        start = clock();
        for (k = 0; k < block; k++)
            predictions[k] = fmlp_predict(images[k]);
        ticks += clock() - start;
        for (k = 0; k < block; k++) {
            correct += predictions[k] == labels[k];
            if (print)
                printf("%d\n", predictions[k]);
        }
        done += block;
    }
    nanoseconds = (long long)ticks * 1000000000LL / CLOCKS_PER_SEC / count;
    printf("accuracy %ld.%02ld%% (%ld of %ld images), %lld.%03lld us per image\n", (correct * 20000 + count) / (2 * count) / 100,
           (correct * 20000 + count) / (2 * count) % 100, correct, count, nanoseconds / 1000, nanoseconds % 1000);
    return 0;
}
