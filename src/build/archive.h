/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_ARCHIVE_H
#define IMGFORGE_ARCHIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"
#include "recipe/recipe.h"

/*
 * The apt archives a package base is built from (base.suites, base.mirror,
 * base.security_mirror, base.snapshot, base.sources; docs/recipes.md), and
 * their state: the SHA-256 of each suite's InRelease file, which changes
 * with every upload to the suite. The state is part of the base key, so
 * that a security upload makes the next build build a new base.
 */
struct archive_source {
	char *uri;	  /* the snapshot date appended when base.snapshot is set */
	char *suite;
	char *components; /* space-separated */
	char *signed_by;  /* keyring on the host, or NULL */
	char *from;	  /* where the URI came from, for messages */
	char state[65];	  /* SHA-256 hex of dists/SUITE/InRelease (or Release); "" unknown */
	int64_t checked;  /* when state was read from the archive (Unix time) */
};

struct archive {
	struct archive_source *v;
	size_t n, alloc;
	const char *snapshot; /* base.snapshot or NULL; owned by the recipe */
	char digest[65];      /* archive_check()'s digest of every state, "" before */
};

/*
 * Work out the sources of r's package base: the suites from base.mirror
 * (else this machine's apt source for the release), the -security suites
 * from base.security_mirror (else this machine's apt source for it, else
 * derived from the mirror), then base.sources. No network. Returns 0, or
 * -EINVAL with one line in err saying which flag or variable to set.
 */
int archive_resolve(const struct recipe *r, struct archive *ret, struct strbuf *err);

/*
 * One line of what archive_check() did that a user should see; warn for
 * what must be seen even with --quiet (an archive could not be reached).
 */
typedef void (*archive_note_fn)(void *userdata, bool warn, const char *line);

struct archive_check_opts {
	const char *state_dir; /* where the last known states are kept */
	bool refresh;	       /* check the archive even when the state is fresh */
	unsigned max_age_s;    /* a state younger than this is used without checking */
	archive_note_fn note;
	void *userdata;
};

/* The default of max_age_s: docs/build.md says why. */
#define ARCHIVE_MAX_AGE_S 3600

/*
 * Fill in each source's state: from state_dir while younger than max_age_s
 * (unless refresh), else fetched over libcurl and recorded in state_dir
 * (written, fsync'ed, renamed). A source that cannot be reached keeps its
 * last known state, with a note saying so. *ret_digest is the SHA-256 of
 * every suite's state, in order: what the base key hashes. Returns 0, or
 * -errno with one line in err (the suite does not exist; cannot be
 * reached and was never seen).
 */
int archive_check(struct archive *a, const struct archive_check_opts *o, char ret_digest[65],
		  struct strbuf *err);

/* The mmdebstrap operand for a source: "deb [signed-by=K] URI SUITE COMPONENTS". */
char *archive_source_line(const struct archive_source *s);

void archive_release(struct archive *a);

#endif
