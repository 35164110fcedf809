/* crc32c.h - CRC-32C (Castagnoli), used to checksum sidecar pages. */
#ifndef VMB_CRC32C_H
#define VMB_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32C of buf, continuing from crc (start with 0). crc32c("123456789") = 0xe3069283. */
uint32_t vmb_crc32c(uint32_t crc, const void *buf, size_t len);

#endif
