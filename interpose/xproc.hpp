// Connections shared by the processes of one tree: a connection accepted before fork()
// is usable in the child (docs/DESIGN.md "Processes", "Moves between processes"). One
// MAP_SHARED table, created at Runtime::start and inherited by forked children, records
// each shared connection's holders, its owner (the process and engine slot serving it)
// and the requests the owner's engine serves at its next poll; a transfer area carries
// one connection at a time.
// fork → Runtime::before_fork → xproc::at_fork; first use in another process →
// FdTable::lookup → xproc::claim; owner → RtEngine::poll_locked → xproc::serve;
// close → fs::release → xproc::release.
#pragma once

#include <cstdint>

#include "interpose/fdtable.hpp"

namespace fastnet::ipose {
class RtEngine;
}

namespace fastnet::ipose::xproc {

// Creates the shared table (Runtime::start). false: connections stay the parent's.
bool init();
// fork() prepare, in the parent: every connected fastnet socket gets a table entry (if
// it has none) and one more holder, the child.
void at_fork();
// In the child: whether entry en is shared (it becomes Remote then; else it is removed).
// A shared one records this process as a holder, in the place the parent kept for it.
bool inherited(const Entry* en);
// This process's first use of a Remote entry: asks the owner for the connection, waits
// (up to ~1 s) for its engine to export it, imports it into this thread's engine and
// binds the entry to it. false: the connection cannot be had (the owner is gone, refused).
bool claim(int fd, Entry* en);
// Cheap: whether some process asked engine slot `slot` for something, or it is time to
// look whether the holders of connections it keeps for others still live.
bool pending(int slot);
// Under e's lock: exports the connections asked of e, closes those whose last holder left
// or whose other holders all died without closing them (SIGKILL).
void serve(RtEngine& e);
// This process drops entry en (its last fd closed, exec, exit). true: another process
// still holds the connection, so nothing is sent: an owner's engine keeps it for them.
bool release(Entry* en);
// This process's connection en leaves the process tree's table (it is passed to another
// process or image, passing.hpp): the other holders can no longer have it, and their
// close() sends nothing.
void leave(Entry* en);
// exec and exit: every shared entry of this process is released.
void release_all();

}  // namespace fastnet::ipose::xproc
