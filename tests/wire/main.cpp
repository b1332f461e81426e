// Catch2 main for suite `wire` (tests of stack/wire: views, emitters, checksum, Seq).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
