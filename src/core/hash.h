/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_HASH_H
#define IMGFORGE_HASH_H

#include <stddef.h>
#include <stdint.h>

/*
 * SHA-256 on OpenSSL's libcrypto. The only module that includes OpenSSL
 * headers for hashing. Digests are 32 bytes; hex strings are 64 chars + NUL.
 */
#define SHA256_LEN     32
#define SHA256_HEX_LEN 65

struct sha256;

/* Returns a new context (never NULL); free with sha256_free(). */
struct sha256 *sha256_new(void);
void sha256_update(struct sha256 *h, const void *data, size_t len);
/* Feed a string with its length first, so that concatenations cannot collide. */
void sha256_update_str(struct sha256 *h, const char *s);
void sha256_update_u64(struct sha256 *h, uint64_t v);
/* Finish into out[32]; the context can be reused after this. */
void sha256_final(struct sha256 *h, uint8_t out[SHA256_LEN]);
void sha256_final_hex(struct sha256 *h, char out[SHA256_HEX_LEN]);
void sha256_free(struct sha256 *h);

void sha256_hex(const void *data, size_t len, char out[SHA256_HEX_LEN]);
void hex_encode(const uint8_t *data, size_t len, char *out);
/*
 * The reverse, for exactly 2*len lowercase hex digits (hex_encode's
 * spelling, nothing after them): 0, or -EINVAL.
 */
int hex_decode(const char *s, uint8_t *out, size_t len);
/* Hash a file's contents. Returns 0 or -errno; *ret_size gets its length if not NULL. */
int sha256_file(const char *path, char out[SHA256_HEX_LEN], uint64_t *ret_size);
/* HMAC-SHA-256 (RFC 2104) of data under key, into out[32]: what AWS signatures chain. */
void hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
		 uint8_t out[SHA256_LEN]);
/* SHA-256 of len bytes of fd from offset, in hex. 0, or -errno (-EIO: the file is shorter). */
int sha256_fd_range(int fd, uint64_t offset, uint64_t len, char out[SHA256_HEX_LEN]);
/* True if s is 64 lowercase or uppercase hex digits. */
int is_sha256_hex(const char *s);
/*
 * Decode standard base64 (RFC 4648, padded, no blanks or line breaks).
 * Returns 0 with *ret a new buffer (the caller's) of *ret_len bytes, or
 * -EINVAL.
 */
int base64_decode(const char *s, uint8_t **ret, size_t *ret_len);
/* Standard base64 of data, padded, one line; malloc'd. */
char *base64_encode(const void *data, size_t len);

/*
 * Hash a file with the named algorithm ("md5", "sha1", "sha256", "sha384",
 * "sha512": the names clouds report their checksums under). Returns 0 with
 * *ret_hex a new lowercase hex string (the caller's), -EINVAL for another
 * name, or -errno from reading.
 */
int digest_file(const char *path, const char *algo, char **ret_hex);

#endif
