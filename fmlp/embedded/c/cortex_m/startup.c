/* Bare-metal start for QEMU's Cortex-M boards (mps2-an386: Cortex-M4; mps3-an547: Cortex-M55).
 *
 * The vector table holds the initial stack pointer and the reset handler; every fault ends the run
 * with exit status 3. The reset handler copies .data from flash, zeroes .bss, paints the stack with a
 * known word (so that board.c can find how deep it was ever used), on the M55 gives itself access to
 * the coprocessors the MVE instructions use, then runs main and exits with its status.
 */
#include <stdint.h>

#include "semihost.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _stack_bottom, _stack_top;
int main(void);
void reset_handler(void);

static void fault(void)
{
    semihost_exit(3);
}

/* 16 words: the stack top, then reset, NMI, HardFault, MemManage, BusFault, UsageFault, 4 reserved,
 * SVCall, DebugMonitor, reserved, PendSV, SysTick. */
__attribute__((section(".vectors"), used)) static const uintptr_t vectors[16] = {
    (uintptr_t)&_stack_top, (uintptr_t)reset_handler, (uintptr_t)fault, (uintptr_t)fault,
    (uintptr_t)fault, (uintptr_t)fault, (uintptr_t)fault, 0, 0, 0, 0,
    (uintptr_t)fault, (uintptr_t)fault, 0, (uintptr_t)fault, (uintptr_t)fault,
};

void reset_handler(void)
{
    uint32_t *from = &_sidata, *to = &_sdata, *sp;
    while (to < &_edata)
        *to++ = *from++;
    for (to = &_sbss; to < &_ebss;)
        *to++ = 0;
#if defined(__ARM_FEATURE_MVE)
    /* CPACR: full access to CP10 and CP11, which MVE needs even for integers; before any MVE instruction. */
    *(volatile uint32_t *)0xE000ED88 |= 0xFu << 20;
    __asm volatile("dsb\n\tisb" ::: "memory");
#endif
    __asm volatile("mov %0, sp" : "=r"(sp));
    for (to = &_stack_bottom; to < sp - 16; to++) /* below this frame, with a margin */
        *to = STACK_PAINT;
    semihost_exit(main());
}
