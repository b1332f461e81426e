// Writes the known-good frames of tests/wire/frames.hpp into a directory as a libFuzzer
// seed corpus: `fuzz_seeds DIR`. Run by tests/fuzz/run_fuzz.sh before each fuzz test.
#include <cstdio>
#include <string>

#include "tests/wire/frames.hpp"

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    for (const auto& f : fastnet::testframes::kFrames) {
        std::string path = std::string(argv[1]) + "/" + f.name;
        std::FILE* out = std::fopen(path.c_str(), "wb");
        if (!out || std::fwrite(f.data, 1, f.len, out) != f.len || std::fclose(out) != 0) {
            std::perror(path.c_str());
            return 1;
        }
    }
    return 0;
}
