/* SPDX-License-Identifier: MIT */
/*
 * The bundle manifest: written with the compact JSON writer, read back with
 * the strict reader, and checked as a whole before anything trusts a field:
 * every key known and present, every string within its limit and alphabet,
 * the chunks sorted, inside the image, of the chunk size, their stored
 * bytes back to back and exactly filling the payload.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/hash.h"
#include "core/json.h"
#include "update/jsonr.h"
#include "update/manifest.h"
#include "update/patch.h"

/* The most a chunk of chunk_size bytes may take stored: ZSTD_compressBound()'s formula. */
static uint64_t stored_bound(uint64_t size)
{
	return size + (size >> 8) + (size < (128 << 10) ? ((128 << 10) - size) >> 11 : 0);
}

static void json_kv_hex(struct json *j, const char *key, const uint8_t d[32])
{
	char hex[SHA256_HEX_LEN];

	hex_encode(d, 32, hex);
	json_kv_string(j, key, hex);
}

uint64_t manifest_max_stored(const struct bundle_manifest *m)
{
	uint64_t frames = (m->chunk_size + m->frame_size - 1) / m->frame_size;

	return frames * (stored_bound(m->frame_size) + 64);
}

void manifest_write(const struct bundle_manifest *m, struct strbuf *out)
{
	struct json j;
	size_t i;

	json_init(&j, out, false);
	json_begin_object(&j);
	json_kv_uint(&j, "format", m->format);
	json_kv_string(&j, "compatible", m->compatible);
	json_kv_string(&j, "version", m->version);
	json_kv_string(&j, "build_id", m->build_id ? m->build_id : "");
	json_kv_int(&j, "created", m->created);
	json_key(&j, "image");
	json_begin_object(&j);
	json_kv_uint(&j, "size", m->image_size);
	json_kv_hex(&j, "sha256", m->image_sha256);
	json_end_object(&j);
	json_kv_string(&j, "compression", "zstd");
	json_kv_uint(&j, "chunk_size", m->chunk_size);
	if (m->format >= 2)
		json_kv_uint(&j, "frame_size", m->frame_size);
	json_key(&j, "payload");
	json_begin_object(&j);
	json_kv_uint(&j, "offset", m->payload_offset);
	json_kv_uint(&j, "size", m->payload_size);
	json_kv_hex(&j, "sha256", m->payload_sha256);
	json_end_object(&j);
	if (m->format >= 2) {
		json_key(&j, "chunk_index");
		json_begin_object(&j);
		if (m->format >= 3)
			json_kv_uint(&j, "page_chunks", m->page_chunks);
		json_kv_uint(&j, "size", m->index_size);
		json_kv_hex(&j, "sha256", m->chunk_index_sha256);
		json_end_object(&j);
		if (m->format >= 4) {
			json_key(&j, "patch");
			json_begin_object(&j);
			json_key(&j, "from");
			json_begin_object(&j);
			json_kv_uint(&j, "size", m->patch_from_size);
			json_kv_hex(&j, "sha256", m->patch_from_sha256);
			json_end_object(&j);
			json_kv_uint(&j, "offset", m->payload_offset + m->payload_size);
			json_kv_uint(&j, "size", m->patch_size);
			json_kv_hex(&j, "sha256", m->patch_sha256);
			json_end_object(&j);
		}
		if (m->format >= 3) {
			json_end_object(&j);
			return; /* the chunk list is in the index's pages */
		}
	} else if (m->has_chunk_index) {
		json_kv_hex(&j, "chunk_index", m->chunk_index_sha256);
	} else {
		json_key(&j, "chunk_index");
		json_null(&j);
	}
	json_key(&j, "chunks");
	json_begin_array(&j);
	for (i = 0; i < m->n_chunks; i++) {
		const struct bundle_chunk *c = &m->chunks[i];

		json_begin_object(&j);
		json_kv_uint(&j, "offset", c->offset);
		json_kv_uint(&j, "size", c->size);
		json_kv_uint(&j, "stored_offset", c->stored_offset);
		json_kv_uint(&j, "stored_size", c->stored_size);
		json_kv_hex(&j, "sha256", c->sha256);
		json_end_object(&j);
	}
	json_end_array(&j);
	json_end_object(&j);
}

void bundle_manifest_free(struct bundle_manifest *m)
{
	if (!m)
		return;
	free(m->compatible);
	free(m->version);
	free(m->build_id);
	free(m->chunks);
	free(m->frame_stored);
	free(m->frame_hash);
	free(m);
}

bool manifest_name_valid(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n <= MANIFEST_MAX_STRING &&
	       strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._+~-") ==
		       n;
}

struct check {
	char *err;
	size_t errlen;
};

static int bad(struct check *c, const struct jsonr_value *at, const char *fmt, ...) _printf_(3, 4);

static int bad(struct check *c, const struct jsonr_value *at, const char *fmt, ...)
{
	char what[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(c->err, c->errlen, "invalid manifest at byte %" PRIu32 ": %s", at ? at->pos : 0,
		 what);
	return -EINVAL;
}

/*
 * The members of obj must be exactly the names in keys (in any order):
 * each of vals[i] gets the value of keys[i].
 */
static int members(struct check *c, const struct jsonr_value *obj, const char *what,
		   const char *const *keys, size_t nkeys, const struct jsonr_value **vals)
{
	uint32_t i;
	size_t k;

	if (obj->type != JSONR_OBJECT)
		return bad(c, obj, "%s must be an object, not %s", what,
			   jsonr_type_name(obj->type));
	for (i = 0; i < obj->n; i++) {
		for (k = 0; k < nkeys; k++)
			if (!strcmp(obj->members[i].key, keys[k]))
				break;
		if (k == nkeys)
			return bad(c, &obj->members[i].value, "unknown key \"%.64s\" in %s",
				   obj->members[i].key, what);
	}
	for (k = 0; k < nkeys; k++) {
		vals[k] = jsonr_get(obj, keys[k]);
		if (!vals[k])
			return bad(c, obj, "%s has no \"%s\"", what, keys[k]);
	}
	return 0;
}

static int get_uint(struct check *c, const struct jsonr_value *v, const char *name, uint64_t max,
		    uint64_t *ret)
{
	if (v->type != JSONR_UINT)
		return bad(c, v, "\"%s\" must be a number, not %s", name, jsonr_type_name(v->type));
	if (v->u > max)
		return bad(c, v, "\"%s\" is %" PRIu64 ", more than %" PRIu64, name, v->u, max);
	*ret = v->u;
	return 0;
}

static int get_string(struct check *c, const struct jsonr_value *v, const char *name,
		      bool name_chars, char **ret)
{
	if (v->type != JSONR_STRING)
		return bad(c, v, "\"%s\" must be a string, not %s", name, jsonr_type_name(v->type));
	if (v->n > MANIFEST_MAX_STRING)
		return bad(c, v, "\"%s\" is longer than %d bytes", name, MANIFEST_MAX_STRING);
	if (name_chars && !manifest_name_valid(v->s))
		return bad(c, v, "\"%s\" must be 1 to %d characters of A-Z a-z 0-9 . _ + ~ -", name,
			   MANIFEST_MAX_STRING);
	*ret = xstrdup(v->s);
	return 0;
}

/* 64 lowercase hex digits, as written: one spelling per digest. */
static int get_sha256(struct check *c, const struct jsonr_value *v, const char *name,
		      uint8_t out[32])
{
	if (v->type != JSONR_STRING || v->n != 64 || hex_decode(v->s, out, 32) < 0)
		return bad(c, v, "\"%s\" must be 64 lowercase hex digits", name);
	return 0;
}

static int parse_chunks(struct check *c, const struct jsonr_value *arr, struct bundle_manifest *m)
{
	static const char *const keys[] = {"offset", "size", "stored_offset", "stored_size",
					   "sha256"};
	uint64_t next_offset = 0, next_stored = 0;
	uint32_t i;
	int r;

	if (arr->type != JSONR_ARRAY)
		return bad(c, arr, "\"chunks\" must be an array, not %s",
			   jsonr_type_name(arr->type));
	if (arr->n > MANIFEST_MAX_CHUNKS)
		return bad(c, arr, "more than %d chunks", MANIFEST_MAX_CHUNKS);
	m->chunks = xcalloc(arr->n ? arr->n : 1, sizeof(*m->chunks));
	for (i = 0; i < arr->n; i++) {
		const struct jsonr_value *v[ARRAY_SIZE(keys)], *at = &arr->items[i];
		struct bundle_chunk *ch = &m->chunks[i];
		char what[48];

		snprintf(what, sizeof(what), "chunk %" PRIu32, i);
		r = members(c, at, what, keys, ARRAY_SIZE(keys), v);
		if (r < 0)
			return r;
		if ((r = get_uint(c, v[0], "offset", UINT64_MAX, &ch->offset)) < 0 ||
		    (r = get_uint(c, v[1], "size", m->chunk_size, &ch->size)) < 0 ||
		    (r = get_uint(c, v[2], "stored_offset", UINT64_MAX, &ch->stored_offset)) < 0 ||
		    (r = get_uint(c, v[3], "stored_size", manifest_max_stored(m),
				  &ch->stored_size)) < 0 ||
		    (r = get_sha256(c, v[4], "sha256", ch->sha256)) < 0)
			return r;
		/* Chunks start on chunk_size boundaries, in order, without overlap. */
		if (ch->offset % m->chunk_size || ch->offset < next_offset)
			return bad(c, at,
				   "%s: offset %" PRIu64 " is not a multiple of the chunk size "
				   "after the previous chunk",
				   what, ch->offset);
		if (ch->offset >= m->image_size || ch->size == 0 ||
		    ch->size != (m->image_size - ch->offset < m->chunk_size
					 ? m->image_size - ch->offset
					 : m->chunk_size))
			return bad(c, at,
				   "%s: size %" PRIu64 " at offset %" PRIu64
				   " does not fit the image's %" PRIu64
				   " bytes in chunks of %" PRIu64,
				   what, ch->size, ch->offset, m->image_size, m->chunk_size);
		if (ch->stored_offset != next_stored || ch->stored_size == 0 ||
		    ch->stored_size > m->payload_size - ch->stored_offset)
			return bad(c, at,
				   "%s: stored bytes %" PRIu64 "+%" PRIu64 " do not follow the "
				   "previous chunk's inside the payload",
				   what, ch->stored_offset, ch->stored_size);
		next_offset = ch->offset + ch->size;
		next_stored = ch->stored_offset + ch->stored_size;
	}
	if (next_stored != m->payload_size)
		return bad(c, arr, "the chunks store %" PRIu64 " bytes, the payload has %" PRIu64,
			   next_stored, m->payload_size);
	m->n_chunks = arr->n;
	return 0;
}

/* Format 4's "patch": right after the payload, of whole 4 KiB blocks, at most PATCH_MAX_SIZE. */
static int check_patch(struct check *c, const struct jsonr_value *pv, struct bundle_manifest *m,
		       const char *const *patch_keys, const char *const *from_keys)
{
	const struct jsonr_value *v[4], *fv[2];
	int r;

	if ((r = members(c, pv, "\"patch\"", patch_keys, 4, v)) < 0 ||
	    (r = members(c, v[0], "\"from\"", from_keys, 2, fv)) < 0 ||
	    (r = get_uint(c, fv[0], "size", UINT64_MAX - MANIFEST_MAX_CHUNK_SIZE,
			  &m->patch_from_size)) < 0 ||
	    (r = get_sha256(c, fv[1], "sha256", m->patch_from_sha256)) < 0 ||
	    (r = get_uint(c, v[1], "offset", UINT64_MAX / 4, &m->patch_offset)) < 0 ||
	    (r = get_uint(c, v[2], "size", PATCH_MAX_SIZE, &m->patch_size)) < 0 ||
	    (r = get_sha256(c, v[3], "sha256", m->patch_sha256)) < 0)
		return r;
	if (m->patch_offset != m->payload_offset + m->payload_size)
		return bad(c, v[1], "the patch must follow the payload (offset %" PRIu64 ")",
			   m->payload_offset + m->payload_size);
	if (m->patch_size < 12)
		return bad(c, v[2], "the patch cannot be smaller than its header");
	if (m->patch_from_size == 0 || m->patch_from_size % PATCH_BLOCK ||
	    m->image_size % PATCH_BLOCK)
		return bad(c, fv[0], "a patch needs images of whole 4 KiB blocks");
	m->has_patch = true;
	return 0;
}

static int manifest_check(struct check *c, const struct jsonr_value *root,
			  struct bundle_manifest *m)
{
	static const char *const keys1[] = {"format",  "compatible",  "version",     "build_id",
					    "created", "image",	      "compression", "chunk_size",
					    "payload", "chunk_index", "chunks"};
	static const char *const keys2[] = {"format",	  "compatible", "version",
					    "build_id",	  "created",	"image",
					    "compression", "chunk_size", "frame_size",
					    "payload",	  "chunk_index", "chunks"};
	static const char *const keys3[] = {"format",	  "compatible", "version",
					    "build_id",	  "created",	"image",
					    "compression", "chunk_size", "frame_size",
					    "payload",	  "chunk_index"};
	static const char *const keys4[] = {"format",	  "compatible", "version",
					    "build_id",	  "created",	"image",
					    "compression", "chunk_size", "frame_size",
					    "payload",	  "chunk_index", "patch"};
	static const char *const patch_keys[] = {"from", "offset", "size", "sha256"};
	static const char *const index3_keys[] = {"page_chunks", "size", "sha256"};
	static const char *const image_keys[] = {"size", "sha256"};
	static const char *const payload_keys[] = {"offset", "size", "sha256"};
	static const char *const index_keys[] = {"size", "sha256"};
	const struct jsonr_value *v[ARRAY_SIZE(keys2)], *iv[2], *pv[3], *xv[3];
	const struct jsonr_value *fmt = root->type == JSONR_OBJECT ? jsonr_get(root, "format") : NULL;
	const struct jsonr_value *payload, *index, *chunks;
	uint64_t u;
	int r;

	/* The format first: a newer manifest gets a message about its version, not its keys. */
	if (fmt && fmt->type == JSONR_UINT &&
	    (fmt->u < MANIFEST_FORMAT_MIN || fmt->u > MANIFEST_FORMAT))
		return bad(c, fmt,
			   "format %" PRIu64 " is not supported (this imgforge reads formats %d "
			   "to %d); update imgforge",
			   fmt->u, MANIFEST_FORMAT_MIN, MANIFEST_FORMAT);
	if (fmt && fmt->type == JSONR_UINT && fmt->u == 1)
		r = members(c, root, "the manifest", keys1, ARRAY_SIZE(keys1), v);
	else if (fmt && fmt->type == JSONR_UINT && fmt->u == 3)
		r = members(c, root, "the manifest", keys3, ARRAY_SIZE(keys3), v);
	else if (fmt && fmt->type == JSONR_UINT && fmt->u == 4)
		r = members(c, root, "the manifest", keys4, ARRAY_SIZE(keys4), v);
	else
		r = members(c, root, "the manifest", keys2, ARRAY_SIZE(keys2), v);
	if (r < 0)
		return r;
	if ((r = get_uint(c, v[0], "format", MANIFEST_FORMAT, &u)) < 0)
		return r;
	if (u < MANIFEST_FORMAT_MIN)
		return bad(c, v[0], "format %" PRIu64 " is not supported", u);
	m->format = (unsigned)u;
	if ((r = get_string(c, v[1], "compatible", true, &m->compatible)) < 0 ||
	    (r = get_string(c, v[2], "version", true, &m->version)) < 0 ||
	    (r = get_string(c, v[3], "build_id", false, &m->build_id)) < 0)
		return r;
	if (*m->build_id && !manifest_name_valid(m->build_id))
		return bad(c, v[3],
			   "\"build_id\" must be empty or characters of "
			   "A-Z a-z 0-9 . _ + ~ -");
	if ((r = get_uint(c, v[4], "created", INT64_MAX, &u)) < 0)
		return r;
	m->created = (int64_t)u;
	if ((r = members(c, v[5], "\"image\"", image_keys, 2, iv)) < 0 ||
	    (r = get_uint(c, iv[0], "size", UINT64_MAX - MANIFEST_MAX_CHUNK_SIZE, &m->image_size)) <
		    0 ||
	    (r = get_sha256(c, iv[1], "sha256", m->image_sha256)) < 0)
		return r;
	if (v[6]->type != JSONR_STRING || strcmp(v[6]->s, "zstd"))
		return bad(c, v[6], "\"compression\" must be \"zstd\"");
	if ((r = get_uint(c, v[7], "chunk_size", MANIFEST_MAX_CHUNK_SIZE, &m->chunk_size)) < 0)
		return r;
	if (m->chunk_size < MANIFEST_MIN_CHUNK_SIZE || m->chunk_size % MANIFEST_MIN_CHUNK_SIZE)
		return bad(c, v[7], "\"chunk_size\" must be a multiple of %d",
			   MANIFEST_MIN_CHUNK_SIZE);
	if (m->image_size == 0 || m->image_size > (uint64_t)MANIFEST_MAX_CHUNKS * m->chunk_size)
		return bad(c, iv[0], "the image size must be 1 byte to %d chunks",
			   MANIFEST_MAX_CHUNKS);
	if (m->format == 1) {
		m->frame_size = m->chunk_size;
		payload = v[8];
		index = v[9];
		chunks = v[10];
	} else {
		if ((r = get_uint(c, v[8], "frame_size", m->chunk_size, &m->frame_size)) < 0)
			return r;
		if (m->frame_size < MANIFEST_MIN_CHUNK_SIZE || m->chunk_size % m->frame_size ||
		    m->frame_size % MANIFEST_MIN_CHUNK_SIZE)
			return bad(c, v[8],
				   "\"frame_size\" must be a multiple of %d that divides the "
				   "chunk size",
				   MANIFEST_MIN_CHUNK_SIZE);
		payload = v[9];
		index = v[10];
		chunks = m->format == 2 ? v[11] : NULL;
	}
	if ((r = members(c, payload, "\"payload\"", payload_keys, 3, pv)) < 0 ||
	    (r = get_uint(c, pv[0], "offset", UINT64_MAX / 4, &m->payload_offset)) < 0 ||
	    (r = get_uint(c, pv[1], "size", UINT64_MAX / 4, &m->payload_size)) < 0 ||
	    (r = get_sha256(c, pv[2], "sha256", m->payload_sha256)) < 0)
		return r;
	if (m->format == 1) {
		/* Reserved in format 1: a digest was allowed, nothing was stored. */
		if (index->type == JSONR_NULL) {
			m->has_chunk_index = false;
		} else {
			if ((r = get_sha256(c, index, "chunk_index", m->chunk_index_sha256)) < 0)
				return r;
			m->has_chunk_index = true;
		}
	} else if (m->format >= 3) {
		uint64_t pc;

		if ((r = members(c, index, "\"chunk_index\"", index3_keys, 3, xv)) < 0 ||
		    (r = get_uint(c, xv[0], "page_chunks", MANIFEST_MAX_PAGE_CHUNKS, &pc)) < 0 ||
		    (r = get_uint(c, xv[1], "size", MANIFEST_MAX_INDEX_SIZE, &m->index_size)) < 0 ||
		    (r = get_sha256(c, xv[2], "sha256", m->chunk_index_sha256)) < 0)
			return r;
		if (pc == 0)
			return bad(c, xv[0], "\"page_chunks\" must be 1 to %d",
				   MANIFEST_MAX_PAGE_CHUNKS);
		m->page_chunks = (uint32_t)pc;
		if (m->index_size < manifest_dir_size(m))
			return bad(c, xv[1],
				   "the chunk index of %" PRIu64 " bytes cannot hold its directory "
				   "of %" PRIu64,
				   m->index_size, manifest_dir_size(m));
		m->has_chunk_index = true;
		if (m->format >= 4)
			return check_patch(c, v[11], m, patch_keys, image_keys);
		return 0;
	} else {
		if ((r = members(c, index, "\"chunk_index\"", index_keys, 2, xv)) < 0 ||
		    (r = get_uint(c, xv[0], "size", MANIFEST_MAX_INDEX_SIZE, &m->index_size)) < 0 ||
		    (r = get_sha256(c, xv[1], "sha256", m->chunk_index_sha256)) < 0)
			return r;
		if (m->index_size == 0)
			return bad(c, xv[0], "the chunk index cannot be empty");
		m->has_chunk_index = true;
	}
	return parse_chunks(c, chunks, m);
}

int manifest_parse(const char *json, size_t len, struct bundle_manifest **ret, char *err,
		   size_t errlen)
{
	struct check c = {err, errlen};
	struct jsonr *doc = NULL;
	struct bundle_manifest *m;
	char jerr[256];
	int r;

	r = jsonr_parse(json, len, &doc, jerr, sizeof(jerr));
	if (r < 0) {
		snprintf(err, errlen, "invalid manifest: %s", jerr);
		return -EINVAL;
	}
	m = xcalloc(1, sizeof(*m));
	r = manifest_check(&c, &doc->root, m);
	jsonr_free(doc);
	if (r < 0) {
		bundle_manifest_free(m);
		return r;
	}
	*ret = m;
	return 0;
}
