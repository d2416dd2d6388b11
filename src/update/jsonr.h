/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_JSONR_H
#define IMGFORGE_JSONR_H

#include <stddef.h>
#include <stdint.h>

/*
 * A small strict JSON reader for the documents an update reads from the
 * network: the bundle manifest and the channel index. It is not a general
 * JSON parser, on purpose:
 *
 *   - values: objects, arrays, strings, unsigned integers (no sign, fraction
 *     or exponent, no leading zero, at most UINT64_MAX), null, true, false;
 *   - strings are well-formed UTF-8 without control characters; the escapes
 *     \" \\ \/ \b \f \n \r \t and \uXXXX for U+0001..U+007F only;
 *   - an object never repeats a key;
 *   - nesting at most JSONR_MAX_DEPTH, the document at most JSONR_MAX_SIZE
 *     bytes and JSONR_MAX_VALUES values; nothing but blanks after the value.
 *
 * Anything else is refused with one message naming the byte offset.
 */
#define JSONR_MAX_DEPTH	 16
#define JSONR_MAX_SIZE	 (4u << 20)
#define JSONR_MAX_VALUES (1u << 20)

enum jsonr_type {
	JSONR_NULL,
	JSONR_FALSE,
	JSONR_TRUE,
	JSONR_UINT,
	JSONR_STRING,
	JSONR_ARRAY,
	JSONR_OBJECT,
	JSONR_NUMBER, /* jsonr_parse_api() only: a number that is not an unsigned integer */
};

struct jsonr_member;

struct jsonr_value {
	enum jsonr_type type;
	uint32_t pos; /* byte offset of the value in the document, for messages */
	uint32_t n;   /* STRING: length in bytes; ARRAY: items; OBJECT: members */
	union {
		uint64_t u;		      /* UINT */
		const char *s;		      /* STRING: NUL-terminated, no NUL inside */
		struct jsonr_value *items;    /* ARRAY: n values */
		struct jsonr_member *members; /* OBJECT: n members, in document order */
	};
};

struct jsonr_member {
	const char *key; /* NUL-terminated, no NUL inside */
	struct jsonr_value value;
};

/* A parsed document: owns every value and string reachable from root. */
struct jsonr {
	struct jsonr_value root;
	char *text; /* the document's copy the strings point into */
};

/*
 * Parse len bytes of text. Returns 0 with *ret a new document (free with
 * jsonr_free()), or -EINVAL (-EFBIG for a document too large) with one
 * message in err: "invalid JSON at byte N: ...".
 */
int jsonr_parse(const char *text, size_t len, struct jsonr **ret, char *err, size_t errlen);
/*
 * The same for the answers of cloud APIs, which hold any JSON number (a
 * time as 1.7e9, a negative value): those that are not unsigned integers
 * are JSONR_NUMBER, without a value.
 */
int jsonr_parse_api(const char *text, size_t len, struct jsonr **ret, char *err, size_t errlen);
void jsonr_free(struct jsonr *doc);

/* The member of an object named key, or NULL (also when v is not an object). */
const struct jsonr_value *jsonr_get(const struct jsonr_value *v, const char *key);
/* "object", "string", ...: for messages. */
const char *jsonr_type_name(enum jsonr_type t);

#endif
