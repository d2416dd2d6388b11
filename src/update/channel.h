/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_CHANNEL_H
#define IMGFORGE_CHANNEL_H

#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

/*
 * The channel index: DIR/channels.json, signed by DIR/channels.json.sig
 * (a detached CMS signature, sign.h), tells devices which bundle each
 * channel offers:
 *
 *   {"format":1,"channels":{"stable":{"compatible":"NAME","version":"V",
 *    "url":"URL","sha256":"<hex of the bundle file>","size":N}}}
 */
struct channel_entry {
	char *compatible;
	char *version;
	char *url;
	uint8_t sha256[32];
	uint64_t size;
};

/*
 * Parse the channel index (len bytes of json, already verified by the
 * caller) and return the entry of channel in *ret (its strings are the
 * caller's: channel_entry_release()). Returns 0, -ENOENT when the index
 * has no such channel, or -EINVAL; err gets one message either way.
 */
int channel_parse(const char *json, size_t len, const char *channel, struct channel_entry *ret,
		  char *err, size_t errlen);
void channel_entry_release(struct channel_entry *e);

/*
 * Set channel to e in the index old (old_len bytes; NULL for a new index),
 * keeping the other channels, and write the result, compact, into out.
 * Returns 0 or -EINVAL (old is not a valid index) with a message in err.
 */
int channel_update(const char *old, size_t old_len, const char *channel,
		   const struct channel_entry *e, struct strbuf *out, char *err, size_t errlen);

/* A channel name: 1..64 bytes of [A-Za-z0-9._-], not starting with '.'. */
int channel_name_valid(const char *name);

#endif
