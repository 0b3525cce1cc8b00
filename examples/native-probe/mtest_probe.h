/* mtest's trusted native probe ABI, version 1.
 *
 * A native probe is a shared library that reads a daemon's state with a native client
 * library (a database's C client, a vendor SDK) for mtest's failure bundles. mtest loads
 * it only when pyproject.toml says so and trusts it:
 *
 *     [tool.mtest.probes.db]
 *     native = "probes/libdb_probe.so"   # relative to the project root
 *     trusted = true
 *     timeout = 5                        # seconds, as for a WebAssembly probe
 *     address = "127.0.0.1:5432"         # any other key is a setting handed to the probe
 *
 * Each call runs in a helper process of its own, so a probe that crashes or hangs costs
 * that process, never mtest; one that takes longer than `timeout` is killed.
 */
#ifndef MTEST_PROBE_H
#define MTEST_PROBE_H

#include <stddef.h>
#include <stdint.h>

#define MTEST_PROBE_ABI_VERSION 1

/* One `key = value` of the probe's table (values as text). */
typedef struct {
    const char *key;
    const char *value;
} mtest_probe_setting;

/* The failure being bundled. */
typedef struct {
    const char *test_id;  /* pytest node id */
    const char *outcome;  /* failed, error, hung or crashed */
    const char *message;  /* one line */
} mtest_probe_context;

/* Must return MTEST_PROBE_ABI_VERSION. */
uint32_t mtest_probe_abi_version(void);

/* Writes NUL-terminated text into `out` (at most `out_len` bytes, NUL included) and
 * returns 0 when the text is the daemon's state, nonzero when it says why there is none.
 * Anything printed to stdout or stderr goes nowhere mtest shows. */
int32_t mtest_probe_check(const mtest_probe_setting *settings, size_t n_settings,
                          const mtest_probe_context *context, char *out, size_t out_len);

#endif
