dnl config.m4 for the mcring PHP extension.
dnl
dnl --with-mcring=DIR, where DIR is either an installed prefix
dnl (DIR/include/mcring.h, DIR/lib/libmcring.so) or an out-of-tree build
dnl of the C library (DIR/lib/.libs/libmcring.so; the header is found
dnl through the build's top source directory). Without DIR, pkg-config.

PHP_ARG_WITH([mcring],
  [for mcring support],
  [AS_HELP_STRING([[--with-mcring[=DIR]]],
    [Include mcring support: DIR is an installed prefix or a build tree])])

if test "$PHP_MCRING" != "no"; then
  MCRING_INC=""
  MCRING_LIBDIR=""
  if test "$PHP_MCRING" != "yes"; then
    if test -f "$PHP_MCRING/lib/.libs/libmcring.so"; then
      dnl A build tree: its Makefile knows the source directory.
      MCRING_SRC=`sed -n 's/^abs_top_srcdir = //p' "$PHP_MCRING/Makefile"`
      MCRING_INC="$MCRING_SRC/include"
      MCRING_LIBDIR="$PHP_MCRING/lib/.libs"
    elif test -f "$PHP_MCRING/include/mcring.h"; then
      MCRING_INC="$PHP_MCRING/include"
      MCRING_LIBDIR="$PHP_MCRING/lib"
    fi
  fi
  if test -z "$MCRING_INC"; then
    AC_PATH_PROG(PKG_CONFIG, pkg-config, no)
    if test "$PKG_CONFIG" != "no" && $PKG_CONFIG --exists mcring; then
      MCRING_INC=`$PKG_CONFIG --variable=includedir mcring`
      MCRING_LIBDIR=`$PKG_CONFIG --variable=libdir mcring`
    fi
  fi
  if test -z "$MCRING_INC" || test ! -f "$MCRING_INC/mcring.h"; then
    AC_MSG_ERROR([mcring.h not found: pass --with-mcring=PREFIX or a build tree])
  fi
  AC_MSG_RESULT([mcring headers in $MCRING_INC, library in $MCRING_LIBDIR])

  PHP_ADD_INCLUDE($MCRING_INC)
  PHP_ADD_LIBRARY_WITH_PATH(mcring, $MCRING_LIBDIR, MCRING_SHARED_LIBADD)
  PHP_ADD_LIBRARY(z, 1, MCRING_SHARED_LIBADD)
  AC_CHECK_HEADER([zstd.h], [
    AC_DEFINE(HAVE_MCRING_ZSTD, 1, [zstd can read php-memcached 3.3 values])
    PHP_ADD_LIBRARY(zstd, 1, MCRING_SHARED_LIBADD)
  ])
  PHP_SUBST(MCRING_SHARED_LIBADD)
  PHP_NEW_EXTENSION(mcring, mcring_php.c mcring_value.c mcring_fastlz.c mcring_session.c,
    $ext_shared,, -std=gnu11 -Wall -Wno-unused-parameter)
  PHP_ADD_EXTENSION_DEP(mcring, json)
  PHP_ADD_EXTENSION_DEP(mcring, session)
fi
