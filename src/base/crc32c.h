/* crc32c.h - CRC-32C (Castagnoli), used to checksum sidecar pages and journal
 * records. Pure functions, thread-safe. */
#ifndef VMB_CRC32C_H
#define VMB_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32C of buf, continuing from crc (start with 0). crc32c("123456789") = 0xe3069283.
 * Uses the SSE4.2 instruction where the CPU has it, else slicing-by-8. */
uint32_t vmb_crc32c(uint32_t crc, const void *buf, size_t len);

/* The two implementations, for tests and benchmarks: the table one always works;
 * the instruction one falls back to it when vmb_crc32c_hw_available() is 0. */
uint32_t vmb_crc32c_sw(uint32_t crc, const void *buf, size_t len);
uint32_t vmb_crc32c_hw(uint32_t crc, const void *buf, size_t len);
int vmb_crc32c_hw_available(void);

#endif
