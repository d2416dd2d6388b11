/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_REGISTRY_H
#define IMGFORGE_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fs/dpkg.h"
#include "core/hash.h"
#include "core/util.h"

/*
 * The build registry: one record per finished build, with its inputs,
 * outputs, installed packages and file list, so that builds can be listed,
 * shown and compared. Stored in SQLite today; the functions below are the
 * whole interface a backend implements (see docs/registry.md for the
 * PostgreSQL plan). Nothing here prints; errors come back as -errno plus one
 * line appended to err.
 */

struct registry;

struct registry_output {
	char *name; /* file name in the output directory */
	char sha256[SHA256_HEX_LEN];
	uint64_t size;
};

struct registry_file {
	char *path;		     /* absolute path inside the image, "/etc/hostname" */
	char sha256[SHA256_HEX_LEN]; /* content (symlink: its target); "" for directories */
	uint32_t mode;		     /* st_mode: type and permissions */
	uint32_t uid, gid;
	uint64_t size;
};

/*
 * One build. The caller fills it (registry_build_add_* append copies of
 * their arguments); registry_get() returns one. Every pointer inside is
 * owned by the record and freed by registry_build_free().
 */
struct registry_build {
	char *id; /* assigned by registry_add() when NULL */
	char *image;
	char *version;
	char *profile;	 /* NULL when the image has no profiles */
	int64_t created; /* Unix time; registry_add() uses now when 0 */
	char *key_base;	 /* stage cache keys; NULL for a stage not built */
	char *key_rootfs;
	char *key_disk;
	char *inputs; /* canonical JSON of the resolved inputs (valid JSON: shown as is), or NULL */
	char *outdir; /* absolute path of the output directory; NULL when not recorded */
	struct registry_output *outputs;
	size_t n_outputs;
	struct dpkg_package *packages; /* sorted by name, arch (registry_add sorts) */
	size_t n_packages;
	struct registry_file *files; /* sorted by path (registry_add sorts) */
	size_t n_files;
};

/* A new, empty record (never NULL). */
struct registry_build *registry_build_new(void);
void registry_build_free(struct registry_build *b);
void registry_build_freep(struct registry_build **b);
#define _cleanup_build_ _cleanup_(registry_build_freep)

void registry_build_add_output(struct registry_build *b, const char *name, const char *sha256,
			       uint64_t size);
void registry_build_add_package(struct registry_build *b, const char *name, const char *version,
				const char *arch);
void registry_build_add_file(struct registry_build *b, const char *path, const char *sha256,
			     uint32_t mode, uint32_t uid, uint32_t gid, uint64_t size);
/* Take over a list from dpkg_parse_status(); *pkgs is cleared. */
void registry_build_take_packages(struct registry_build *b, struct dpkg_package **pkgs, size_t n);

/*
 * Open the registry at path (an SQLite file, created with its directory's
 * parent existing; the schema is migrated to the current version). A
 * "postgresql://" or "postgres://" URL is reserved for the PostgreSQL
 * backend and gives -EOPNOTSUPP for now. Free with registry_close().
 */
int registry_open(const char *path, struct registry **ret, struct strbuf *err);
/*
 * Open an existing registry only to read it (ls, show, diff): nothing is
 * created, migrated or written, so it works on a file the user cannot
 * write. An older schema version is read as it is (what it lacks reads as
 * empty). -ENOENT, with a message, when there is no file at path.
 */
int registry_open_readonly(const char *path, struct registry **ret, struct strbuf *err);
void registry_close(struct registry *r);
void registry_closep(struct registry **r);
#define _cleanup_registry_ _cleanup_(registry_closep)

/*
 * Record a finished build, all of it in one transaction: either every row
 * is there after this returns 0, or (on any failure, or if the process
 * dies first) none is. Assigns b->id when NULL and b->created when 0, and
 * sorts its packages and files. An id already registered gives -EEXIST.
 * ret_id (may be NULL) receives a malloc'd copy of the id.
 */
int registry_add(struct registry *r, struct registry_build *b, char **ret_id, struct strbuf *err);

/* A row of `imgforge ls`: the build without its lists, with their sizes. */
struct registry_summary {
	char *id;
	char *image;
	char *version;
	char *profile;
	int64_t created;
	size_t n_packages;
	size_t n_files;
	size_t n_outputs;
};

/* All builds, oldest first. *ret (NULL when empty) is the caller's: registry_summaries_free(). */
int registry_list(struct registry *r, struct registry_summary **ret, size_t *ret_n,
		  struct strbuf *err);
void registry_summaries_free(struct registry_summary *s, size_t n);

/*
 * The build whose id is id_or_prefix, or the only one starting with it.
 * -ENOENT when none matches, -ENOTUNIQ when several do (err names some),
 * -EINVAL for an empty string. *ret is the caller's: registry_build_free().
 */
int registry_get(struct registry *r, const char *id_or_prefix, struct registry_build **ret,
		 struct strbuf *err);

/* --- where builds were published (imgforge publish) --- */

/*
 * One image made in a cloud from a build. Never holds a credential: what
 * identifies the image, not who made it. Strings owned by the record.
 */
struct registry_publication {
	char *build_id;
	char *target;	/* "aws", "openstack", "scaleway" */
	char *region;	/* "" when the cloud has none */
	char *image_id; /* the cloud's id of the image */
	char *name;	/* the image's name there */
	char *location; /* more (a snapshot id, an endpoint); NULL when none */
	char *format;	/* of the file uploaded: "vmdk", "qcow2", "raw" */
	char sha256[SHA256_HEX_LEN]; /* of the file uploaded */
	bool public_image;
	int64_t created; /* Unix time; now when 0 */
};

/*
 * Record a publication of a registered build (p->build_id: a full id).
 * -ENOENT when there is no such build. The same image (target, region,
 * image id) recorded again replaces the older record.
 */
int registry_add_publication(struct registry *r, const struct registry_publication *p,
			     struct strbuf *err);
/*
 * The publications of build_id (a full id), or of every build when NULL,
 * oldest first. A registry older than publications reads as none. *ret
 * (NULL when none) is the caller's: registry_publications_free().
 */
int registry_list_publications(struct registry *r, const char *build_id,
			       struct registry_publication **ret, size_t *ret_n,
			       struct strbuf *err);
void registry_publications_free(struct registry_publication *p, size_t n);

/* --- comparing two builds (no database involved) --- */

enum registry_change {
	REGISTRY_ADDED,
	REGISTRY_REMOVED,
	REGISTRY_UPGRADED,   /* packages: newer version in the second build */
	REGISTRY_DOWNGRADED, /* packages: older version in the second build */
	REGISTRY_CHANGED,    /* files: content, type, mode, owner or size differ;
				packages: versions equal by dpkg's order but spelled differently */
};

const char *registry_change_name(enum registry_change c);

/* Which properties of a changed file differ. */
enum {
	REGISTRY_FILE_CONTENT = 1 << 0,
	REGISTRY_FILE_MODE = 1 << 1,
	REGISTRY_FILE_OWNER = 1 << 2,
	REGISTRY_FILE_SIZE = 1 << 3,
};

struct registry_package_change {
	enum registry_change change;
	const struct dpkg_package *old; /* NULL when added */
	const struct dpkg_package *new; /* NULL when removed */
};

struct registry_file_change {
	enum registry_change change;
	unsigned what; /* REGISTRY_FILE_* bits, for REGISTRY_CHANGED */
	const struct registry_file *old;
	const struct registry_file *new;
};

/*
 * What changed from build a to build b, in name / path order. The entries
 * point into a and b, which must outlive the diff. Free with
 * registry_diff_free().
 */
struct registry_diff {
	struct registry_package_change *packages;
	size_t n_packages;
	struct registry_file_change *files;
	size_t n_files;
};

struct registry_diff *registry_diff(const struct registry_build *a, const struct registry_build *b);
void registry_diff_free(struct registry_diff *d);

/*
 * A new build id: the UTC time of creation and 32 random bits,
 * "20250101-120000-1a2b3c4d", so ids sort by creation time as strings. ret
 * must hold REGISTRY_ID_LEN bytes.
 */
#define REGISTRY_ID_LEN 25
void registry_new_id(int64_t created, char ret[REGISTRY_ID_LEN]);

#endif
