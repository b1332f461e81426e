// For tests that run preloaded: whether a descriptor is a fastnet socket.
#pragma once

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

// Every fastnet socket's number is a dup of the library's one anchor socket: fd is
// fastnet's when it shares its inode with a fresh socket the library just made (two
// kernel sockets never share one).
inline bool served_by_fastnet(int fd) {
    int probe = socket(AF_INET, SOCK_STREAM, 0);
    struct stat a{}, b{};
    bool same = probe >= 0 && fstat(fd, &a) == 0 && fstat(probe, &b) == 0 && S_ISSOCK(a.st_mode) &&
                a.st_ino == b.st_ino && a.st_dev == b.st_dev;
    if (probe >= 0) close(probe);
    return same;
}
