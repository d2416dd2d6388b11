/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "fs/dpkg.h"
#include "tap.h"
#include "core/util.h"

static const char sample[] =
	"Package: libc6\n"
	"Status: install ok installed\n"
	"Priority: optional\n"
	"Architecture: amd64\n"
	"Multi-Arch: same\n"
	"Version: 2.36-9+deb12u4\n"
	"Description: GNU C Library: Shared libraries\n"
	" Contains the standard libraries that are used by nearly all programs on\n"
	" the system.\n"
	" .\n"
	" Package: fake-from-description\n"
	"\n"
	"Package: removed-but-configured\n"
	"Status: deinstall ok config-files\n"
	"Architecture: amd64\n"
	"Version: 1.0\n"
	"\n"
	"Package: bash\n"
	"Essential: yes\n"
	"Status: install ok installed\n"
	"Architecture: amd64\n"
	"Version: 5.2.15-2+b2\n"
	"\n"
	"Package: held\n"
	"Status: hold ok installed\n"
	"Architecture: all\n"
	"Version: 3\n"
	"\n"
	"Package: broken\n"
	"Status: install reinstreq half-installed\n"
	"Architecture: amd64\n"
	"Version: 1\n"
	"\n"
	"Package: libc6\n"
	"Status: install ok installed\n"
	"Architecture: i386\n"
	"Version: 2.36-9+deb12u4\n"
	"\n"
	"Package: no-version\n"
	"Status: install ok installed\n"
	"Architecture: amd64\n"
	"\n"
	"this line is not a field\n"
	"package: zlib1g\r\n"
	"STATUS:   install   ok   installed  \r\n"
	"architecture: amd64\r\n"
	"version: 1:1.2.13.dfsg-1\r\n"
	"\r\n"
	"Package: adduser\n"
	"Status: install ok installed\n"
	"Architecture: all\n"
	"Version: 3.134"; /* no final newline */

TEST(test_parse_sample)
{
	struct dpkg_package *p = NULL;
	size_t n = 0;
	int skipped;

	skipped = dpkg_parse_status(sample, strlen(sample), &p, &n);
	CHECK_INT(skipped, 3); /* removed-but-configured, broken, no-version */
	CHECK_INT(n, 6);
	if (n == 6) {
		CHECK_STR(p[0].name, "adduser");
		CHECK_STR(p[0].version, "3.134");
		CHECK_STR(p[0].arch, "all");
		CHECK_STR(p[1].name, "bash");
		CHECK_STR(p[1].version, "5.2.15-2+b2");
		CHECK_STR(p[2].name, "held");
		CHECK_STR(p[3].name, "libc6");
		CHECK_STR(p[3].arch, "amd64");
		CHECK_STR(p[4].name, "libc6");
		CHECK_STR(p[4].arch, "i386");
		CHECK_STR(p[5].name, "zlib1g");
		CHECK_STR(p[5].version, "1:1.2.13.dfsg-1");
		CHECK_STR(p[5].arch, "amd64");
	}
	dpkg_packages_free(p, n);
}

TEST(test_parse_duplicates_and_empty)
{
	static const char dup[] = "Package: a\nStatus: install ok installed\nArchitecture: all\n"
				  "Version: 1\n\n"
				  "Package: a\nStatus: install ok installed\nArchitecture: all\n"
				  "Version: 2\n\n";
	struct dpkg_package *p = NULL;
	size_t n = 7;

	CHECK_INT(dpkg_parse_status(dup, strlen(dup), &p, &n), 1);
	CHECK_INT(n, 1);
	if (n == 1)
		CHECK_STR(p[0].version, "2");
	dpkg_packages_free(p, n);

	p = NULL;
	CHECK_INT(dpkg_parse_status("", 0, &p, &n), 0);
	CHECK_INT(n, 0);
	CHECK(p == NULL);
	CHECK_INT(dpkg_parse_status("\n\n\n", 3, &p, &n), 0);
	CHECK_INT(n, 0);
}

/* Every invariant the registry relies on, for any input. */
static void check_invariants(const struct dpkg_package *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		CHECK(p[i].name[0] && p[i].version[0] && p[i].arch[0]);
		CHECK(!strpbrk(p[i].name, " \t\r\n"));
		if (i)
			CHECK(dpkg_package_compare(&p[i - 1], &p[i]) < 0);
	}
}

TEST(test_parse_truncated_and_random)
{
	static const char alphabet[] = "Package: Status install ok installed Version Architecture"
				       "\n\n\n\r\t :-~1a\0";
	char buf[512];
	uint32_t s = 1;
	size_t len, i, k;

	/* Every prefix of the sample: a status file cut anywhere. */
	for (len = 0; len <= strlen(sample); len++) {
		struct dpkg_package *p = NULL;
		size_t n = 0;
		char *copy = xmalloc(len ? len : 1);

		memcpy(copy, sample, len); /* exact size: ASan catches reads past it */
		dpkg_parse_status(copy, len, &p, &n);
		check_invariants(p, n);
		dpkg_packages_free(p, n);
		free(copy);
	}
	/* Random junk built from the bytes that matter. */
	for (k = 0; k < 3000; k++) {
		struct dpkg_package *p = NULL;
		size_t n = 0;
		char *copy;

		s = s * 1103515245u + 12345u;
		len = (s >> 8) % sizeof(buf);
		for (i = 0; i < len; i++) {
			s = s * 1103515245u + 12345u;
			if ((s >> 20) % 4 == 0) {
				/* copy a whole word of the alphabet now and then */
				size_t at = (s >> 8) % (sizeof(alphabet) - 12);
				size_t w = 1 + (s >> 4) % 12;
				while (w-- && i < len)
					buf[i++] = alphabet[at++];
				i--;
			} else {
				buf[i] = alphabet[(s >> 8) % sizeof(alphabet)];
			}
		}
		copy = xmalloc(len ? len : 1);
		memcpy(copy, buf, len);
		dpkg_parse_status(copy, len, &p, &n);
		check_invariants(p, n);
		dpkg_packages_free(p, n);
		free(copy);
	}
}

struct vcase {
	const char *a, *b;
	int want;
};

TEST(test_version_compare)
{
	static const struct vcase cases[] = {
		{"1.0", "1.0", 0},
		{"1.0~rc1", "1.0", -1},
		{"1.0~~", "1.0~", -1},
		{"1.0~", "1.0", -1},
		{"1.0", "1.0+b1", -1},
		{"1.0", "1.0a", -1},
		{"1.0a", "1.0+", -1}, /* letters sort before other characters */
		{"1.0+", "1.0.", -1}, /* then by ASCII */
		{"1.0", "1.0.0", -1},
		{"1.2.9", "1.2.10", -1},
		{"2.0", "1:0.1", -1}, /* epoch wins */
		{"0:1.0", "1.0", 0},
		{"1.0", "1.0-0", 0}, /* absent revision is like "0" */
		{"1.0-1", "1.0-2", -1},
		{"1.0-1~bpo1", "1.0-1", -1},
		{"2.36-9", "2.36-9+deb12u4", -1},
		{"1.0-1-2", "1.0-1-10", -1}, /* the last hyphen starts the revision */
		{"00001", "1", 0},
		{"123456789012345678901234567889", "123456789012345678901234567890", -1},
		{"A", "a", -1},
		{"1:1.2.13.dfsg-1", "1:1.2.13.dfsg-3", -1},
		{"10:1", "9:2", 1},
		{"", "", 0},
		{"", "0", 0},
		{"~", "", -1},
		{":", "-", 1},
		{"a:1", "1", 1}, /* not an epoch: compared as text */
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		int got = dpkg_version_compare(cases[i].a, cases[i].b);
		int rev = dpkg_version_compare(cases[i].b, cases[i].a);

		if (got != cases[i].want || rev != -cases[i].want) {
			printf("#   '%s' vs '%s': got %d (reverse %d), want %d\n", cases[i].a,
			       cases[i].b, got, rev, cases[i].want);
			tap_child_failures++;
		}
	}
}

int main(void)
{
	RUN(test_parse_sample);
	RUN(test_parse_duplicates_and_empty);
	RUN(test_parse_truncated_and_random);
	RUN(test_version_compare);
	return tap_done();
}
