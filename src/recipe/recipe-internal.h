/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_RECIPE_INTERNAL_H
#define IMGFORGE_RECIPE_INTERNAL_H

/*
 * What the files of the recipe module share, and nothing outside it uses:
 * yaml.c (nodes, parsing, diagnostics), schema.c (the typed field table and
 * its checks), load.c (files, includes, merging), subst.c (${var}
 * substitution), checks.c (checks across keys once resolved), print.c
 * (canonical YAML and JSON) and recipe.c (recipe_load and the accessors).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "recipe/recipe.h"

/* --- nodes (yaml.c) ------------------------------------------------------- */
struct ynode *ynode_new(enum ynode_kind kind, const struct ypos *pos);
struct ynode *ynode_scalar(const char *s, const struct ypos *pos);
void ynode_seq_push(struct ynode *seq, struct ynode *item);
void ynode_map_push(struct ynode *map, const char *key, const struct ypos *kpos,
		    struct ynode *val);
/* Index of key in a map, or -1 (also when map is not a map). */
ssize_t ynode_map_index(const struct ynode *map, const char *key);
void ynode_map_remove(struct ynode *map, size_t i);
struct ynode *ynode_copy(const struct ynode *src);
/* A plain empty scalar, "~" or "null": an unset value. */
bool ynode_is_null(const struct ynode *n);
/* "a map", "a list" or "a scalar", for messages. */
const char *ynode_kind_name(const struct ynode *n);

/* --- schema (schema.c) ---------------------------------------------------- */
enum vtype {
	T_STR,	   /* any string */
	T_NAME,	   /* image or profile name */
	T_VERSION, /* version string */
	T_INT,	   /* integer in [min, max] */
	T_BOOL,
	T_SIZE,	     /* "1536M" */
	T_SIZE_AUTO, /* size or "auto" */
	T_MODE,	     /* octal permission bits */
	T_OWNER,     /* user[:group], names or numbers */
	T_ABSPATH,   /* absolute path inside the image */
	T_HOSTPATH,  /* path on the host, relative to the file that names it */
	T_SOURCE,    /* URL or host path */
	T_PKG,	     /* Debian package name */
	T_UNIT,	     /* systemd unit name */
	T_CMDLINE,   /* kernel command line: recipe_cmdline_valid(), at most .max */
	T_ENUM,
	T_SHA256,
	T_ACCOUNT, /* user or group name: recipe_account_name_valid() */
	T_SSHKEY,  /* one OpenSSH public key line: recipe_ssh_key_valid() */
	T_SUDO,	   /* false or nopasswd */
	T_LIST,	    /* items described by .sub[0] */
	T_MAP,	    /* keys described by .sub (NULL-terminated by key) */
	T_VARS,	    /* map of variable name -> scalar */
	T_PROFILES, /* map of profile name -> profile map */
	T_OVERLAY,  /* host path string, or map described by .sub */
};

struct field {
	const char *key;
	enum vtype type;
	const struct field *sub;
	const char *const *choices;
	long min, max;
	const char *idkey; /* T_LIST of maps: items with the same value of this key replace */
	const char *help;  /* what the value should look like, for messages */
};

/* The top level of an image definition or recipe file. */
extern const struct field schema_top;
extern const struct field schema_top_fields[];

const struct field *schema_field_find(const struct field *fields, const char *key);
bool schema_parse_bool(const char *s, bool *ret);
bool schema_parse_long(const char *s, long *ret);
bool schema_valid_var_name(const char *s);
/* False for a map none of whose keys is, or is close to, a top-level recipe key. */
bool schema_looks_like_recipe(const struct ynode *root);

enum vmode {
	V_STRUCTURE, /* kinds and keys; values without ${...} */
	V_VALUES,    /* values that had ${...}, after substitution */
};

struct vctx {
	struct diags *d;
	enum vmode mode;
	const char *dir; /* directory of the file being loaded, for host paths */
};

/*
 * Check n against f. V_STRUCTURE (per file, before merging) checks kinds,
 * keys and the values without ${...}, and resolves host paths against
 * v->dir; V_VALUES checks the values that had ${...} once substituted.
 * Problems are added to v->d.
 */
void schema_validate(struct vctx *v, const struct field *f, const char *name, struct ynode *n);

/* --- loading and merging (load.c) ----------------------------------------- */
struct loader {
	struct recipe *r;
	struct diags *d;
	char *chain[RECIPE_MAX_INCLUDES]; /* realpaths of the files being loaded */
	const char *chain_shown[RECIPE_MAX_INCLUDES];
	int depth;
	int loaded;
	bool too_many; /* more than RECIPE_MAX_INCLUDES, reported */
	const char *const *include_dirs; /* the search path, from recipe_opts */
	size_t ninclude_dirs;
};

/* "a FIFO", "a character device", ... for messages about a host path. */
const char *load_kind_name(mode_t mode);

/*
 * Load one file and everything it includes; return the merged tree of the
 * file (its includes first, the file itself last), without include:, or
 * NULL with diagnostics added. from is the include: item that named it.
 */
struct ynode *load_file(struct loader *l, const char *path, const struct ypos *from);
/* Merge src into dst, both described by f (see load.c for the rules). */
void load_merge(struct ynode *dst, const struct ynode *src, const struct field *f);

/* --- variables (subst.c) -------------------------------------------------- */
enum subst_state { SUBST_UNUSED, SUBST_ACTIVE, SUBST_DONE, SUBST_FAILED, SUBST_TOO_BIG };

struct subst {
	struct ynode *vars;
	struct diags *d;
	enum subst_state *state; /* per variable, in the order of vars */
	char **value;		 /* per variable: its expansion, once SUBST_DONE */
	size_t total;		 /* bytes produced so far, against RECIPE_MAX_EXPANDED */
	bool total_exceeded;
	char *too_big;	     /* the outermost variable that grew past RECIPE_MAX_VALUE */
	bool stopped;	     /* a size limit was hit and reported: substitute no more */
	const char *stack[RECIPE_MAX_VAR_DEPTH];
	int depth;
};

void subst_init(struct subst *s, struct ynode *vars, struct diags *d);
/* Expand ${name}, ${name:-default} and $$ in a string, appending to out. */
int subst_expand(struct subst *s, const char *in, const struct ypos *pos, struct strbuf *out);
/* Replace the variables that were used by their expansion (the others stay as written). */
void subst_finish(struct subst *s);
/* Whether anything expanded the variable. */
bool subst_used(const struct subst *s, const char *name);
void subst_release(struct subst *s);
/* Substitute every scalar under n in place. */
void subst_tree(struct subst *s, struct ynode *n);
/* Resolve host paths of values that were only known after substitution. */
void subst_late_paths(struct ynode *n, const struct field *f);

/* --- checks across keys (checks.c) ---------------------------------------- */
/* Checks of the resolved tree that no single value can make: base, files, overlays, disk. */
void checks_run(const struct ynode *root, struct diags *d);
/* A disk needs imgforge's boot support: run only on a recipe without other errors. */
void checks_boot_support(const struct ynode *root, struct diags *d);

#endif
