/*
 * _version.c: linked into every C twin by the runner. Before main() runs, it
 * reports on stderr which libcrypto the twin actually loaded, so the runner can
 * check that the C column and the "openssl" backend used the same library.
 */
#include <stdio.h>
#include <openssl/crypto.h>

__attribute__((constructor)) static void conformance_report_version(void)
{
    fprintf(stderr, "# libcrypto: %s\n", OpenSSL_version(OPENSSL_VERSION));
}
