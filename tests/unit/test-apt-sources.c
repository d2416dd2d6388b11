/* SPDX-License-Identifier: MIT */
/* net/apt-sources.c: which URI serves which suite, from one-line and deb822 files. */
#include <stdio.h>
#include <sys/stat.h>

#include "core/file.h"
#include "net/apt-sources.h"
#include "tap.h"

static void put(const char *path, const char *text)
{
	CHECK(write_file_atomic(path, text, strlen(text), 0644) == 0);
}

TEST(test_one_line)
{
	struct apt_sources s = { 0 };

	apt_sources_parse(&s, "sources.list",
			  "# deb http://old.invalid/debian bookworm main\n"
			  "deb-src http://src.invalid/debian bookworm main\n"
			  "deb [arch=amd64 signed-by=/k.gpg] http://a.invalid/debian/ bookworm main\n"
			  "  deb\thttp://b.invalid/debian-security bookworm-security main # note\n"
			  "deb cdrom:[Debian]/ bookworm main\n"
			  "deb http://a.invalid/debian\n"
			  "deb [broken http://c.invalid/debian sid main\n");
	CHECK_INT(s.n, 2);
	CHECK_STR(apt_sources_uri_for(&s, "bookworm"), "http://a.invalid/debian");
	CHECK_STR(apt_sources_uri_for(&s, "bookworm-security"),
		  "http://b.invalid/debian-security");
	CHECK(apt_sources_uri_for(&s, "sid") == NULL);
	apt_sources_release(&s);
}

TEST(test_deb822)
{
	struct apt_sources s = { 0 };

	apt_sources_parse(&s, "debian.sources",
			  "Types: deb deb-src\n"
			  "# a comment inside the stanza\n"
			  "URIs: http://a.invalid/debian\n"
			  "Suites: bookworm\n"
			  "  bookworm-updates\n"
			  "Components: main\n"
			  "\n"
			  "\n"
			  "Types: deb-src\n"
			  "URIs: http://src.invalid/debian\n"
			  "Suites: trixie\n"
			  "\n"
			  "Types: deb\n"
			  "Enabled: no\n"
			  "URIs: http://off.invalid/debian\n"
			  "Suites: forky\n"
			  "\n"
			  "types: deb\n"
			  "uris: http://b.invalid/debian-security/\n"
			  "suites: bookworm-security\n");
	CHECK_STR(apt_sources_uri_for(&s, "bookworm"), "http://a.invalid/debian");
	CHECK_STR(apt_sources_uri_for(&s, "bookworm-updates"), "http://a.invalid/debian");
	CHECK_STR(apt_sources_uri_for(&s, "bookworm-security"),
		  "http://b.invalid/debian-security");
	CHECK(apt_sources_uri_for(&s, "trixie") == NULL);
	CHECK(apt_sources_uri_for(&s, "forky") == NULL);
	CHECK_INT(s.n, 3);
	apt_sources_release(&s);
}

TEST(test_read_dir)
{
	struct apt_sources s = { 0 };

	CHECK(mkdir("etc", 0755) == 0 && mkdir("etc/sources.list.d", 0755) == 0);
	put("etc/sources.list", "deb http://main.invalid/debian bookworm main\n");
	put("etc/sources.list.d/b.sources",
	    "Types: deb\nURIs: http://sec.invalid/debian-security\nSuites: bookworm-security\n");
	put("etc/sources.list.d/a.list", "deb http://first.invalid/debian trixie main\n");
	put("etc/sources.list.d/c.list.disabled", "deb http://off.invalid/debian sid main\n");
	CHECK(apt_sources_read("etc", &s) == 0);
	CHECK_STR(apt_sources_uri_for(&s, "bookworm"), "http://main.invalid/debian");
	CHECK_STR(apt_sources_uri_for(&s, "bookworm-security"),
		  "http://sec.invalid/debian-security");
	CHECK_STR(apt_sources_uri_for(&s, "trixie"), "http://first.invalid/debian");
	CHECK(apt_sources_uri_for(&s, "sid") == NULL);
	apt_sources_release(&s);
	/* No apt at all: no sources, no error. */
	CHECK(apt_sources_read("nowhere", &s) == 0);
	CHECK_INT(s.n, 0);
	apt_sources_release(&s);
}

int main(void)
{
	RUN(test_one_line);
	RUN(test_deb822);
	RUN(test_read_dir);
	return tap_done();
}
