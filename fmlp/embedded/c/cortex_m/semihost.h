/* The few semihosting calls a bare-metal run needs: open and read a file on the host, print, exit. */
#ifndef SEMIHOST_H
#define SEMIHOST_H

#include <stdint.h>

#define STACK_PAINT 0x5AA5F00Du /* the word the reset handler paints the unused stack with */

int semihost_open(const char *path);                      /* a handle, or -1 */
long semihost_read(int handle, void *buffer, long bytes); /* the bytes read */
void semihost_print(const char *text);
void semihost_print_number(uint32_t value);               /* in decimal */
void semihost_print_hex(uint32_t value);                  /* eight hex digits */
void semihost_exit(int status) __attribute__((noreturn));

#endif
