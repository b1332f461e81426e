// Names of the engine's drop reasons, for fastnet-stat and logs.
#include "stack/engine.hpp"

namespace fastnet {

const char* drop_reason_name(Drop d) {
    switch (d) {
    case Drop::Malformed: return "malformed";
    case Drop::BadChecksum: return "bad_checksum";
    case Drop::NotForUs: return "not_for_us";
    case Drop::NoSocket: return "no_socket";
    case Drop::OutOfWindow: return "out_of_window";
    case Drop::Paws: return "paws";
    case Drop::NoBuffer: return "no_buffer";
    case Drop::BacklogFull: return "backlog_full";
    case Drop::Fragment: return "fragment";
    case Drop::Other: return "other";
    case Drop::Count_: break;
    }
    return "unknown";
}

}  // namespace fastnet
