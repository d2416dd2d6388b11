/* SPDX-License-Identifier: MIT */
/*
 * Signatures over OpenSSL's CMS (sign.h). The only file of src/update that
 * includes OpenSSL's CMS and X.509 headers; OpenSSL's errors become -errno
 * and one message here.
 *
 * Verification is done in two steps rather than one CMS_verify() call, to
 * say which of the two failed: first the signature against the
 * certificate the signature carries (does it match the bytes?), then that
 * certificate against the keyring (is the signer trusted, and valid now?).
 * Together they are what CMS_verify() with the keyring as its store checks.
 */
#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/hash.h"
#include "core/util.h"
#include "update/sign.h"

static int say(char *err, size_t errlen, int r, const char *fmt, ...) _printf_(4, 5);

static int say(char *err, size_t errlen, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	ERR_clear_error();
	return r;
}

/* OpenSSL's last reason, for messages: "bad decrypt", "no start line". */
static const char *ssl_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *s = e ? ERR_reason_error_string(e) : NULL;

	return s ? s : "unknown OpenSSL error";
}

/* The subject of a certificate, escaped for one line, into buf. */
static const char *cert_name(X509 *x, char *buf, size_t len)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data = NULL;
	long n;

	snprintf(buf, len, "?");
	if (!b)
		return buf;
	if (X509_NAME_print_ex(b, X509_get_subject_name(x), 0,
			       XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
		n = BIO_get_mem_data(b, &data);
		if (n > 0)
			snprintf(buf, len, "%.*s", (int)(n > 120 ? 120 : n), data);
	}
	BIO_free(b);
	/* Whatever the certificate says, the message stays one printable line. */
	for (char *p = buf; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	return buf;
}

static const char *time_day(const ASN1_TIME *t, char *buf, size_t len)
{
	struct tm tm;

	if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
		snprintf(buf, len, "?");
	else
		strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm);
	return buf;
}

static void cert_fingerprint(X509 *x, char hex[SHA256_HEX_LEN])
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned n = 0;

	if (X509_digest(x, EVP_sha256(), md, &n) != 1 || n != 32)
		snprintf(hex, SHA256_HEX_LEN, "?");
	else
		hex_encode(md, 32, hex);
}

/* Add every certificate of the PEM file path to the store; *count grows by their number. */
static int keyring_add_file(X509_STORE *store, const char *path, size_t *count, char *err,
			    size_t errlen)
{
	STACK_OF(X509_INFO) * infos;
	BIO *b;
	int i, n = 0;

	b = BIO_new_file(path, "r");
	if (!b)
		return say(err, errlen, -ENOENT, "cannot read keyring '%s': %s", quote_path(path),
			   strerror(errno ? errno : EIO));
	infos = PEM_X509_INFO_read_bio(b, NULL, NULL, NULL);
	BIO_free(b);
	if (!infos)
		return say(
			err, errlen, -EINVAL,
			"cannot read keyring '%s': not PEM certificates (%s); give a PEM file of "
			"certificates or a directory of them",
			quote_path(path), ssl_reason());
	for (i = 0; i < sk_X509_INFO_num(infos); i++) {
		X509_INFO *xi = sk_X509_INFO_value(infos, i);
		if (xi->x509) {
			if (X509_STORE_add_cert(store, xi->x509) != 1) {
				sk_X509_INFO_pop_free(infos, X509_INFO_free);
				return say(err, errlen, -EINVAL, "cannot use keyring '%s': %s",
					   quote_path(path), ssl_reason());
			}
			n++;
		}
	}
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	*count += (size_t)n;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A keyring: a PEM file of certificates, or a directory of *.crt and *.pem files. */
static int keyring_load(const char *keyring, X509_STORE **ret, char *err, size_t errlen)
{
	X509_STORE *store;
	struct stat st;
	size_t count = 0;
	int r = 0;

	if (!keyring || !*keyring)
		return say(err, errlen, -EINVAL, "no keyring given");
	if (stat(keyring, &st) < 0)
		return say(err, errlen, -errno, "cannot read keyring '%s': %s", quote_path(keyring),
			   strerror(errno));
	store = X509_STORE_new();
	if (!store)
		return say(err, errlen, -ENOMEM, "out of memory");
	if (S_ISDIR(st.st_mode)) {
		char **names = NULL;
		size_t n = 0, alloc = 0, i;
		struct dirent *de;
		DIR *d = opendir(keyring);

		if (!d) {
			r = say(err, errlen, -errno, "cannot read keyring '%s': %s",
				quote_path(keyring), strerror(errno));
			goto out;
		}
		while ((de = readdir(d)))
			if (de->d_name[0] != '.' && (str_endswith(de->d_name, ".crt") ||
						     str_endswith(de->d_name, ".pem"))) {
				GROW(names, alloc, n + 1);
				names[n++] = path_join(keyring, de->d_name);
			}
		closedir(d);
		qsort(names, n, sizeof(*names), cmp_str);
		for (i = 0; i < n && r == 0; i++)
			r = keyring_add_file(store, names[i], &count, err, errlen);
		for (i = 0; i < n; i++)
			free(names[i]);
		free(names);
	} else {
		r = keyring_add_file(store, keyring, &count, err, errlen);
	}
	if (r == 0 && count == 0)
		r = say(err, errlen, -EINVAL,
			"keyring '%s' holds no certificate; give the PEM certificates of the "
			"signing keys to trust",
			quote_path(keyring));
	/* Every certificate of the keyring is a trust anchor, self-signed or not. */
	/* ... and the self-signature of a self-signed certificate is checked too. */
	if (r == 0 && X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN |
							  X509_V_FLAG_CHECK_SS_SIGNATURE) != 1)
		r = say(err, errlen, -ENOMEM, "out of memory");
out:
	if (r < 0) {
		X509_STORE_free(store);
		return r;
	}
	*ret = store;
	return 0;
}

/* Parse a whole DER CMS SignedData, detached, with one signer. */
static int cms_parse(const void *der, size_t derlen, CMS_ContentInfo **ret, char *err,
		     size_t errlen)
{
	const unsigned char *p = der;
	CMS_ContentInfo *cms;

	if (derlen == 0 || derlen > (64u << 10))
		return say(err, errlen, -EBADMSG, "the signature is %zu bytes: not a signature",
			   derlen);
	cms = d2i_CMS_ContentInfo(NULL, &p, (long)derlen);
	if (!cms)
		return say(err, errlen, -EBADMSG, "the signature is not a DER CMS structure (%s)",
			   ssl_reason());
	if (p != (const unsigned char *)der + derlen) {
		CMS_ContentInfo_free(cms);
		return say(err, errlen, -EBADMSG, "the signature has %zu bytes after its end",
			   derlen - (size_t)(p - (const unsigned char *)der));
	}
	if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed || CMS_is_detached(cms) != 1 ||
	    sk_CMS_SignerInfo_num(CMS_get0_SignerInfos(cms)) != 1) {
		CMS_ContentInfo_free(cms);
		return say(err, errlen, -EBADMSG,
			   "the signature is not a detached CMS SignedData with one signer");
	}
	*ret = cms;
	return 0;
}

/* One DER element of the expected tag (class, number) at d->p: its contents in *ret, d moved past
 * it. */
struct der {
	const unsigned char *p, *end;
};

static int der_take(struct der *d, int xclass, int tag, struct der *ret)
{
	const unsigned char *p = d->p;
	long len = 0;
	int t = 0, c = 0, r;

	if (d->p >= d->end)
		return -1;
	r = ASN1_get_object(&p, &len, &t, &c, d->end - d->p);
	if ((r & 0x80) || r == 0x21 || t != tag || c != xclass || len > d->end - p)
		return -1;
	if (ret) {
		ret->p = p;
		ret->end = p + len;
	}
	d->p = p + len;
	return 0;
}

static bool der_is(const struct der *d, const unsigned char *want, size_t n)
{
	return (size_t)(d->end - d->p) == n && !memcmp(d->p, want, n);
}

/*
 * CMS leaves some of a signature's own bytes outside what it signs: the
 * version numbers, the list of digest algorithms, algorithm parameters,
 * and names that X.509 compares without regard to letter case. OpenSSL's
 * verification ignores changes to them, so a damaged signature could still
 * verify. A signature is therefore also held to the one form imgforge
 * writes, byte for byte where it matters: canonical DER (re-encoding it
 * gives the same bytes), SignedData and SignerInfo version 1, SHA-256 as
 * the only digest and without parameters, data as the content type, one
 * certificate (the signer's, named by issuer and serial exactly as in the
 * certificate), no CRLs, no unsigned attributes.
 */
static int cms_strict(CMS_ContentInfo *cms, const unsigned char *der, size_t derlen, X509 *signer)
{
	static const unsigned char v1[] = {0x01};
	static const unsigned char sha256_set[] = {0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48,
						   0x01, 0x65, 0x03, 0x04, 0x02, 0x01};
	struct der all = {der, der + derlen}, ci, sd0, sd, x, sis, si0;
	unsigned char *again = NULL;
	CMS_SignerInfo *si = sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(cms), 0);
	STACK_OF(X509) *certs = NULL;
	STACK_OF(X509_CRL) *crls = NULL;
	ASN1_OCTET_STRING *keyid = NULL;
	X509_NAME *issuer = NULL;
	ASN1_INTEGER *serial = NULL;
	X509_ALGOR *dig = NULL, *sigalg = NULL;
	const ASN1_OBJECT *obj;
	const unsigned char *a, *b;
	size_t alen, blen;
	int n, ptype, nid, ok = 0;

	n = i2d_CMS_ContentInfo(cms, &again);
	if (n <= 0 || (size_t)n != derlen || memcmp(again, der, derlen))
		goto out;
	if (der_take(&all, V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE, &ci) < 0 || all.p != all.end ||
	    der_take(&ci, V_ASN1_UNIVERSAL, V_ASN1_OBJECT, NULL) < 0 ||
	    der_take(&ci, V_ASN1_CONTEXT_SPECIFIC, 0, &sd0) < 0 || ci.p != ci.end ||
	    der_take(&sd0, V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE, &sd) < 0 || sd0.p != sd0.end ||
	    der_take(&sd, V_ASN1_UNIVERSAL, V_ASN1_INTEGER, &x) < 0 || !der_is(&x, v1, 1) ||
	    der_take(&sd, V_ASN1_UNIVERSAL, V_ASN1_SET, &x) < 0 ||
	    !der_is(&x, sha256_set, sizeof(sha256_set)) ||
	    der_take(&sd, V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE, NULL) < 0 ||
	    der_take(&sd, V_ASN1_CONTEXT_SPECIFIC, 0, NULL) < 0 ||
	    der_take(&sd, V_ASN1_UNIVERSAL, V_ASN1_SET, &sis) < 0 || sd.p != sd.end ||
	    der_take(&sis, V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE, &si0) < 0 || sis.p != sis.end ||
	    der_take(&si0, V_ASN1_UNIVERSAL, V_ASN1_INTEGER, &x) < 0 || !der_is(&x, v1, 1))
		goto out;
	if (OBJ_obj2nid(CMS_get0_eContentType(cms)) != NID_pkcs7_data)
		goto out;
	certs = CMS_get1_certs(cms);
	crls = CMS_get1_crls(cms);
	if (sk_X509_num(certs) != 1 || X509_cmp(sk_X509_value(certs, 0), signer) || crls)
		goto out;
	if (CMS_SignerInfo_get0_signer_id(si, &keyid, &issuer, &serial) != 1 || keyid || !issuer ||
	    !serial || X509_NAME_get0_der(issuer, &a, &alen) != 1 ||
	    X509_NAME_get0_der(X509_get_issuer_name(signer), &b, &blen) != 1 || alen != blen ||
	    memcmp(a, b, alen) || ASN1_INTEGER_cmp(serial, X509_get0_serialNumber(signer)))
		goto out;
	CMS_SignerInfo_get0_algs(si, NULL, NULL, &dig, &sigalg);
	if (!dig || !sigalg)
		goto out;
	X509_ALGOR_get0(&obj, &ptype, NULL, dig);
	if (OBJ_obj2nid(obj) != NID_sha256 || ptype != V_ASN1_UNDEF)
		goto out;
	X509_ALGOR_get0(&obj, &ptype, NULL, sigalg);
	nid = OBJ_obj2nid(obj);
	if (!((nid == NID_ecdsa_with_SHA256 && ptype == V_ASN1_UNDEF) ||
	      ((nid == NID_rsaEncryption || nid == NID_sha256WithRSAEncryption) &&
	       ptype == V_ASN1_NULL)))
		goto out;
	if (CMS_unsigned_get_attr_count(si) > 0)
		goto out;
	ok = 1;
out:
	OPENSSL_free(again);
	sk_X509_pop_free(certs, X509_free);
	sk_X509_CRL_pop_free(crls, X509_CRL_free);
	return ok ? 0 : -1;
}

int sig_verify_detached(const void *data, size_t len, const void *der, size_t derlen,
			const char *keyring, char *err, size_t errlen)
{
	CMS_ContentInfo *cms = NULL;
	X509_STORE *store = NULL;
	X509_STORE_CTX *ctx = NULL;
	STACK_OF(X509) *signers = NULL, *certs = NULL;
	BIO *content = NULL, *mem = NULL;
	X509 *signer;
	char name[160], when[40];
	int r, e;

	if (len > INT_MAX)
		return say(err, errlen, -EFBIG, "%zu bytes are too many to check a signature over",
			   len);
	r = keyring_load(keyring, &store, err, errlen);
	if (r < 0)
		return r;
	r = cms_parse(der, derlen, &cms, err, errlen);
	if (r < 0)
		goto out;
	/*
	 * Behind a buffer filter: OpenSSL 3.0's CMS_verify() copies a memory
	 * BIO given as the content and leaks the copy when the signature names
	 * a digest it cannot set up.
	 */
	mem = BIO_new_mem_buf(data, (int)len);
	content = mem ? BIO_new(BIO_f_buffer()) : NULL;
	if (!content) {
		BIO_free(mem);
		r = say(err, errlen, -ENOMEM, "out of memory");
		goto out;
	}
	BIO_push(content, mem);
	/* 1: the bytes against the certificate the signature names (and carries). */
	if (CMS_verify(cms, NULL, NULL, content, NULL, CMS_BINARY | CMS_NO_SIGNER_CERT_VERIFY) !=
	    1) {
		r = say(err, errlen, -EBADMSG,
			"the signature does not match the signed bytes (%s): the file was changed "
			"or damaged after signing; fetch it again",
			ssl_reason());
		goto out;
	}
	signers = CMS_get0_signers(cms);
	if (!signers || sk_X509_num(signers) != 1) {
		r = say(err, errlen, -EBADMSG, "the signature carries no signer certificate");
		goto out;
	}
	signer = sk_X509_value(signers, 0);
	cert_name(signer, name, sizeof(name));
	if (cms_strict(cms, der, derlen, signer) < 0) {
		r = say(err, errlen, -EBADMSG,
			"the signature is not in the form imgforge writes (a changed version, "
			"algorithm or name in its unsigned part): the file was changed or damaged "
			"after signing; fetch it again");
		goto out;
	}
	/* 2: that certificate against the keyring, now. */
	certs = CMS_get1_certs(cms);
	ctx = X509_STORE_CTX_new();
	if (!ctx || X509_STORE_CTX_init(ctx, store, signer, certs) != 1) {
		r = say(err, errlen, -ENOMEM, "out of memory");
		goto out;
	}
	if (X509_verify_cert(ctx) == 1) {
		r = 0;
		goto out;
	}
	e = X509_STORE_CTX_get_error(ctx);
	switch (e) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
		r = say(err, errlen, -EKEYEXPIRED,
			"the signing certificate '%s' expired on %s; sign with a current key "
			"(imgforge keygen) whose certificate the keyring '%s' holds",
			cert_name(X509_STORE_CTX_get_current_cert(ctx), name, sizeof(name)),
			time_day(X509_get0_notAfter(X509_STORE_CTX_get_current_cert(ctx)), when,
				 sizeof(when)),
			quote_path(keyring));
		break;
	case X509_V_ERR_CERT_NOT_YET_VALID:
		r = say(err, errlen, -EKEYEXPIRED,
			"the signing certificate '%s' is not valid before %s; check this "
			"machine's clock",
			cert_name(X509_STORE_CTX_get_current_cert(ctx), name, sizeof(name)),
			time_day(X509_get0_notBefore(X509_STORE_CTX_get_current_cert(ctx)), when,
				 sizeof(when)));
		break;
	default: {
		char fp[SHA256_HEX_LEN];

		cert_fingerprint(signer, fp);
		r = say(err, errlen, -EKEYREJECTED,
			"signed by '%s' (certificate sha256 %.16s...), which the keyring '%s' does "
			"not trust (%s); sign with a key whose certificate is in the keyring",
			name, fp, quote_path(keyring), X509_verify_cert_error_string(e));
		break;
	}
	}
out:
	X509_STORE_CTX_free(ctx);
	sk_X509_pop_free(certs, X509_free);
	sk_X509_free(signers);
	BIO_free_all(content);
	CMS_ContentInfo_free(cms);
	X509_STORE_free(store);
	ERR_clear_error();
	return r;
}

int sig_sign_detached(const void *data, size_t len, const char *key_path, const char *cert_path,
		      uint8_t **ret_der, size_t *ret_derlen, char *err, size_t errlen)
{
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	CMS_ContentInfo *cms = NULL;
	BIO *b = NULL, *content = NULL;
	unsigned char *der = NULL;
	const unsigned flags = CMS_DETACHED | CMS_BINARY | CMS_PARTIAL;
	int n, r = 0;

	if (len > INT_MAX)
		return say(err, errlen, -EFBIG, "%zu bytes are too many to sign", len);
	b = BIO_new_file(key_path, "r");
	if (!b) {
		r = say(err, errlen, -errno, "cannot read key '%s': %s", quote_path(key_path),
			strerror(errno));
		goto out;
	}
	key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	if (!key) {
		r = say(err, errlen, -EINVAL,
			"cannot read key '%s': not an unencrypted PEM private "
			"key (%s); make one with imgforge keygen",
			quote_path(key_path), ssl_reason());
		goto out;
	}
	b = BIO_new_file(cert_path, "r");
	if (!b) {
		r = say(err, errlen, -errno, "cannot read certificate '%s': %s",
			quote_path(cert_path), strerror(errno));
		goto out;
	}
	cert = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	if (!cert) {
		r = say(err, errlen, -EINVAL,
			"cannot read certificate '%s': not a PEM certificate "
			"(%s)",
			quote_path(cert_path), ssl_reason());
		goto out;
	}
	if (X509_check_private_key(cert, key) != 1) {
		r = say(err, errlen, -EINVAL,
			"the key '%s' does not belong to the certificate '%s'; "
			"give the certificate imgforge keygen wrote beside the key",
			quote_path(key_path), quote_path(cert_path));
		goto out;
	}
	content = BIO_new_mem_buf(data, (int)len);
	cms = content ? CMS_sign(NULL, NULL, NULL, NULL, flags) : NULL;
	if (!cms || !CMS_add1_signer(cms, cert, key, EVP_sha256(), flags) ||
	    CMS_final(cms, content, NULL, flags) != 1) {
		r = say(err, errlen, -EINVAL, "cannot sign with the key '%s': %s",
			quote_path(key_path), ssl_reason());
		goto out;
	}
	n = i2d_CMS_ContentInfo(cms, &der);
	if (n <= 0) {
		r = say(err, errlen, -EINVAL, "cannot encode the signature: %s", ssl_reason());
		goto out;
	}
	*ret_der = xmalloc((size_t)n);
	memcpy(*ret_der, der, (size_t)n);
	*ret_derlen = (size_t)n;
out:
	OPENSSL_free(der);
	CMS_ContentInfo_free(cms);
	BIO_free(content);
	X509_free(cert);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return r;
}

static int add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return 0;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok;
}

/* PEM text of what write() writes into a memory BIO, NUL-terminated. */
static char *bio_text(BIO *b)
{
	char *data = NULL;
	long n = BIO_get_mem_data(b, &data);

	return n > 0 ? xstrndup(data, (size_t)n) : NULL;
}

int sig_keygen(const char *cn, int64_t not_before, unsigned days, char **ret_key, char **ret_cert,
	       char *err, size_t errlen)
{
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	X509_NAME *name;
	BIGNUM *serial = NULL;
	BIO *kb = NULL, *cb = NULL;
	char *k = NULL, *c = NULL;
	int r = 0;

	if (!cn || !*cn || strlen(cn) > 64)
		return say(err, errlen, -EINVAL, "the certificate name must be 1 to 64 bytes");
	key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	x = X509_new();
	serial = BN_new();
	if (!key || !x || !serial) {
		r = say(err, errlen, -ENOMEM, "cannot make a key: %s", ssl_reason());
		goto out;
	}
	name = X509_get_subject_name(x);
	if (X509_set_version(x, 2) != 1 ||
	    BN_rand(serial, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
	    !BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) ||
	    !ASN1_TIME_adj(X509_getm_notBefore(x), (time_t)not_before, 0, 0) ||
	    !ASN1_TIME_adj(X509_getm_notAfter(x), (time_t)not_before, (int)days, 0) ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
				       0) != 1 ||
	    X509_set_issuer_name(x, name) != 1 || X509_set_pubkey(x, key) != 1 ||
	    !add_ext(x, NID_basic_constraints, "critical,CA:TRUE") ||
	    !add_ext(x, NID_key_usage, "critical,digitalSignature,keyCertSign") ||
	    !add_ext(x, NID_subject_key_identifier, "hash") ||
	    X509_sign(x, key, EVP_sha256()) <= 0) {
		r = say(err, errlen, -EINVAL, "cannot make the certificate: %s", ssl_reason());
		goto out;
	}
	kb = BIO_new(BIO_s_mem());
	cb = BIO_new(BIO_s_mem());
	if (!kb || !cb || PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL) != 1 ||
	    PEM_write_bio_X509(cb, x) != 1 || !(k = bio_text(kb)) || !(c = bio_text(cb))) {
		r = say(err, errlen, -ENOMEM, "cannot write the key: %s", ssl_reason());
		goto out;
	}
	*ret_key = TAKE_PTR(k);
	*ret_cert = TAKE_PTR(c);
out:
	if (k) {
		OPENSSL_cleanse(k, strlen(k));
		free(k);
	}
	free(c);
	BIO_free(kb);
	BIO_free(cb);
	BN_free(serial);
	X509_free(x);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return r;
}

int sig_describe_der_signer(const void *der, size_t derlen, char **ret, char *err, size_t errlen)
{
	CMS_ContentInfo *cms = NULL;
	STACK_OF(X509) *certs = NULL;
	CMS_SignerInfo *si;
	char name[160], from[40], until[40], fp[SHA256_HEX_LEN];
	int i, r;

	r = cms_parse(der, derlen, &cms, err, errlen);
	if (r < 0)
		return r;
	si = sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(cms), 0);
	certs = CMS_get1_certs(cms);
	r = say(err, errlen, -EBADMSG, "the signature carries no signer certificate");
	for (i = 0; i < sk_X509_num(certs); i++) {
		X509 *x = sk_X509_value(certs, i);
		if (CMS_SignerInfo_cert_cmp(si, x) == 0) {
			cert_fingerprint(x, fp);
			*ret = xasprintf("%s, valid %s to %s, sha256 %s",
					 cert_name(x, name, sizeof(name)),
					 time_day(X509_get0_notBefore(x), from, sizeof(from)),
					 time_day(X509_get0_notAfter(x), until, sizeof(until)), fp);
			r = 0;
			break;
		}
	}
	sk_X509_pop_free(certs, X509_free);
	CMS_ContentInfo_free(cms);
	ERR_clear_error();
	return r;
}
