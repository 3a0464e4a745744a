#!/bin/sh
# test_layers.sh — the library's files form layers: each calls only files
# below it.
#
# The order is the source list of lib/libmcring_core.la in Makefile.am, top
# first (the same list, with what each layer does, heads lib/internal.h).
# For every object of the core library this reads the functions it calls in
# other files (nm's undefined symbols) and fails on any that is defined in a
# file above it: a call back up, the start of a cycle. Inline functions of
# internal.h count where they are inlined, so a header cannot hide a call
# back up either.
set -eu

top_srcdir=${MCR_TOP_SRCDIR:-$(dirname "$0")/..}
builddir=${MCR_TOP_BUILDDIR:-.}
objdir=$builddir/lib/.libs
[ -d "$objdir" ] || objdir=$builddir/lib

order=$(sed -n '/^lib_libmcring_core_la_SOURCES/,/^[^	]/p' \
  "$top_srcdir/Makefile.am" | grep -o 'lib/[a-z_0-9]*\.c' | sed 's|lib/||; s|\.c$||')
[ -n "$order" ] || { echo "no source list in Makefile.am"; exit 1; }

defs=$(mktemp)
trap 'rm -f "$defs"' EXIT
rank=0
for m in $order; do
  obj=$objdir/libmcring_core_la-$m.o
  [ -f "$obj" ] || { echo "missing object $obj"; exit 1; }
  nm --defined-only -g "$obj" | awk -v r=$rank -v m=$m '{print $3, r, m}' >>"$defs"
  rank=$((rank + 1))
done

bad=0
rank=0
for m in $order; do
  for s in $(nm -u "$objdir/libmcring_core_la-$m.o" | awk '{print $2}'); do
    hit=$(awk -v s="$s" '$1 == s {print $2, $3; exit}' "$defs")
    [ -n "$hit" ] || continue
    r=${hit% *}
    if [ "$r" -lt "$rank" ]; then
      echo "lib/$m.c calls $s of lib/${hit#* }.c, a file above it"
      bad=1
    fi
  done
  rank=$((rank + 1))
done
[ $bad -eq 0 ] && echo "$(echo $order | wc -w) files, every call downward"
exit $bad
