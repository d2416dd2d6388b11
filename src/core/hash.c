/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/hash.h"
#include "core/util.h"

struct sha256 {
	EVP_MD_CTX *ctx;
};

static void sha256_reset(struct sha256 *h)
{
	if (EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
		/* Only fails on allocation failure inside OpenSSL. */
		fputs("fatal: OpenSSL cannot initialise SHA-256\n", stderr);
		exit(70);
	}
}

struct sha256 *sha256_new(void)
{
	struct sha256 *h = xcalloc(1, sizeof(*h));

	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx) {
		fputs("fatal: out of memory\n", stderr);
		exit(70);
	}
	sha256_reset(h);
	return h;
}

void sha256_update(struct sha256 *h, const void *data, size_t len)
{
	if (len)
		EVP_DigestUpdate(h->ctx, data, len);
}

void sha256_update_u64(struct sha256 *h, uint64_t v)
{
	uint8_t b[8];
	int i;

	for (i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	sha256_update(h, b, sizeof(b));
}

void sha256_update_str(struct sha256 *h, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	sha256_update_u64(h, n);
	sha256_update(h, s, n);
}

void sha256_final(struct sha256 *h, uint8_t out[SHA256_LEN])
{
	unsigned int n = 0;

	EVP_DigestFinal_ex(h->ctx, out, &n);
	sha256_reset(h);
}

void hex_encode(const uint8_t *data, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[data[i] >> 4];
		out[2 * i + 1] = digits[data[i] & 15];
	}
	out[2 * len] = '\0';
}

static int unhex(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

int hex_decode(const char *s, uint8_t *out, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		int hi, lo;

		if (!s[2 * i] || (hi = unhex(s[2 * i])) < 0 || (lo = unhex(s[2 * i + 1])) < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return s[2 * len] ? -EINVAL : 0;
}

void sha256_final_hex(struct sha256 *h, char out[SHA256_HEX_LEN])
{
	uint8_t d[SHA256_LEN];

	sha256_final(h, d);
	hex_encode(d, sizeof(d), out);
}

void sha256_free(struct sha256 *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

void sha256_hex(const void *data, size_t len, char out[SHA256_HEX_LEN])
{
	struct sha256 *h = sha256_new();

	sha256_update(h, data, len);
	sha256_final_hex(h, out);
	sha256_free(h);
}

int sha256_file(const char *path, char out[SHA256_HEX_LEN], uint64_t *ret_size)
{
	_cleanup_close_ int fd = -1;
	struct sha256 *h;
	uint64_t total = 0;
	char *buf;
	int r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	buf = xmalloc(1 << 20);
	h = sha256_new();
	for (;;) {
		ssize_t n = read(fd, buf, 1 << 20);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		sha256_update(h, buf, (size_t)n);
		total += (uint64_t)n;
	}
	if (r == 0) {
		sha256_final_hex(h, out);
		if (ret_size)
			*ret_size = total;
	}
	sha256_free(h);
	free(buf);
	return r;
}

int is_sha256_hex(const char *s)
{
	size_t i;

	for (i = 0; i < 64; i++)
		if (!isxdigit((unsigned char)s[i]))
			return 0;
	return s[64] == '\0';
}

int base64_decode(const char *s, uint8_t **ret, size_t *ret_len)
{
	size_t n = strlen(s), pad = 0;
	uint8_t *out;
	int r;

	/* EVP_DecodeBlock skips leading and trailing blanks and pads with zero
	 * bytes: the strict form is checked here, the length fixed below. */
	if (!n || n % 4 || n > INT_MAX ||
	    strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") != n)
		return -EINVAL;
	while (pad < 2 && s[n - 1 - pad] == '=')
		pad++;
	if (memchr(s, '=', n - pad))
		return -EINVAL;
	out = xmalloc(n / 4 * 3 + 1);
	r = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
	if (r < 0 || (size_t)r != n / 4 * 3) {
		free(out);
		return -EINVAL;
	}
	*ret = out;
	*ret_len = (size_t)r - pad;
	return 0;
}

void hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
		 uint8_t out[SHA256_LEN])
{
	unsigned int n = SHA256_LEN;

	/* Fails only without memory: HMAC-SHA-256 takes any key and data. */
	if (!HMAC(EVP_sha256(), key, (int)key_len, data, len, out, &n))
		abort();
}

int sha256_fd_range(int fd, uint64_t offset, uint64_t len, char out[SHA256_HEX_LEN])
{
	_cleanup_free_ uint8_t *buf = xmalloc(1u << 20);
	struct sha256 *h = sha256_new();
	uint64_t done = 0;

	while (done < len) {
		size_t want = len - done < (1u << 20) ? (size_t)(len - done) : (1u << 20);
		ssize_t n = pread(fd, buf, want, (off_t)(offset + done));

		if (n <= 0) {
			int e = n < 0 ? errno : EIO;

			sha256_free(h);
			return -e;
		}
		sha256_update(h, buf, (size_t)n);
		done += (uint64_t)n;
	}
	sha256_final_hex(h, out);
	sha256_free(h);
	return 0;
}

char *base64_encode(const void *data, size_t len)
{
	char *out = xmalloc(4 * ((len + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	return out;
}

int digest_file(const char *path, const char *algo, char **ret_hex)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *buf = NULL;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	const EVP_MD *type;
	EVP_MD_CTX *ctx;
	char *hex;
	int r = 0;

	if (strcmp(algo, "md5") && strcmp(algo, "sha1") && strcmp(algo, "sha256") &&
	    strcmp(algo, "sha384") && strcmp(algo, "sha512"))
		return -EINVAL;
	type = EVP_get_digestbyname(algo);
	if (!type)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestInit_ex(ctx, type, NULL) != 1) {
		EVP_MD_CTX_free(ctx);
		return -ENOMEM;
	}
	buf = xmalloc(1 << 20);
	for (;;) {
		ssize_t n = read(fd, buf, 1 << 20);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		EVP_DigestUpdate(ctx, buf, (size_t)n);
	}
	if (r == 0 && EVP_DigestFinal_ex(ctx, md, &mdlen) != 1)
		r = -EIO;
	EVP_MD_CTX_free(ctx);
	if (r < 0)
		return r;
	hex = xmalloc(2 * mdlen + 1);
	hex_encode(md, mdlen, hex);
	*ret_hex = hex;
	return 0;
}
