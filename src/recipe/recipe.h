/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_RECIPE_H
#define IMGFORGE_RECIPE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/util.h"

/*
 * The recipe language: an image definition (in images/) that includes
 * recipe fragments (in recipes/), merged, with a profile and variables
 * applied, validated against a typed schema. See docs/recipes.md.
 *
 * The resolved recipe is kept as a tree of nodes that remember where each
 * value came from (file:line:col), so later stages can point users at the
 * line that caused a problem.
 */

/* Limits that keep hostile input from exhausting memory or the stack. */
#define RECIPE_MAX_FILE_SIZE (1024 * 1024)
#define RECIPE_MAX_DEPTH     64
#define RECIPE_MAX_INCLUDES  256
/* ${var} substitution: one value, and all values of a recipe together (docs/recipes.md). */
#define RECIPE_MAX_VALUE     (1024 * 1024)
#define RECIPE_MAX_EXPANDED  (64 * 1024 * 1024)
/* How deep variables may refer to variables. */
#define RECIPE_MAX_VAR_DEPTH 64

struct ypos {
	const char *file; /* owned by the recipe's file table */
	int line;	  /* 1-based; 0 when not from a file */
	int col;	  /* 1-based */
};

enum ynode_kind { YNODE_SCALAR, YNODE_SEQ, YNODE_MAP };

struct ynode {
	enum ynode_kind kind;
	struct ypos pos;
	char *str;	 /* YNODE_SCALAR: the value, after substitution once resolved */
	char *abspath;	 /* path-typed scalars: absolute host path (resolved relative to
			    the file that wrote it), NULL otherwise */
	bool plain;	 /* scalar written without quotes */
	bool had_var;	 /* scalar contained ${...} before substitution */
	size_t n;	 /* number of items (SEQ) or keys (MAP) */
	size_t alloc;
	struct ynode **v; /* SEQ items, MAP values */
	char **k;	  /* MAP keys */
	struct ypos *kpos; /* MAP key positions */
};

/* One diagnostic: "file:line:col: error: message" (or "warning:"). */
struct diag {
	char *file;
	int line, col;
	bool warning;
	char *msg;
};

struct diags {
	struct diag *v;
	size_t n, alloc;
	size_t nerrors; /* entries that are errors, not warnings */
};

void diags_add(struct diags *d, const struct ypos *pos, const char *fmt, ...) _printf_(3, 4);
void diags_warn(struct diags *d, const struct ypos *pos, const char *fmt, ...) _printf_(3, 4);
/* Print every diagnostic to stderr, in the order found. */
void diags_print(const struct diags *d);
/*
 * Every diagnostic as a JSON array of {file, line, column, severity,
 * message} objects (line and column 0 when there is no position), pretty
 * printed, ending with a newline.
 */
void diags_json(const struct diags *d, struct strbuf *out);
void diags_release(struct diags *d);

/*
 * A value or key as messages may show it: at most 40 bytes, control and
 * non-ASCII bytes escaped as \xNN, "..." when cut. A file that is not a
 * recipe (a password file, a key) must not end up on a terminal or in a CI
 * log. Returns buf.
 */
#define RECIPE_EXCERPT_SIZE 200
const char *recipe_excerpt(const char *s, char buf[RECIPE_EXCERPT_SIZE]);

struct recipe_opts {
	const char *profile;	 /* NULL: the "default" profile if the file defines one */
	const char *const *sets; /* "name=value" strings from --set, in order */
	size_t nsets;
	const char *const *defaults; /* "name=value" used only where the recipe sets nothing */
	size_t ndefaults;
	/*
	 * Where an include that is not found next to the file that names it is
	 * looked for, in order (-I, $IMGFORGE_PATH, the installed recipes).
	 */
	const char *const *include_dirs;
	size_t ninclude_dirs;
};

struct recipe {
	char *path;	    /* the image definition as given */
	char *profile;	    /* selected profile name ("default" when none given) */
	struct ynode *root; /* resolved tree: no include:, no profiles: */
	char **files;	    /* every file loaded, image file first (owns ypos.file) */
	size_t nfiles, files_alloc;
	char **vars_used; /* variables some value expanded (the others are shown as written) */
	size_t nvars_used, vars_used_alloc;
};

/*
 * Load, merge and validate an image definition. On success returns 0 and
 * *ret is a new recipe (free with recipe_free()). On failure returns
 * -EINVAL (or -errno) and every problem found is in diags, each pointing at
 * the file, line and column of the offending key or value.
 */
int recipe_load(const char *path, const struct recipe_opts *opts, struct recipe **ret,
		struct diags *diags);
void recipe_free(struct recipe *r);

/* --- reading the resolved tree -------------------------------------------- */
/* Look up a dotted key ("base.suite"); NULL when absent. Owned by the recipe. */
const struct ynode *recipe_get(const struct recipe *r, const char *dotted);
/* Whether any value of the resolved recipe used the variable. */
bool recipe_var_used(const struct recipe *r, const char *name);
/* Scalar value of a dotted key, or def when absent or not a scalar. */
const char *recipe_get_str(const struct recipe *r, const char *dotted, const char *def);
const struct ynode *ynode_map_get(const struct ynode *map, const char *key);
/* A T_BOOL value (true, yes, on...) of a validated recipe; def when n is NULL. */
bool recipe_bool(const struct ynode *n, bool def);

/*
 * Canonical output of the resolved recipe. stages (may be NULL when
 * nstages is 0) are printed after it, in the order given, as a "stages:"
 * map of name to key: the build layer's cache keys (build/keys.h).
 */
struct recipe_stage {
	const char *name;
	const char *key;
};
int recipe_print_yaml(const struct recipe *r, const struct recipe_stage *stages, size_t nstages,
		      struct strbuf *out);
void recipe_print_json(const struct recipe *r, const struct recipe_stage *stages, size_t nstages,
		       struct strbuf *out, bool pretty);

/*
 * The canonical compact JSON of n (NULL: null), typed by the schema of the
 * dotted key it sits under ("overlays", "base.keyring"): what a cache key
 * hashes, so that two spellings of one value give one key.
 */
void recipe_value_json(const char *dotted, const struct ynode *n, struct strbuf *out);

/* Whether a variable name is valid: a letter or '_', then letters, digits, '_'. */
bool recipe_var_name_valid(const char *name);

/*
 * Whether a name follows systemd's unit name grammar (NAME.TYPE, NAME@.TYPE,
 * NAME@INSTANCE.TYPE; NAME alone means NAME.service). Shared by the schema
 * and by the build code that joins unit names to paths.
 */
bool recipe_unit_name_valid(const char *name);

/*
 * Whether a kernel command line uses only letters, digits, spaces and
 * CMDLINE_PUNCT: nothing that ends the line or the menu entry in grub.cfg,
 * quotes, expands a GRUB variable or starts a command or comment.
 */
#define CMDLINE_PUNCT "=,._-:/+@%~"
bool recipe_cmdline_valid(const char *cmdline);

/* Whether a user or group name follows Debian's adduser rule (docs/recipes.md, users:). */
bool recipe_account_name_valid(const char *name);
/* NULL when s is one valid OpenSSH public key line, else why not (a static string). */
const char *recipe_ssh_key_valid(const char *s);

/* Parse YAML text into a node tree; used by the fuzz target and tests. */
int ynode_parse(const char *file, const char *buf, size_t len, struct ynode **ret,
		struct diags *diags);
void ynode_free(struct ynode *n);

#endif
