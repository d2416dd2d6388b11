/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "fs/fat.h"

#define SECTOR	 512U
#define RESERVED 32U

struct fnode {
	char *name; /* component */
	uint8_t short_name[11];
	uint8_t ntres; /* case flags */
	uint8_t nlfn;  /* long name entries before the short one (0: an 8.3 name) */
	bool dir;
	const struct fat_file *file;
	struct fnode **kids;
	size_t nkids, kalloc;
	struct fnode *parent;
	uint32_t first; /* first cluster (0: none) */
	uint32_t nclusters;
};

struct layout {
	const struct fat_opts *o;
	uint32_t spc, fatsz, clusters, total;
	uint32_t next; /* next free cluster */
	uint32_t *fat;
	uint32_t cbytes;
};

/* Split into an 8.3 name; -EINVAL if it needs a long name. */
static int short_name(const char *name, uint8_t out[11], uint8_t *ntres)
{
	static const char ok[] = "!#$%&'()-@^_`{}~";
	const char *dot = strrchr(name, '.');
	size_t bl = dot ? (size_t)(dot - name) : strlen(name);
	size_t el = dot ? strlen(dot + 1) : 0;
	int part;

	if (!bl || bl > 8 || el > 3 || (dot && !el) || !strcmp(name, ".") || !strcmp(name, ".."))
		return -EINVAL;
	memset(out, ' ', 11);
	*ntres = 0;
	for (part = 0; part < 2; part++) {
		const char *s = part ? dot + 1 : name;
		size_t len = part ? el : bl, i;
		bool upper = false, lower = false;

		for (i = 0; i < len; i++) {
			unsigned char c = (unsigned char)s[i];
			if (isupper(c))
				upper = true;
			else if (islower(c))
				lower = true;
			else if (!isdigit(c) && !strchr(ok, c))
				return -EINVAL;
			out[(part ? 8 : 0) + i] = (uint8_t)toupper(c);
		}
		if (upper && lower)
			return -EINVAL;
		if (lower)
			*ntres |= part ? 0x10 : 0x08;
	}
	return 0;
}

static struct fnode *child(struct fnode *dir, const char *name, size_t len)
{
	size_t i;
	struct fnode *n;

	for (i = 0; i < dir->nkids; i++)
		if (strlen(dir->kids[i]->name) == len && !strncmp(dir->kids[i]->name, name, len))
			return dir->kids[i];
	n = xcalloc(1, sizeof(*n));
	n->name = xstrndup(name, len);
	n->parent = dir;
	GROW(dir->kids, dir->kalloc, dir->nkids + 1);
	dir->kids[dir->nkids++] = n;
	return n;
}

static void free_tree(struct fnode *n)
{
	size_t i;

	for (i = 0; i < n->nkids; i++)
		free_tree(n->kids[i]);
	free(n->kids);
	free(n->name);
	free(n);
}

static int cmp_nodes(const void *a, const void *b)
{
	return strcmp((*(struct fnode *const *)a)->name, (*(struct fnode *const *)b)->name);
}

static uint32_t alloc_chain(struct layout *l, uint32_t count)
{
	uint32_t first = l->next, i;

	if (!count)
		return 0;
	for (i = 0; i < count; i++)
		l->fat[first + i] = i + 1 < count ? first + i + 1 : 0x0FFFFFFF;
	l->next += count;
	return first;
}

/*
 * A long name FAT can hold: printable ASCII without the characters FAT
 * forbids, at most 255 characters, not ending in a dot or a space.
 */
static bool long_name_ok(const char *name)
{
	size_t n = strlen(name), i;

	if (!n || n > 255 || name[n - 1] == '.' || name[n - 1] == ' ' || !strcmp(name, ".") ||
	    !strcmp(name, ".."))
		return false;
	for (i = 0; i < n; i++)
		if (name[i] < 0x20 || name[i] > 0x7e || strchr("\"*/:<>?\\|", name[i]))
			return false;
	return true;
}

static bool short_taken(const struct fnode *d, size_t self, const uint8_t name[11])
{
	size_t i;

	for (i = 0; i < d->nkids; i++)
		if (i != self && !memcmp(d->kids[i]->short_name, name, 11))
			return true;
	return false;
}

/*
 * The short alias of a long name, as Windows makes it: the first characters
 * of the base name in upper case (others than 8.3's replaced by '_', dots
 * and spaces dropped), "~N" with the first N free in the directory, and up
 * to three characters of the extension.
 */
static int short_alias(struct fnode *d, size_t i, struct strbuf *err)
{
	static const char ok[] = "!#$%&'()-@^_`{}~";
	struct fnode *k = d->kids[i];
	const char *dot = strrchr(k->name, '.');
	char base[9] = "", ext[4] = "";
	size_t bl = 0, el = 0, n;
	const char *c;
	unsigned num;

	if (dot == k->name)
		dot = NULL;
	for (c = k->name; *c && c != dot && bl < 8; c++) {
		unsigned char u = (unsigned char)toupper((unsigned char)*c);

		if (u != '.' && u != ' ')
			base[bl++] = isalnum(u) || strchr(ok, u) ? (char)u : '_';
	}
	for (c = dot ? dot + 1 : ""; *c && el < 3; c++) {
		unsigned char u = (unsigned char)toupper((unsigned char)*c);

		if (u != '.' && u != ' ')
			ext[el++] = isalnum(u) || strchr(ok, u) ? (char)u : '_';
	}
	if (!bl)
		base[bl++] = '_';
	for (num = 1; num < 1000000; num++) {
		char tail[9];
		int tl = snprintf(tail, sizeof(tail), "~%u", num);

		n = bl < 8 - (size_t)tl ? bl : 8 - (size_t)tl;
		memset(k->short_name, ' ', 11);
		memcpy(k->short_name, base, n);
		memcpy(k->short_name + n, tail, (size_t)tl);
		memcpy(k->short_name + 8, ext, el);
		if (!short_taken(d, i, k->short_name))
			return 0;
	}
	strbuf_addf(err, "no short name is left for '%s'", k->name);
	return -ENOSPC;
}

/* Allocate clusters depth-first in sorted order; check names. */
static int allocate(struct layout *l, struct fnode *d, bool root, struct strbuf *err)
{
	size_t i, j, entries = root ? 1 : 2;
	int r;

	qsort(d->kids, d->nkids, sizeof(*d->kids), cmp_nodes);
	/* 8.3 names first, so that no alias takes the short name of a file. */
	for (i = 0; i < d->nkids; i++) {
		struct fnode *k = d->kids[i];

		memset(k->short_name, 0, 11);
		if (short_name(k->name, k->short_name, &k->ntres) == 0)
			continue;
		memset(k->short_name, 0, 11);
		k->ntres = 0;
		if (!l->o->long_names) {
			strbuf_addf(err,
				    "'%s' is not an 8.3 name (at most 8 + 3 characters, each part "
				    "all upper or all lower case)",
				    k->name);
			return -EINVAL;
		}
		if (!long_name_ok(k->name)) {
			strbuf_addf(err,
				    "'%s' cannot be a FAT name (printable ASCII without "
				    "\"*/:<>?\\|, at most 255 characters)",
				    k->name);
			return -EINVAL;
		}
		k->nlfn = (uint8_t)((strlen(k->name) + 12) / 13);
	}
	for (i = 0; i < d->nkids; i++) {
		for (j = 0; j < i; j++)
			if (!strcasecmp(d->kids[j]->name, d->kids[i]->name) ||
			    (!d->kids[i]->nlfn &&
			     !memcmp(d->kids[j]->short_name, d->kids[i]->short_name, 11))) {
				strbuf_addf(err, "'%s' and '%s' are the same name in FAT",
					    d->kids[j]->name, d->kids[i]->name);
				return -EINVAL;
			}
		if (d->kids[i]->nlfn) {
			r = short_alias(d, i, err);
			if (r < 0)
				return r;
		}
		entries += 1 + d->kids[i]->nlfn;
	}
	d->nclusters = (uint32_t)((entries * 32 + l->cbytes - 1) / l->cbytes);
	if (l->next + d->nclusters > l->clusters + 2)
		goto full;
	d->first = alloc_chain(l, d->nclusters);
	for (i = 0; i < d->nkids; i++) {
		struct fnode *k = d->kids[i];
		if (k->dir) {
			r = allocate(l, k, false, err);
			if (r < 0)
				return r;
		} else {
			k->nclusters = (uint32_t)((k->file->len + l->cbytes - 1) / l->cbytes);
			if (l->next + k->nclusters > l->clusters + 2)
				goto full;
			k->first = alloc_chain(l, k->nclusters);
		}
	}
	return 0;
full:
	strbuf_addf(err, "the files do not fit in the %u KiB FAT filesystem",
		    l->clusters * (l->cbytes / 1024));
	return -ENOSPC;
}

static void fat_time(int64_t t, uint16_t *ret_date, uint16_t *ret_time)
{
	time_t tt = (time_t)(t < 315532800 ? 315532800 : t); /* 1980-01-01 */
	struct tm tm;

	gmtime_r(&tt, &tm);
	if (tm.tm_year > 207)
		tm.tm_year = 207;
	*ret_date = (uint16_t)(((tm.tm_year - 80) << 9) | ((tm.tm_mon + 1) << 5) | tm.tm_mday);
	*ret_time = (uint16_t)((tm.tm_hour << 11) | (tm.tm_min << 5) | (tm.tm_sec / 2));
}

static void dirent(uint8_t *e, const uint8_t name[11], uint8_t attr, uint8_t ntres,
		   uint32_t cluster, uint32_t size, int64_t mtime)
{
	uint16_t d, t;

	fat_time(mtime, &d, &t);
	memcpy(e, name, 11);
	e[11] = attr;
	e[12] = ntres;
	put_le16(e + 14, t);
	put_le16(e + 16, d);
	put_le16(e + 18, d);
	put_le16(e + 20, (uint16_t)(cluster >> 16));
	put_le16(e + 22, t);
	put_le16(e + 24, d);
	put_le16(e + 26, (uint16_t)cluster);
	put_le32(e + 28, size);
}

/*
 * Long name entry seq (1-based; the last one, written first, has 0x40):
 * 13 UCS-2 characters of the name, a 0 after its end, 0xFFFF after that,
 * and the checksum of the short entry that follows them.
 */
static void lfn_entry(uint8_t *e, const struct fnode *c, unsigned seq)
{
	static const uint8_t at[13] = {1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30};
	size_t len = strlen(c->name), j;
	uint8_t sum = 0;

	for (j = 0; j < 11; j++)
		sum = (uint8_t)(((sum & 1) << 7) + (sum >> 1) + c->short_name[j]);
	e[0] = (uint8_t)(seq | (seq == c->nlfn ? 0x40 : 0));
	e[11] = 0x0F;
	e[12] = 0;
	e[13] = sum;
	for (j = 0; j < 13; j++) {
		size_t idx = (seq - 1) * 13 + j;

		put_le16(e + at[j], idx < len	 ? (uint16_t)(unsigned char)c->name[idx]
				    : idx == len ? 0
						 : 0xFFFF);
	}
}

/* Write only the non-zero sectors of buf: the region already reads as zeros. */
static int write_sparse(int fd, const uint8_t *buf, size_t len, uint64_t off)
{
	static const uint8_t zero[SECTOR];
	size_t i;

	for (i = 0; i < len; i += SECTOR) {
		size_t n = len - i < SECTOR ? len - i : SECTOR;
		int r;

		if (!memcmp(buf + i, zero, n))
			continue;
		r = pwrite_all(fd, buf + i, n, off + i);
		if (r < 0)
			return r;
	}
	return 0;
}

static int write_dirs(int fd, uint64_t data_off, const struct layout *l, const struct fnode *d,
		      bool root, const struct fat_opts *o)
{
	size_t bytes = (size_t)d->nclusters * l->cbytes, i, k = 0;
	_cleanup_free_ uint8_t *buf = xcalloc(1, bytes);
	uint8_t dot[11], dotdot[11];
	int r;

	if (root) {
		uint8_t label[11];
		size_t n = o->label ? strlen(o->label) : 0;
		memset(label, ' ', 11);
		for (i = 0; i < n && i < 11; i++)
			label[i] = (uint8_t)toupper((unsigned char)o->label[i]);
		if (n)
			dirent(buf + 32 * k++, label, 0x08, 0, 0, 0, o->mtime);
	} else {
		memset(dot, ' ', 11);
		dot[0] = '.';
		memset(dotdot, ' ', 11);
		dotdot[0] = dotdot[1] = '.';
		dirent(buf + 32 * k++, dot, 0x10, 0, d->first, 0, o->mtime);
		dirent(buf + 32 * k++, dotdot, 0x10, 0,
		       d->parent && d->parent->parent ? d->parent->first : 0, 0, o->mtime);
	}
	for (i = 0; i < d->nkids; i++) {
		const struct fnode *c = d->kids[i];
		unsigned seq;

		for (seq = c->nlfn; seq >= 1; seq--)
			lfn_entry(buf + 32 * k++, c, seq);
		dirent(buf + 32 * k++, c->short_name, c->dir ? 0x10 : 0x20, c->ntres, c->first,
		       c->dir ? 0 : (uint32_t)c->file->len, o->mtime);
	}
	r = write_sparse(fd, buf, bytes, data_off + (uint64_t)(d->first - 2) * l->cbytes);
	for (i = 0; r == 0 && i < d->nkids; i++) {
		const struct fnode *c = d->kids[i];
		if (c->dir)
			r = write_dirs(fd, data_off, l, c, false, o);
		else if (c->file->len)
			r = write_sparse(fd, c->file->data, c->file->len,
					 data_off + (uint64_t)(c->first - 2) * l->cbytes);
	}
	return r;
}

int fat_write(int fd, uint64_t offset, const struct fat_opts *o, const struct fat_file *files,
	      size_t n, struct strbuf *err)
{
	struct layout l = {0};
	struct fnode *root = xcalloc(1, sizeof(*root));
	_cleanup_free_ uint8_t *resv = NULL, *fatbuf = NULL;
	uint32_t prev = 0;
	uint64_t data_off;
	size_t i;
	int r = 0;

	root->name = xstrdup("");
	root->dir = true;
	l.o = o;
	l.total = (uint32_t)(o->size / SECTOR);
	l.spc = o->size <= (260ULL << 20) ? 1 : o->size <= (8ULL << 30) ? 8 : 32;
	l.cbytes = l.spc * SECTOR;
	/* The smallest FAT that maps every cluster left after the FATs themselves. */
	for (l.fatsz = 1; l.fatsz < l.total; l.fatsz++) {
		if (RESERVED + 2ULL * l.fatsz >= l.total)
			break;
		l.clusters = (l.total - RESERVED - 2 * l.fatsz) / l.spc;
		if (((uint64_t)l.clusters + 2) * 4 <= (uint64_t)l.fatsz * SECTOR)
			break;
		prev = l.fatsz;
	}
	(void)prev;
	if (RESERVED + 2ULL * l.fatsz >= l.total)
		l.clusters = 0;
	if (o->size / SECTOR > 0xFFFFFFFFULL || l.clusters < 65525 || l.clusters > 0x0FFFFFF5) {
		strbuf_addf(err, "a FAT32 filesystem of %llu MiB is out of range (33 MiB to 2 TiB)",
			    (unsigned long long)(o->size >> 20));
		r = -EINVAL;
		goto out;
	}
	l.fat = xcalloc(l.clusters + 2, sizeof(uint32_t));
	l.fat[0] = 0x0FFFFFF8;
	l.fat[1] = 0x0FFFFFFF;
	l.next = 2;

	for (i = 0; i < n; i++) {
		const char *p = files[i].path, *slash;
		struct fnode *d = root, *f;

		while ((slash = strchr(p, '/'))) {
			d = child(d, p, (size_t)(slash - p));
			d->dir = true;
			p = slash + 1;
		}
		f = child(d, p, strlen(p));
		if (f->dir || f->file) {
			strbuf_addf(err, "'%s' is given twice", files[i].path);
			r = -EEXIST;
			goto out;
		}
		f->file = &files[i];
	}
	r = allocate(&l, root, true, err);
	if (r < 0)
		goto out;

	/* Reserved area: boot sector, FSInfo, and their backups at 6 and 7. */
	resv = xcalloc(RESERVED, SECTOR);
	{
		uint8_t *b = resv;
		b[0] = 0xEB, b[1] = 0x58, b[2] = 0x90;
		memcpy(b + 3, "IMGFORGE", 8);
		put_le16(b + 11, SECTOR);
		b[13] = (uint8_t)l.spc;
		put_le16(b + 14, RESERVED);
		b[16] = 2;
		b[21] = 0xF8;
		put_le16(b + 24, 32);
		put_le16(b + 26, 64);
		put_le32(b + 28, o->hidden_sectors);
		put_le32(b + 32, l.total);
		put_le32(b + 36, l.fatsz);
		put_le32(b + 44, 2);
		put_le16(b + 48, 1);
		put_le16(b + 50, 6);
		b[64] = 0x80;
		b[66] = 0x29;
		put_le32(b + 67, o->volume_id);
		memset(b + 71, ' ', 11);
		for (i = 0; o->label && o->label[i] && i < 11; i++)
			b[71 + i] = (uint8_t)toupper((unsigned char)o->label[i]);
		memcpy(b + 82, "FAT32   ", 8);
		b[510] = 0x55, b[511] = 0xAA;

		b = resv + SECTOR;
		put_le32(b, 0x41615252);
		put_le32(b + 484, 0x61417272);
		put_le32(b + 488, l.clusters + 2 - l.next);
		put_le32(b + 492, l.next);
		put_le32(b + 508, 0xAA550000);
		memcpy(resv + 6 * SECTOR, resv, 2 * SECTOR);
	}
	r = write_sparse(fd, resv, RESERVED * SECTOR, offset);

	fatbuf = xcalloc(l.fatsz, SECTOR);
	for (i = 0; i < (size_t)l.clusters + 2; i++)
		put_le32(fatbuf + 4 * i, l.fat[i]);
	if (r == 0)
		r = write_sparse(fd, fatbuf, (size_t)l.fatsz * SECTOR, offset + RESERVED * SECTOR);
	if (r == 0)
		r = write_sparse(fd, fatbuf, (size_t)l.fatsz * SECTOR,
				 offset + ((uint64_t)RESERVED + l.fatsz) * SECTOR);
	data_off = offset + ((uint64_t)RESERVED + 2ULL * l.fatsz) * SECTOR;
	if (r == 0)
		r = write_dirs(fd, data_off, &l, root, true, o);
	if (r < 0)
		strbuf_addf(err, "cannot write the FAT filesystem: %s", strerror(-r));
out:
	free(l.fat);
	free_tree(root);
	return r;
}
