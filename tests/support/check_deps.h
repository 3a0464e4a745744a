/* check_deps.h — stops `make check` at once, with the package to install,
 * when configure found something the tests need missing (configure.ac
 * force-includes this file into every test then). The library and the
 * programs build without these; only the tests need them. */
#ifdef MCR_MISSING_CRITERION
#error "make check needs Criterion: apt-get install libcriterion-dev, then rerun configure"
#endif
#ifdef MCR_MISSING_AGENT
#error "make check runs mcring-agent, which needs jemalloc: apt-get install libjemalloc-dev, then rerun configure"
#endif
