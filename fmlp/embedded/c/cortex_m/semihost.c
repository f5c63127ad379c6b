/* ARM semihosting: `bkpt 0xAB` with the operation in r0 and a block of argument words in r1; QEMU
 * answers in r0 (-semihosting-config enable=on,target=native). */
#include "semihost.h"

#define SYS_OPEN 0x01
#define SYS_WRITE0 0x04
#define SYS_READ 0x06
#define SYS_EXIT_EXTENDED 0x20
#define ADP_STOPPED_APPLICATION_EXIT 0x20026

static int call(int operation, void *arguments)
{
    register int r0 __asm("r0") = operation;
    register void *r1 __asm("r1") = arguments;
    __asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static uint32_t length(const char *text)
{
    uint32_t n = 0;
    while (text[n])
        n++;
    return n;
}

int semihost_open(const char *path)
{
    uint32_t block[3] = {(uint32_t)(uintptr_t)path, 0 /* "rb" */, length(path)};
    return call(SYS_OPEN, block);
}

long semihost_read(int handle, void *buffer, long bytes)
{
    uint32_t block[3] = {(uint32_t)handle, (uint32_t)(uintptr_t)buffer, (uint32_t)bytes};
    return bytes - call(SYS_READ, block); /* SYS_READ returns the bytes it did not read */
}

void semihost_print(const char *text)
{
    call(SYS_WRITE0, (void *)(uintptr_t)text);
}

void semihost_print_number(uint32_t value)
{
    char digits[11];
    int at = 10;
    digits[at] = 0;
    do {
        digits[--at] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    semihost_print(digits + at);
}

void semihost_print_hex(uint32_t value)
{
    char digits[9];
    int at;
    for (at = 7; at >= 0; at--, value >>= 4)
        digits[at] = "0123456789abcdef"[value & 15];
    digits[8] = 0;
    semihost_print(digits);
}

void semihost_exit(int status)
{
    uint32_t block[2] = {ADP_STOPPED_APPLICATION_EXIT, (uint32_t)status};
    call(SYS_EXIT_EXTENDED, block);
    for (;;)
        ;
}
