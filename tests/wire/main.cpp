// Catch2 main for suite `wire` (tests of stack/wire: views, emitters, checksum, Seq).
// g++ 12 with -fsanitize=address warns (-Wmaybe-uninitialized) inside libstdc++'s
// <regex>, which Catch's main pulls in; a known false positive in a system header.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
