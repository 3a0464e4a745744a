/* args.h — "--name value" command lines for the examples.
 *
 * Kept out of the examples so that each one shows libmcring and not option
 * parsing. It is not part of libmcring: copy it along with an example, or
 * use getopt_long in its place.
 */
#ifndef MCR_EXAMPLES_ARGS_H
#define MCR_EXAMPLES_ARGS_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const char* name;  /* "--workers" */
  const char** text; /* gets the value as it is, or */
  long* number;      /* gets it as a decimal number */
} arg_t;
#define ARG_TEXT(name, ptr) \
  { (name), (ptr), NULL }
#define ARG_NUMBER(name, ptr) \
  { (name), NULL, (ptr) }
#define ARG_END \
  { NULL, NULL, NULL }

/* Sets what each "--name value" pair of argv names in `args` (a table
 * ended by a NULL name); the others keep their defaults. False on an
 * unknown name, a name without a value, or a number that is not one. */
static inline bool args_parse(int argc, char** argv, const arg_t* args) {
  for (int i = 1; i < argc; i += 2) {
    const arg_t* a = args;
    while (a->name && strcmp(a->name, argv[i]) != 0)
      a++;
    if (!a->name || i + 1 == argc)
      return false;
    const char* v = argv[i + 1];
    if (a->text) {
      *a->text = v;
      continue;
    }
    char* end;
    *a->number = strtol(v, &end, 10);
    if (end == v || *end)
      return false;
  }
  return true;
}

#endif /* MCR_EXAMPLES_ARGS_H */
