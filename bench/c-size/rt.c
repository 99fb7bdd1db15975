/* The freestanding runtime of the C size scenarios (x86_64 Linux, no libc): entry point, exit,
 * abort, and the memory functions compiled Rust expects, as a firmware's libc would provide
 * them. Volatile accesses keep the compiler from turning the loops back into calls. */
#include <stddef.h>

void rt_exit(int code) __attribute__((noreturn));
void rt_exit(int code) {
  __asm__ volatile("syscall" ::"a"(231), "D"(code) : "rcx", "r11", "memory");
  __builtin_unreachable();
}

void abort(void) __attribute__((noreturn));
void abort(void) { rt_exit(134); }

int scenario(void);
void rt_main(void) __attribute__((noreturn, used));
void rt_main(void) { rt_exit(scenario()); }

__asm__(".globl _start\n_start:\n  and $-16, %rsp\n  call rt_main\n");

void *memcpy(void *dst, const void *src, size_t n) {
  volatile unsigned char *d = dst;
  const volatile unsigned char *s = src;
  for (size_t i = 0; i < n; i++) d[i] = s[i];
  return dst;
}

void *memmove(void *dst, const void *src, size_t n) {
  volatile unsigned char *d = dst;
  const volatile unsigned char *s = src;
  if (d < s) {
    for (size_t i = 0; i < n; i++) d[i] = s[i];
  } else {
    for (size_t i = n; i > 0; i--) d[i - 1] = s[i - 1];
  }
  return dst;
}

void *memset(void *dst, int value, size_t n) {
  volatile unsigned char *d = dst;
  for (size_t i = 0; i < n; i++) d[i] = (unsigned char)value;
  return dst;
}

int memcmp(const void *a, const void *b, size_t n) {
  const volatile unsigned char *x = a, *y = b;
  for (size_t i = 0; i < n; i++) {
    if (x[i] != y[i]) return x[i] - y[i];
  }
  return 0;
}

int bcmp(const void *a, const void *b, size_t n) { return memcmp(a, b, n); }
