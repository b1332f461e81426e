// Catch2 main for suite `tcp` (state machine tests and netsim transfers).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
