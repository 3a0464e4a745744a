/* replay.c — runs a fuzz target's corpus without libFuzzer.
 *
 * Every fuzz target is also linked with this main() into a plain program
 * (tests/fuzz/replay_<what>) that `make check` runs over the target's seed
 * corpus and regression inputs in tests/fuzz/corpus/<what>/. So every
 * input that once crashed stays a regression test in the normal gcc build,
 * under the ASan build and under valgrind, with no clang needed. Arguments
 * are files or directories; with none, $MCR_TOP_SRCDIR/tests/fuzz/corpus/
 * <MCR_FUZZ_NAME> is used. Exit status 0 when every input ran.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

static int run_file(const char* path) {
  FILE* f = fopen(path, "rb");
  if (!f) {
    perror(path);
    return -1;
  }
  size_t cap = 1 << 16, len = 0;
  uint8_t* buf = malloc(cap);
  size_t r;
  while (buf && (r = fread(buf + len, 1, cap - len, f)) > 0) {
    len += r;
    if (len == cap)
      buf = realloc(buf, cap *= 2);
  }
  fclose(f);
  if (!buf)
    return -1;
  /* An exact-size copy, so a read past the input is a reported error. */
  uint8_t* exact = malloc(len ? len : 1);
  memcpy(exact, buf, len);
  free(buf);
  LLVMFuzzerTestOneInput(exact, len);
  free(exact);
  return 0;
}

static int run_path(const char* path, int* count) {
  struct stat st;
  if (stat(path, &st) != 0) {
    perror(path);
    return -1;
  }
  if (!S_ISDIR(st.st_mode)) {
    (*count)++;
    return run_file(path);
  }
  struct dirent** list;
  int n = scandir(path, &list, NULL, alphasort);
  if (n < 0) {
    perror(path);
    return -1;
  }
  int rc = 0;
  for (int i = 0; i < n; i++) {
    if (list[i]->d_name[0] != '.') {
      char p[4096];
      snprintf(p, sizeof(p), "%s/%s", path, list[i]->d_name);
      if (run_path(p, count) != 0)
        rc = -1;
    }
    free(list[i]);
  }
  free(list);
  return rc;
}

int main(int argc, char** argv) {
  int count = 0, rc = 0;
  if (argc > 1) {
    for (int i = 1; i < argc; i++)
      if (run_path(argv[i], &count) != 0)
        rc = 1;
  } else {
    const char* top = getenv("MCR_TOP_SRCDIR");
    char p[4096];
    snprintf(p, sizeof(p), "%s/tests/fuzz/corpus/%s", top ? top : ".",
             MCR_FUZZ_NAME);
    rc = run_path(p, &count) != 0;
  }
  /* Criterion's summary line, so tools/run counts each input as a test
   * (a crash never gets here: the program then counts as one failure). */
  printf("%s: %d inputs replayed%s\n", MCR_FUZZ_NAME, count,
         rc ? ", some unreadable" : "");
  printf(
      "[====] Synthesis: Tested: %d | Passing: %d | Failing: %d | "
      "Crashing: 0\n",
      count, rc ? 0 : count, rc ? count : 0);
  return rc;
}
