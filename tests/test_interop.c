/* test_interop.c — mcring and Debian's python3-pymemcache share a cache.
 *
 * A cache is often filled by one language and read by another, so items
 * written by mcring must read back identically in pymemcache, and the
 * reverse, flags included (mcring's flag bit map is compatible with
 * pymemcache's where they overlap: 0 raw bytes, 2 integer, 16 text, ...).
 * Python runs as a subprocess with a small inline script against the
 * test's own memcached; it prints what it read as "key flags hex" lines that
 * the test compares byte for byte. The interpreter is MCR_PYTHON, else
 * /usr/bin/python3 (Debian's, which has the module), else python3 on PATH.
 * When python3 or the module is missing the test is skipped, except under
 * CI=true, where that is a failure.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "support.h"

static const char* python(void) {
  const char* env = getenv("MCR_PYTHON");
  if (env != NULL && env[0] != '\0')
    return env;
  if (access("/usr/bin/python3", X_OK) == 0)
    return "/usr/bin/python3";
  return "python3";
}

/* Runs python -c script with arguments; captures stdout into out[cap].
 * Returns the exit status (-1 when python could not be started). */
static int run_python(const char* script, const char* arg, char* out,
                      size_t cap) {
  int p[2];
  cr_assert(pipe(p) == 0);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    dup2(p[1], STDOUT_FILENO);
    close(p[0]);
    close(p[1]);
    execlp(python(), python(), "-c", script, arg, (char*)NULL);
    _exit(127);
  }
  close(p[1]);
  size_t len = 0;
  ssize_t n;
  while (len + 1 < cap && (n = read(p[0], out + len, cap - len - 1)) != 0) {
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      break;
    len += (size_t)n;
  }
  out[len] = '\0';
  close(p[0]);
  int status;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status))
    return -1;
  return WEXITSTATUS(status) == 127 ? -1 : WEXITSTATUS(status);
}

static void setup(void) {
  char out[64];
  if (run_python("import pymemcache", NULL, out, sizeof out) != 0)
    skip_or_fail("python3 with pymemcache (python3-pymemcache) is missing");
  fx_setup();
}

TestSuite(interop, .init = setup, .fini = fx_teardown, .timeout = 60);

static const char bin[] = "\x00\r\nEND\r\nVALUE \xff\xfe\x80 end";
#define BIN_LEN (sizeof bin - 1)

static void hex(const void* p, size_t n, char* out) {
  const unsigned char* b = p;
  for (size_t i = 0; i < n; i++)
    sprintf(out + 2 * i, "%02x", b[i]);
  out[2 * n] = '\0';
}

/* Reads keys with pymemcache and prints "key flags hex" per key; values
 * come back untouched through a pass-through serde. */
static const char* py_reader =
    "import sys\n"
    "from pymemcache.client.base import Client\n"
    "class Raw:\n"
    "    def serialize(self, k, v): return v, 0\n"
    "    def deserialize(self, k, v, f): return (v, f)\n"
    "c = Client(('127.0.0.1', int(sys.argv[1])), serde=Raw())\n"
    "for k in ['m-raw', 'm-int', 'm-bin', 'm-empty', 'm-big', 'm-miss']:\n"
    "    r = c.get(k)\n"
    "    if r is None: print(k, 'miss')\n"
    "    else: print(k, r[1], r[0].hex())\n";

Test(interop, mcring_writes_pymemcache_reads) {
  static char big[100000];
  for (size_t i = 0; i < sizeof big; i++)
    big[i] = (char)(i * 31 + 7);
  assert_rc(mcr_client_set(fx_client, "m-raw", 5, "hello", 5, 0, 0, 0), MCR_OK);
  assert_rc(mcr_client_set(fx_client, "m-int", 5, "42", 2, 2, 0, 0), MCR_OK);
  assert_rc(mcr_client_set(fx_client, "m-bin", 5, bin, BIN_LEN, 0x10000, 0, 0),
            MCR_OK);
  assert_rc(mcr_client_set(fx_client, "m-empty", 7, "", 0, 16, 0, 0), MCR_OK);
  assert_rc(mcr_client_set(fx_client, "m-big", 5, big, sizeof big, 7, 0, 0),
            MCR_OK);

  char port[16];
  snprintf(port, sizeof port, "%d", fx_mcd.port);
  static char out[300000];
  cr_assert_eq(run_python(py_reader, port, out, sizeof out), 0,
               "python failed: %s", out);

  static char want[300000], h[2 * sizeof big + 1];
  size_t w = 0;
  w += (size_t)sprintf(want + w, "m-raw 0 68656c6c6f\n");
  w += (size_t)sprintf(want + w, "m-int 2 3432\n");
  hex(bin, BIN_LEN, h);
  w += (size_t)sprintf(want + w, "m-bin 65536 %s\n", h);
  w += (size_t)sprintf(want + w, "m-empty 16 \n");
  hex(big, sizeof big, h);
  w += (size_t)sprintf(want + w, "m-big 7 %s\n", h);
  sprintf(want + w, "m-miss miss\n");
  cr_assert_str_eq(out, want);
}

/* Writes with pymemcache: its own serde for an int and a str (flags 2 and
 * 16), raw bytes with explicit flags, a binary value, set_many, and a cas
 * update of an item mcring wrote (argv[2] is mcring's cas unique). */
static const char* py_writer =
    "import sys\n"
    "from pymemcache.client.base import Client\n"
    "from pymemcache import serde\n"
    "port = int(sys.argv[1].split()[0]); cas = sys.argv[1].split()[1]\n"
    "c = Client(('127.0.0.1', port), serde=serde.pickle_serde)\n"
    "assert c.set('p-int', 42, noreply=False)\n"
    "assert c.set('p-text', 'h\\u00e9llo', noreply=False)\n"
    "assert c.set('p-bytes', b'raw bytes', noreply=False)\n"
    "assert c.set('p-flags', b'xyz', flags=0x1234, noreply=False)\n"
    "assert c.set('p-bin', bytes.fromhex('00'+'0d0a'+'454e440d0a'+'ff80'),"
    " noreply=False)\n"
    "assert c.set_many({'p-m1': b'one', 'p-m2': b'two'}, noreply=False) == []\n"
    "assert c.cas('p-cas', b'by python', cas, noreply=False)\n"
    "print('ok')\n";

Test(interop, pymemcache_writes_mcring_reads) {
  cl_set(fx_client, "p-cas", "by mcring");
  mcr_item_t item;
  assert_rc(mcr_client_gets(fx_client, "p-cas", 5, &item), MCR_OK);
  char arg[64];
  snprintf(arg, sizeof arg, "%d %llu", fx_mcd.port,
           (unsigned long long)item.cas);
  char out[4096];
  cr_assert_eq(run_python(py_writer, arg, out, sizeof out), 0,
               "python failed: %s", out);
  cr_assert_str_eq(out, "ok\n");

  struct {
    const char* key;
    const char* value;
    size_t len;
    uint32_t flags;
  } want[] = {
      {"p-int", "42", 2, 2},
      {"p-text", "h\xc3\xa9llo", 6, 16},
      {"p-bytes", "raw bytes", 9, 0},
      {"p-flags", "xyz", 3, 0x1234},
      {"p-bin", "\x00\r\nEND\r\n\xff\x80", 10, 0},
      {"p-m1", "one", 3, 0},
      {"p-m2", "two", 3, 0},
      {"p-cas", "by python", 9, 0},
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    assert_rc(
        mcr_client_get(fx_client, want[i].key, strlen(want[i].key), &item),
        MCR_OK);
    assert_value(item, want[i].value, want[i].len);
    cr_assert_eq(item.flags, want[i].flags, "%s: flags %u", want[i].key,
                 item.flags);
  }
  /* The same through one multi-key request. */
  const char* keys[] = {"p-m2", "p-none", "p-bin", "p-m1"};
  size_t lens[] = {4, 6, 5, 4};
  mcr_item_t items[4];
  cr_assert_eq(t_get_multi(fx_client, 4, keys, lens, items), 3);
  assert_value(items[0], "two", 3);
  assert_rc(items[1].status, MCR_MISS);
  assert_value(items[2], want[4].value, 10);
  assert_value(items[3], "one", 3);
}

/* pymemcache's gets hands a cas unique to mcring, whose cas must accept it
 * and make pymemcache's second cas fail. */
static const char* py_cas =
    "import sys\n"
    "from pymemcache.client.base import Client\n"
    "port = int(sys.argv[1].split()[0])\n"
    "c = Client(('127.0.0.1', port))\n"
    "if sys.argv[1].split()[1] == 'gets':\n"
    "    v, cas = c.gets('x-cas'); print(v.decode(), cas.decode())\n"
    "else:\n"
    "    print(c.cas('x-cas', b'late', sys.argv[1].split()[2],"
    " noreply=False))\n";

Test(interop, cas_across_clients) {
  cl_set(fx_client, "x-cas", "start");
  char arg[64], out[256];
  snprintf(arg, sizeof arg, "%d gets", fx_mcd.port);
  cr_assert_eq(run_python(py_cas, arg, out, sizeof out), 0, "%s", out);
  char val[32];
  unsigned long long cas = 0;
  cr_assert_eq(sscanf(out, "%31s %llu", val, &cas), 2, "%s", out);
  cr_assert_str_eq(val, "start");
  assert_rc(mcr_client_cas(fx_client, "x-cas", 5, "mcring", 6, 0, 0, cas, 0),
            MCR_OK);
  snprintf(arg, sizeof arg, "%d cas %llu", fx_mcd.port, cas);
  cr_assert_eq(run_python(py_cas, arg, out, sizeof out), 0, "%s", out);
  cr_assert_str_eq(out, "False\n", "pymemcache's stale cas must fail");
  cl_expect(fx_client, "x-cas", "mcring");
}
