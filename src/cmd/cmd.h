/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_CMD_H
#define IMGFORGE_CMD_H

#include <stdbool.h>
#include <stddef.h>

#include "core/options.h"

/*
 * One function per command, each in src/cmd/<name>.c. They parse their own
 * options with parse_options() (argv[0] is the command name), log their own
 * errors once, and return the process exit status: 0 success, 1 failure,
 * EXIT_USAGE (2) usage error.
 */
struct cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

int cmd_check(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_mkfs(int argc, char **argv);
int cmd_build(int argc, char **argv);
int cmd_cache(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_registry(int argc, char **argv);
int cmd_outdated(int argc, char **argv);
int cmd_boot(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
int cmd_bundle(int argc, char **argv);
int cmd_channel(int argc, char **argv);
int cmd_publish(int argc, char **argv);
int cmd_fetch(int argc, char **argv);

struct recipe;
struct recipe_args {
	const char *image;
	const char *profile;
	const char **sets;
	size_t nsets;
	char **owned; /* strings made here, freed by recipe_args_release() */
	size_t nowned;
	const char **include_dirs; /* -I, in order */
	size_t ninclude_dirs;
	bool json;
};

/* The options of every command that reads an image definition, into a struct recipe_args. */
int recipe_opt_profile(const struct opt *o, const char *arg, struct strbuf *err);
int recipe_opt_set(const struct opt *o, const char *arg, struct strbuf *err);
int recipe_opt_mirror(const struct opt *o, const char *arg, struct strbuf *err);
int recipe_opt_include_dir(const struct opt *o, const char *arg, struct strbuf *err);
#define RECIPE_OPTIONS(a)                                                                      \
	OPT_CALLBACK(0, "profile", (a), "P", "apply profile P from the file's profiles: map",   \
		     recipe_opt_profile),                                                       \
	OPT_CALLBACK(0, "set", (a), "NAME=VALUE",                                               \
		     "set a variable (wins over the recipe's variables:)", recipe_opt_set),     \
	OPT_CALLBACK(0, "mirror", (a), "URL",                                                   \
		     "shorthand for --set mirror=URL\n($IMGFORGE_MIRROR by default)",          \
		     recipe_opt_mirror),                                                        \
	OPT_CALLBACK('I', "include-dir", (a), "DIR",                                             \
		     "look for includes in DIR too (before $IMGFORGE_PATH\nand the installed " \
		     "recipes)",                                                                \
		     recipe_opt_include_dir)

void recipe_args_release(struct recipe_args *a);
/*
 * Parse the arguments of a command that reads an image definition (the
 * command's options, RECIPE_OPTIONS() and its own, and one IMAGE, stored in
 * a->image) and load the image, and with ret_keys its stage keys, printing
 * every diagnostic. Returns -1 with *ret (and *ret_keys) set to go on, else
 * the exit status to stop with (help printed: 0, usage error: EXIT_USAGE,
 * the image did not load: 1).
 */
struct stage_keys;
/* Only the parsing: -1 to go on (a->image set), else the exit status to stop with. */
int recipe_cmd_parse(const struct opt_cmd *cmd, int argc, char **argv, struct recipe_args *a);
/* Load a->image with the options, the diagnostics handed to the caller. 0 or -errno. */
struct diags;
int recipe_args_load_diags(struct recipe_args *a, struct recipe **ret, struct diags *d);
/* The same, printing every diagnostic. */
int recipe_args_load(struct recipe_args *a, struct recipe **ret);
int recipe_cmd_load(const struct opt_cmd *cmd, int argc, char **argv, struct recipe_args *a,
		    struct recipe **ret, struct stage_keys *ret_keys);

/*
 * A registered build's output file, for the commands that take a build id
 * where they take a file (export, bundle, publish). The query names the
 * output and the words of the messages, so that every command says the same
 * things in its own terms; the registry is --registry, or registry.db in
 * --cache or in the default cache directory, opened read-only.
 */
struct build_output_query {
	const char *cmd;	/* "export": the prefix of every message */
	const char *output;	/* the output's file name: "disk.raw" */
	bool takes_file;	/* the command takes a file too: "'x' is neither a file nor ..." */
	const char *give;	/* what to give instead: "give a raw disk or a build id from ..." */
	const char *no_output;	/* what to do when the build has no such output on record */
	const char *stale;	/* what to do when the file is not the build's any more */
	/*
	 * How to tell that the file is still the one the build wrote: its
	 * SHA-256 against the record (true), or, where hashing would cost as
	 * much as the command itself, the manifest.json written with the
	 * outputs naming the build (false).
	 */
	bool check_sha256;
	const char *registry;
	const char *cache;
};

/*
 * Resolve id (a build id or a unique prefix) to the path of q->output in
 * its output directory. Prints one error line and returns -1 when it cannot;
 * else 0 with *ret_path (and *ret_build when not NULL) the caller's.
 */
struct registry_build;
int build_output_resolve(const struct build_output_query *q, const char *id,
			 struct registry_build **ret_build, char **ret_path);

/* Where 'imgforge fetch' puts build id's outputs: <cache>/builds/<id>. 0 or -errno. */
int build_fetched_dir(const char *cache, const char *id, char **ret, struct strbuf *err);

#endif
