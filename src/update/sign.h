/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_SIGN_H
#define IMGFORGE_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "update/channel.h"

/*
 * Signatures over OpenSSL's CMS: the only module of src/update that
 * includes OpenSSL's headers. A signature is a DER CMS SignedData,
 * detached (the signed bytes travel beside it), with one signer whose
 * certificate is included. Keys are ECDSA P-256 (OpenSSL 3.0 has no CMS
 * with Ed25519); certificates X.509.
 *
 * A keyring is a PEM file with one or more certificates, or a directory of
 * such files (*.crt, *.pem). A signature is accepted when the signer's
 * certificate is one of them or is issued by one of them (every keyring
 * certificate is a trust anchor), and every certificate of that chain is
 * valid now. Several certificates let a key be replaced without stranding
 * the devices that still trust only the old one (docs/update.md).
 *
 * Every function returns 0 or -errno with one message in err.
 */

/*
 * Sign len bytes of data with the private key in the PEM file key_path and
 * its certificate in the PEM file cert_path. *ret_der (malloc'd, the
 * caller's) gets the DER signature of *ret_derlen bytes.
 */
int sig_sign_detached(const void *data, size_t len, const char *key_path, const char *cert_path,
		      uint8_t **ret_der, size_t *ret_derlen, char *err, size_t errlen);

/*
 * Check the DER signature der over data against the keyring (a file or a
 * directory). -EBADMSG: the signature is malformed or does not match the
 * data; -EKEYREJECTED: the signer is not trusted by the keyring;
 * -EKEYEXPIRED: a certificate of the chain is expired or not yet valid;
 * -ENOENT/-EINVAL: the keyring cannot be read or holds no certificate.
 */
int sig_verify_detached(const void *data, size_t len, const void *der, size_t derlen,
			const char *keyring, char *err, size_t errlen);

/*
 * Make a new ECDSA P-256 key and a self-signed certificate for it (subject
 * CN=cn, CA:TRUE, keyUsage digitalSignature and keyCertSign, valid from
 * not_before for days days; a random serial). *ret_key and *ret_cert are
 * PEM text (NUL-terminated, malloc'd, the caller's).
 */
int sig_keygen(const char *cn, int64_t not_before, unsigned days, char **ret_key, char **ret_cert,
	       char *err, size_t errlen);

/*
 * The signer of the DER signature der, as one line for people
 * ("CN=..., valid 2026-01-01..2036-01-01, sha256 HEX" of its certificate),
 * without checking anything: for `imgforge bundle info`. *ret is malloc'd,
 * the caller's.
 */
int sig_describe_der_signer(const void *der, size_t derlen, char **ret, char *err, size_t errlen);

#endif
